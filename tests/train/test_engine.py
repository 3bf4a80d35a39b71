"""The optimizer choice in ``build_engine``: DeepSpeed's FusedAdam / DeepSpeedCPUAdam when its op
builds, torch's AdamW with one warning when it cannot (no nvcc, a CUDA mismatch, no compiler),
and a real DeepSpeed engine on CPU stepping with that fallback at the recipe's lr."""
from __future__ import annotations

import copy
import logging
import os

import pytest
import torch

from ds_w2v.train import engine
from ds_w2v.train.config import load_config
from ds_w2v.train.deepspeed_config import build_ds_config
from ds_w2v.train.engine import OpBuild, build_engine, choose_optimizer, probe_op_builder

SHARDS = "data.shards=/x"  # build_ds_config reads no shards; load_config only wants a non-empty value


def _gpu_ds(ds_config: str):
    """A GPU run's DeepSpeed config, as the trainer builds it on 8 GPUs (none needed to build it)."""
    config = load_config("pretrain_original", [SHARDS, f"deepspeed_config={ds_config}"])
    return config, build_ds_config(config, 8, "cuda")


class Probe:
    """Stands in for ``probe_op_builder``: records the builders asked for, answers ``result``."""

    def __init__(self, result: OpBuild):
        self.result, self.asked = result, []

    def __call__(self, builder_name: str) -> OpBuild:
        self.asked.append(builder_name)
        return self.result


FAILS = OpBuild("RuntimeError: Error building extension 'fused_adam': nvcc not found", 12.34)
BUILDS = OpBuild(None, 0.8)


def test_unbuildable_fused_adam_falls_back_to_torch_adamw():
    config, ds = _gpu_ds("ds_configs/zero2.json")
    before = copy.deepcopy(ds)
    probe = Probe(FAILS)
    choice = choose_optimizer(ds, config.optim, "cuda", probe)
    assert probe.asked == ["FusedAdamBuilder"]
    assert ds == before  # the caller's config is not edited
    assert "optimizer" not in choice.ds_config
    assert choice.ds_config == {k: v for k, v in before.items() if k != "optimizer"}
    # the recipe's hyper-parameters, the same ones build_ds_config wrote for FusedAdam
    o, params = config.optim, before["optimizer"]["params"]
    assert choice.adamw == dict(lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay, fused=True)
    assert (choice.adamw["lr"], list(choice.adamw["betas"]), choice.adamw["eps"], choice.adamw["weight_decay"]) == (
        params["lr"], params["betas"], params["eps"], params["weight_decay"])
    assert choice.warning == ("DeepSpeed's FusedAdam op could not be built (RuntimeError: Error building extension "
                              "'fused_adam': nvcc not found; attempt took 12.3 s): using torch.optim.AdamW (fused) "
                              "instead")
    assert "\n" not in choice.warning


def test_buildable_fused_adam_keeps_the_config():
    config, ds = _gpu_ds("ds_configs/zero2.json")
    before = copy.deepcopy(ds)
    probe = Probe(BUILDS)
    choice = choose_optimizer(ds, config.optim, "cuda", probe)
    assert probe.asked == ["FusedAdamBuilder"]
    assert choice.ds_config == before and choice.adamw is None and choice.warning is None


def test_optimizer_offload_probes_cpu_adam_and_lets_deepspeed_take_torch_adamw():
    config, ds = _gpu_ds("ds_configs/zero2_offload.json")
    probe = Probe(OpBuild("RuntimeError: no C++ compiler (c++) found", 3.0))
    choice = choose_optimizer(ds, config.optim, "cuda", probe)
    assert probe.asked == ["CPUAdamBuilder"]
    assert "optimizer" not in choice.ds_config
    # without this key DeepSpeed raises ZeRORuntimeException on a client optimizer under offload
    assert choice.ds_config["zero_force_ds_cpu_optimizer"] is False
    assert choice.ds_config["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    assert choice.adamw["lr"] == config.optim.lr
    assert choice.warning.startswith("DeepSpeed's DeepSpeedCPUAdam op could not be built (RuntimeError: no C++ "
                                     "compiler (c++) found; attempt took 3.0 s)")
    assert choice.warning.endswith("on the CPU-offloaded optimizer state instead")
    built = choose_optimizer(ds, config.optim, "cuda", Probe(BUILDS))
    assert built.ds_config == ds and built.adamw is None and built.warning is None


def test_cpu_config_gets_torch_adamw_without_probing():
    config = load_config("pretrain_tiny", [SHARDS])
    ds = build_ds_config(config, 1, "cpu")

    def probe(builder_name):
        raise AssertionError(f"probed {builder_name} for a config without an optimizer block")

    choice = choose_optimizer(ds, config.optim, "cpu", probe)
    assert choice.ds_config == ds and choice.warning is None
    assert choice.adamw == dict(lr=config.optim.lr, betas=tuple(config.optim.betas), eps=config.optim.eps,
                                weight_decay=config.optim.weight_decay, fused=True)


class _Incompatible:
    def __init__(self):
        self.error_log = "fused_adam requires CUDA 11+"

    def is_compatible(self):
        return False

    def load(self):
        raise AssertionError("load() after is_compatible() said no")


class _BrokenBuild:
    def is_compatible(self):
        return True

    def load(self):
        raise RuntimeError("Error building extension 'cpu_adam'\n[1/3] c++ -MMD ... \nninja: build stopped")


def test_probe_reports_the_first_line_of_why_the_op_does_not_build(monkeypatch):
    op_builder = pytest.importorskip("deepspeed.ops.op_builder")
    monkeypatch.setattr(op_builder, "IncompatibleBuilder", _Incompatible, raising=False)
    monkeypatch.setattr(op_builder, "BrokenBuilder", _BrokenBuild, raising=False)
    incompatible = probe_op_builder("IncompatibleBuilder")
    assert incompatible.error == "fused_adam requires CUDA 11+" and incompatible.build_s >= 0
    assert probe_op_builder("BrokenBuilder").error == "RuntimeError: Error building extension 'cpu_adam'"
    assert probe_op_builder("NoSuchBuilder").error.startswith("AttributeError: ")


_DIST_ENV = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "DS_ACCELERATOR")


