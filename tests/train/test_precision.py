"""precision=auto's rule (ds_w2v/train/precision.py), with both answers of each device injected."""
from __future__ import annotations

import pytest

from ds_w2v.train.precision import PRECISIONS, SLOW_BF16, resolve_precision


def answers(cpu_bf16: bool, gpu_bf16: bool = True):
    table = {"cpu": (cpu_bf16, "cpu says"), "cuda": (gpu_bf16, "gpu says")}
    return lambda device_type: table[device_type]


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_on_a_cpu_takes_bf16_only_where_it_is_native(native, expected):
    p = resolve_precision("auto", {}, "cpu", answers(cpu_bf16=native))
    assert p.name == expected and p.warning is None
    assert "cpu says" in p.reason and p.line().startswith(f"precision {expected}: ")


@pytest.mark.parametrize("gpu_bf16, expected", [(True, "bf16"), (False, "fp16")])
def test_auto_on_a_gpu_takes_bf16_else_fp16(gpu_bf16, expected):
    p = resolve_precision("auto", {}, "cuda", answers(cpu_bf16=False, gpu_bf16=gpu_bf16))
    assert p.name == expected and "gpu says" in p.reason


def test_none_means_auto():  # a config.yaml written before auto had precision: null
    assert resolve_precision(None, {}, "cpu", answers(False)).name == "fp32"


def test_auto_follows_a_deepspeed_json_that_enables_a_precision():
    fp16_json = {"fp16": {"enabled": True, "loss_scale": 0}}
    assert resolve_precision("auto", fp16_json, "cuda", answers(False, gpu_bf16=True)).name == "fp16"
    bf16_json = {"bf16": {"enabled": True}}
    assert resolve_precision("auto", bf16_json, "cuda", answers(False, gpu_bf16=False)).name == "bf16"
    disabled = {"bf16": {"enabled": False}}
    assert resolve_precision("auto", disabled, "cpu", answers(False)).name == "fp32"


def test_an_explicit_precision_wins_over_hardware_and_json():
    assert resolve_precision("fp32", {"bf16": {"enabled": True}}, "cuda", answers(True, True)).name == "fp32"
    assert resolve_precision("bf16", {}, "cpu", answers(cpu_bf16=True)).warning is None


def test_explicit_bf16_on_a_cpu_without_it_runs_with_one_warning():
    p = resolve_precision("bf16", {}, "cpu", answers(cpu_bf16=False))
    assert p.name == "bf16" and p.warning == SLOW_BF16
    assert "74x" in p.warning and "fp32" in p.warning
    # the same from a JSON that enables bf16
    assert resolve_precision("auto", {"bf16": {"enabled": True}}, "cpu", answers(False)).warning == SLOW_BF16


def test_fp16_on_a_cpu_is_refused_in_one_line():
    for requested, ds in (("fp16", {}), ("auto", {"fp16": {"enabled": True}})):
        with pytest.raises(ValueError, match=r"^config key precision: fp16 needs a GPU") as e:
            resolve_precision(requested, ds, "cpu", answers(True))
        assert "\n" not in str(e.value)


def test_an_unknown_precision_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match=r"'half' is not one of auto, fp32, bf16, fp16"):
        resolve_precision("half", {}, "cpu", answers(True))
    assert PRECISIONS == ("auto", "fp32", "bf16", "fp16")


def test_the_config_refuses_an_unknown_precision():
    from ds_w2v.train.config import TrainConfig

    c = TrainConfig(precision="fp8")
    c.data.shards = "x"
    with pytest.raises(ValueError, match=r"^config key precision: 'fp8' is not one of auto, fp32, bf16, fp16"):
        c.validate()
    assert TrainConfig().precision == "auto" and TrainConfig(precision=None).precision == "auto"