@pytest.fixture
def process_group():
    """One CPU process group (gloo), as the trainer makes; the launcher variables that
    ``init_distributed`` puts into ``os.environ`` are taken out again afterwards, so that a later
    test's subprocess does not inherit a MASTER_PORT. The group itself stays, as the in-process
    trainer tests leave theirs (a second ``init_distributed`` in this process reuses it)."""
    pytest.importorskip("deepspeed")
    from ds_w2v.train.distributed import init_distributed

    saved = {k: os.environ.get(k) for k in _DIST_ENV}
    init_distributed(torch.device("cpu"))
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.mark.parametrize("offload", [False, True], ids=["fused_adam", "cpu_adam_offload"])
def test_build_engine_steps_with_torch_adamw_when_the_op_fails(process_group, monkeypatch, caplog, offload):
    # one micro-batch per update (16 audio-s of 16), fp32, an lr no default has
    config = load_config("pretrain_tiny", [SHARDS, "precision=fp32", "data.batch_s=16", "global_batch_s=16",
                                           "optim.lr=0.003"])
    ds = build_ds_config(config, 1, "cpu")
    o = config.optim
    # the optimizer block a GPU JSON carries after build_ds_config (which refuses one on CPU)
    ds["optimizer"] = {"type": "AdamW", "params": dict(lr=o.lr, betas=list(o.betas), eps=o.eps,
                                                       weight_decay=o.weight_decay)}
    if offload:
        ds["zero_optimization"]["offload_optimizer"] = {"device": "cpu", "pin_memory": False}
    probe = Probe(OpBuild("RuntimeError: nvcc not found", 0.5))
    monkeypatch.setattr(engine, "probe_op_builder", probe)

    torch.manual_seed(0)
    model = torch.nn.Linear(8, 4)
    reference = copy.deepcopy(model)
    initial = model.weight.detach().clone()
    with caplog.at_level(logging.WARNING, logger="ds_w2v.train"):
        ds_engine, optimizer = build_engine(model, ds, o, torch.device("cpu"))
    assert probe.asked == ["CPUAdamBuilder" if offload else "FusedAdamBuilder"]
    warnings = [r.getMessage() for r in caplog.records if r.name == "ds_w2v.train"]
    assert len(warnings) == 1 and ("DeepSpeedCPUAdam" if offload else "FusedAdam") in warnings[0]
    assert "nvcc not found" in warnings[0]
    basic = optimizer.optimizer  # ZeRO wraps the optimizer it was given
    assert type(basic) is torch.optim.AdamW and basic.param_groups[0]["lr"] == 0.003

    x = torch.randn(6, 8)
    loss = ds_engine(x).pow(2).sum()
    ds_engine.backward(loss)
    ds_engine.step()

    # the same update by plain torch: clipping at the recipe's norm, then AdamW at lr 3e-3
    ref_opt = torch.optim.AdamW(reference.parameters(), lr=0.003, betas=o.betas, eps=o.eps,
                                weight_decay=o.weight_decay)
    reference(x).pow(2).sum().backward()
    torch.nn.utils.clip_grad_norm_(reference.parameters(), o.clip_norm)
    ref_opt.step()
    for got, want in zip(ds_engine.module.parameters(), reference.parameters()):
        torch.testing.assert_close(got.detach(), want.detach(), rtol=0, atol=1e-6)
    # AdamW's first step moves a weight by lr * g / (|g| + eps) + lr * wd * w: ~lr at most
    assert (ds_engine.module.weight.detach() - initial).abs().max().item() == pytest.approx(0.003, rel=0.02)


# -- a failed build is recorded, and not tried again (op_record.py) ----------------------------------------
class _CountingBrokenBuild:
    loads = 0

    def is_compatible(self):
        return True

    def load(self):
        type(self).loads += 1
        raise RuntimeError("Error building extension 'fused_adam'\nninja: build stopped")


class _MustNotBuild:
    def __init__(self):
        raise AssertionError("built although a failure was recorded")


@pytest.fixture
def fresh_record(monkeypatch):
    from ds_w2v.train import op_record

    op_record.forget_failures()
    monkeypatch.delenv(op_record.ENV, raising=False)
    yield op_record
    op_record.forget_failures()


def test_a_failed_build_is_not_retried_in_the_same_process(monkeypatch, fresh_record):
    op_builder = pytest.importorskip("deepspeed.ops.op_builder")
    _CountingBrokenBuild.loads = 0
    monkeypatch.setattr(op_builder, "CountingBrokenBuilder", _CountingBrokenBuild, raising=False)
    first = probe_op_builder("CountingBrokenBuilder")
    second = probe_op_builder("CountingBrokenBuilder")
    assert first.error == "RuntimeError: Error building extension 'fused_adam'"
    assert second.error.startswith(first.error) and "not retried" in second.error and second.build_s == 0.0
    assert _CountingBrokenBuild.loads == 1


def test_a_failure_recorded_by_another_process_goes_straight_to_torch_adamw(tmp_path, monkeypatch, fresh_record):
    op_builder = pytest.importorskip("deepspeed.ops.op_builder")
    monkeypatch.setenv(fresh_record.ENV, str(tmp_path / "record"))
    # what the GPU check's ops step writes after killing a build that ran past its timeout
    fresh_record.record_failure("FusedAdamBuilder", "build cut after 96 s by the GPU check")
    fresh_record.forget_failures()  # this process did not see it happen: only the file says so
    monkeypatch.setattr(op_builder, "FusedAdamBuilder", _MustNotBuild)
    config, ds = _gpu_ds("ds_configs/zero2.json")
    choice = choose_optimizer(ds, config.optim, "cuda", probe_op_builder)
    assert "optimizer" not in choice.ds_config and choice.adamw["lr"] == config.optim.lr
    assert "build cut after 96 s by the GPU check [recorded earlier; not retried]" in choice.warning


def test_a_failure_here_is_written_for_the_next_process(tmp_path, monkeypatch, fresh_record):
    op_builder = pytest.importorskip("deepspeed.ops.op_builder")
    monkeypatch.setenv(fresh_record.ENV, str(tmp_path / "record"))
    monkeypatch.setattr(op_builder, "BrokenBuilder", _BrokenBuild, raising=False)
    assert probe_op_builder("BrokenBuilder").error == "RuntimeError: Error building extension 'cpu_adam'"
    assert (tmp_path / "record" / "BrokenBuilder.failed").read_text() == \
        "RuntimeError: Error building extension 'cpu_adam'\n"


def test_stale_locks_are_found_where_torch_builds(tmp_path, fresh_record):
    cache = tmp_path / "cache"
    for folder in ("py312_cu130/fused_adam", "py311_cpu/fused_adam", "py312_cu130/cpu_adam"):
        (cache / "torch_extensions" / folder).mkdir(parents=True)
        (cache / "torch_extensions" / folder / "lock").write_text("")
    env = {"XDG_CACHE_HOME": str(cache), "HOME": str(tmp_path)}
    assert [p.relative_to(cache).as_posix() for p in fresh_record.stale_locks("FusedAdamBuilder", env)] == [
        "torch_extensions/py311_cpu/fused_adam/lock", "torch_extensions/py312_cu130/fused_adam/lock"]
    flat = tmp_path / "ext"
    (flat / "fused_adam").mkdir(parents=True)
    (flat / "fused_adam" / "lock").write_text("")
    assert fresh_record.stale_locks("FusedAdamBuilder", {"TORCH_EXTENSIONS_DIR": str(flat)}) == [
        flat / "fused_adam" / "lock"]
    assert fresh_record.stale_locks("NoSuchBuilder", env) == []


def test_a_recorded_shm_comm_failure_is_not_built_again_at_start_up(tmp_path):
    """DeepSpeed builds its shared-memory collectives op in every CPU process at init; once a build
    failed or was cut (recorded in DS_W2V_OP_RECORD), init_distributed skips it: gloo serves."""
    import os
    import subprocess
    import sys

    from ds_w2v.train.op_record import ENV, record_failure

    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env.update({ENV: str(tmp_path), "DS_ACCELERATOR": "cpu"})
    record_failure("ShareMemCommBuilder", "cut at 120 s", environ=env)
    code = ("import torch, deepspeed; from ds_w2v.train.distributed import init_distributed; "
            "init_distributed(torch.device('cpu')); print('compatible', deepspeed.ops.__compatible_ops__['deepspeed_shm_comm'])")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "compatible False" in out.stdout and "built successfully" not in out.stdout + out.stderr
