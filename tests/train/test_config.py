"""Every shipped recipe and DeepSpeed config is loaded here, so neither can rot (litgpt's
test_config_hub idea): recipes validate, their parent chains resolve, their batch arithmetic
divides on the world sizes they are written for, and the fairseq numbers their comments cite are
the numbers they hold. Bad configs fail with one ValueError naming the key, before any process
group exists."""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import yaml

from ds_w2v.train.config import (
    RECIPE_DIR,
    DataConfig,
    TrainConfig,
    config_to_dict,
    load_config,
    read_recipe,
    resolve_batch,
)
from ds_w2v.train.deepspeed_config import DS_CONFIG_DIR, build_ds_config, built_precision

SHARDS = "data.shards=/x"
RECIPES = sorted(RECIPE_DIR.glob("*.yaml"))
DS_CONFIGS = sorted(DS_CONFIG_DIR.glob("*.json"))

# recipe -> {world size it is written for: gradient accumulation steps}
_BASE = {64: 1, 8: 8, 1: 64}  # 87.5 s x 64 GPUs = 5,600 audio-s per update
_LARGE = {128: 1, 8: 16, 1: 128}  # 75 s x 128 GPUs = 9,600 audio-s
_CTC = {8: 1, 1: 8}  # 200 s x 8 GPUs = 1,600 audio-s
_CLS = {8: 1, 1: 8}  # 100 s x 8 GPUs = 800 audio-s
_DEMO = {1: 2, 2: 1}  # two micro-batches per update on one CPU process, one each on two
WORLD_ACCUM = {
    "pretrain_original": _BASE, "pretrain_medium": _BASE, "pretrain_small": _BASE, "pretrain_large": _LARGE,
    "pretrain_tiny": _DEMO,
    "finetune_ctc_original": _CTC, "finetune_ctc_medium": _CTC, "finetune_ctc_small": _CTC,
    "finetune_ctc_large": _CTC, "finetune_ctc_tiny": _DEMO,
    "finetune_cls_original": _CLS, "finetune_cls_medium": _CLS, "finetune_cls_small": _CLS,
    "finetune_cls_large": _CLS, "finetune_cls_tiny": _DEMO,
}


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = list(v) if isinstance(v, tuple) else v
    return out


def _device(ds_path: Path) -> str:
    return "cpu" if ds_path.name.startswith("cpu") else "cuda"


def _find_auto(d, path="") -> list[str]:
    if isinstance(d, dict):
        return [p for k, v in d.items() for p in _find_auto(v, f"{path}.{k}")]
    if isinstance(d, list):
        return [p for i, v in enumerate(d) for p in _find_auto(v, f"{path}[{i}]")]
    return [path] if d == "auto" else []


# --- every shipped recipe ------------------------------------------------------------------------
def test_every_recipe_has_expected_world_sizes():
    # a new recipe must say here which world sizes it is meant for
    assert {p.stem for p in RECIPES} == set(WORLD_ACCUM)


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_shipped_recipe_loads(recipe):
    config = load_config(recipe, [SHARDS])
    config.validate()
    assert config.data.shards == "/x"

    # the parent chain resolves to shipped files and ends, without a cycle
    chain, path = [], recipe
    while True:
        assert path.is_file(), f"{recipe.name}: parent {path.name} is missing"
        assert path not in chain, f"{recipe.name}: parent cycle through {path.name}"
        chain.append(path)
        raw = yaml.safe_load(path.read_text())
        assert isinstance(raw, dict)
        if not raw.get("parent"):
            break
        path = RECIPE_DIR / raw["parent"]
    assert len(chain) <= 3

    # every value the recipe file itself writes is the value the run gets (the child wins)
    own = _flatten({k: v for k, v in yaml.safe_load(recipe.read_text()).items() if k != "parent"})
    loaded = _flatten(config_to_dict(config))
    for key, value in own.items():
        assert key in loaded, f"{recipe.name}: {key} did not reach the config"
        assert loaded[key] == value, f"{recipe.name}: {key} = {loaded[key]!r}, the file says {value!r}"

    # batch arithmetic divides on the world sizes the recipe is written for
    for world, accum in WORLD_ACCUM[recipe.stem].items():
        assert resolve_batch(config, world) == accum
        assert config.data.batch_s * world * accum == pytest.approx(config.global_batch_s)


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_shipped_recipe_builds_deepspeed_config(recipe):
    config = load_config(recipe, [SHARDS])
    ds_path = DS_CONFIG_DIR / Path(config.deepspeed_config).name
    assert ds_path.is_file(), f"{recipe.name}: {config.deepspeed_config} is not shipped"
    for world, accum in WORLD_ACCUM[recipe.stem].items():
        ds = build_ds_config(config, world, _device(ds_path))
        assert ds["gradient_accumulation_steps"] == accum
        assert ds["train_batch_size"] == accum * world
        assert _find_auto(ds) == []


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_shipped_recipe_model_overrides_build_a_model_config(recipe):
    # model.overrides is a free mapping here; the model config must accept every key and value
    from ds_w2v.models.wav2vec2.presets import PRESETS, preset_config
    from ds_w2v.models.wav2vec2.registry import MODEL_TASKS
    from ds_w2v.train.tasks import TASK_CLASSES

    config = load_config(recipe, [SHARDS])
    assert config.model.preset in PRESETS
    assert recipe.stem.split("_")[-1] == config.model.preset  # pretrain_small -> small
    defaults = MODEL_TASKS[TASK_CLASSES[config.task].model_task].finetune_defaults
    model = preset_config(config.model.preset, **{**defaults, **config.model.overrides})
    for key, value in config.model.overrides.items():
        assert getattr(model, key) == (tuple(value) if isinstance(value, list) else value)


def test_pretrain_original_is_fairseq_base():
    """fairseq examples/wav2vec/config/pretraining/wav2vec2_base_librispeech.yaml, paper §4.2."""
    c = load_config("pretrain_original", [SHARDS])
    assert c.task == "pretrain" and c.model.preset == "original" and c.model.init is None
    assert c.optim.lr == 5e-4
    assert c.optim.betas == (0.9, 0.98)
    assert c.optim.eps == 1e-6
    assert c.optim.weight_decay == 0.01
    assert c.optim.clip_norm == 10.0
    assert c.schedule.kind == "polynomial" and c.schedule.end_lr == 0.0
    assert c.schedule.warmup_updates == 32_000 == 0.08 * c.max_updates  # 8 % warm-up
    assert c.max_updates == 400_000
    assert c.data.batch_s == 87.5 == 1_400_000 / 16_000  # max_tokens 1.4M samples
    assert c.global_batch_s == 5_600 == 87.5 * 64
    assert c.data.max_sample_size == 250_000
    assert c.data.min_duration_s == 32_000 / 16_000  # min_sample_size
    assert Path(c.deepspeed_config).name == "zero2.json"
    assert c.precision == "auto"  # bf16 on a GPU that has it (zero2.json enables no precision)


def test_pretrain_large_is_paper_large():
    c = load_config("pretrain_large", [SHARDS])
    assert c.model.preset == "large"
    assert c.optim.lr == 3e-4
    assert c.max_updates == 250_000
    assert c.schedule.warmup_updates == 0.08 * c.max_updates
    assert c.data.batch_s == 75.0 == 1_200_000 / 16_000
    assert c.global_batch_s == 75.0 * 128
    # the rest is BASE's
    assert (c.optim.betas, c.optim.eps, c.optim.weight_decay) == ((0.9, 0.98), 1e-6, 0.01)


@pytest.mark.parametrize("name", ["pretrain_medium", "pretrain_small", "finetune_ctc_medium", "finetune_ctc_small",
                                  "finetune_ctc_large", "finetune_cls_medium", "finetune_cls_small",
                                  "finetune_cls_large"])
def test_size_variants_change_only_the_preset(name):
    parent = name.rsplit("_", 1)[0] + "_original"
    c, p = load_config(name, [SHARDS]), load_config(parent, [SHARDS])
    assert c.model.preset == name.rsplit("_", 1)[1]
    assert c.run_dir == f"runs/{name}" and p.run_dir == f"runs/{parent}"  # each recipe its own run directory
    assert dataclasses.replace(c, model=dataclasses.replace(c.model, preset="original"), run_dir=p.run_dir) == p


def test_finetune_ctc_original_is_fairseq_base_10h():
    """fairseq examples/wav2vec/config/finetuning/base_10h.yaml."""
    c = load_config("finetune_ctc_original", [SHARDS])
    assert c.task == "ctc" and c.model.preset == "original" and c.model.init is None
    assert c.optim.lr == 5e-5
    assert c.optim.betas == (0.9, 0.98) and c.optim.eps == 1e-8 and c.optim.weight_decay == 0.0
    assert c.optim.clip_norm == 0.0
    assert c.schedule.kind == "tri_stage"
    assert c.schedule.phase_ratio == (0.1, 0.4, 0.5)
    assert c.schedule.init_lr_scale == 0.01 and c.schedule.final_lr_scale == 0.05
    assert c.max_updates == 20_000
    assert c.freeze_transformer_updates == 10_000
    assert c.model.overrides == {"mask_prob": 0.65, "mask_channel_prob": 0.5, "mask_channel_length": 64,
                                 "encoder_layerdrop": 0.05, "final_dropout": 0.0}
    assert c.data.batch_s == 200.0 == 3_200_000 / 16_000
    assert c.global_batch_s == 1_600 == 200 * 8
    assert Path(c.deepspeed_config).name == "zero2.json"


def test_finetune_ctc_original_masks_time_spans_of_10():
    # "time masking 0.65 x 10": the span length comes from the model default, not the recipe
    from ds_w2v.models.wav2vec2.presets import preset_config
    from ds_w2v.models.wav2vec2.registry import MODEL_TASKS

    c = load_config("finetune_ctc_original", [SHARDS])
    m = preset_config("original", **{**MODEL_TASKS["ctc"].finetune_defaults, **c.model.overrides})
    assert (m.mask_prob, m.mask_length) == (0.65, 10)
    assert (m.mask_channel_prob, m.mask_channel_length) == (0.5, 64)
    assert m.feature_grad_mult == 0.0  # conv encoder frozen throughout


def test_finetune_cls_original():
    c = load_config("finetune_cls_original", [SHARDS])
    assert c.task == "cls"
    assert c.max_updates == 5_000 and c.freeze_transformer_updates == 500
    assert c.model.overrides["mask_prob"] == 0.05 and c.model.overrides["mask_channel_prob"] == 0.0
    assert c.model.overrides["encoder_layerdrop"] == 0.0
    # inherited from the CTC recipe: optimiser and tri-stage schedule
    ctc = load_config("finetune_ctc_original", [SHARDS])
    assert (c.optim, c.schedule) == (ctc.optim, ctc.schedule)
    assert c.global_batch_s == 800 == c.data.batch_s * 8


@pytest.mark.parametrize("name", ["pretrain_tiny", "finetune_ctc_tiny", "finetune_cls_tiny"])
def test_demo_recipes_run_on_one_cpu_process(name, monkeypatch):
    c = load_config(name, [SHARDS])
    assert c.model.preset == "tiny"
    assert Path(c.deepspeed_config).name == "cpu.json"
    assert c.precision == "auto"  # bf16 only on a CPU that has it natively
    assert resolve_batch(c, 1) == 2 and c.data.batch_s * 2 == c.global_batch_s <= 32  # small, frequent updates
    _cpu_answers(monkeypatch, native_bf16=True)
    ds = build_ds_config(c, 1, "cpu")
    assert ds["bf16"] == {"enabled": True, "check_grad_overflow": True} and "fp16" not in ds
    _cpu_answers(monkeypatch, native_bf16=False)
    ds = build_ds_config(c, 1, "cpu")
    assert "bf16" not in ds and "fp16" not in ds
    assert c.max_updates <= 600
    assert c.freeze_transformer_updates < c.max_updates
    if c.task != "pretrain":
        assert c.schedule.kind == "tri_stage"


def _cpu_answers(monkeypatch, native_bf16: bool, gpu_bf16: bool = True) -> None:
    """The hardware precision=auto reads, injected: the CPU's native bf16 and the GPU's bf16."""
    from ds_w2v.train import precision

    answers = {"cpu": (native_bf16, "injected CPU"), "cuda": (gpu_bf16, "injected GPU")}
    monkeypatch.setattr(precision, "_hardware", lambda device_type: answers[device_type])


# --- every shipped DeepSpeed config ---------------------------------------------------------------
# stem -> (ZeRO stage, optimizer offloaded to CPU, precision the JSON enables: None, precision=auto
# decides from the hardware)
DS_EXPECTED = {
    "cpu": (2, False, None),
    "cpu_zero3": (3, False, None),
    "zero1": (1, False, None),
    "zero2": (2, False, None),
    "zero2_fp16": (2, False, "fp16"),
    "zero2_offload": (2, True, None),
    "zero3": (3, False, None),
}


def _ds_run_config(ds_path: Path, *overrides: str) -> TrainConfig:
    # the CPU configs with the CPU demo recipe, the GPU ones with BASE pretraining; precision=auto
    # unless ``overrides`` set it
    recipe = "pretrain_tiny" if _device(ds_path) == "cpu" else "pretrain_original"
    return load_config(recipe, [SHARDS, f"deepspeed_config={ds_path}", "precision=auto", *overrides])


def _auto_precision(ds_path: Path) -> str:
    """What precision=auto gives with ``_cpu_answers(native_bf16=False)``: the JSON's, else bf16 on
    the (injected, bf16-capable) GPU, fp32 on the (injected, AVX2-only) CPU."""
    from_json = DS_EXPECTED[ds_path.stem][2]
    return from_json or ("bf16" if _device(ds_path) == "cuda" else "fp32")


def test_every_ds_config_is_expected():
    assert {p.stem for p in DS_CONFIGS} == set(DS_EXPECTED)


@pytest.mark.parametrize("ds_path", DS_CONFIGS, ids=lambda p: p.name)
def test_shipped_ds_config_file_says_what_runs(ds_path):
    # the JSON a reader opens names the stage, offload and precision the run gets
    stage, offload, precision = DS_EXPECTED[ds_path.stem]
    raw = json.loads(ds_path.read_text())
    assert raw["zero_optimization"]["stage"] == stage
    assert (raw["zero_optimization"].get("offload_optimizer", {}).get("device") == "cpu") == offload
    assert _find_auto(raw) == []
    if precision == "bf16":
        assert raw["bf16"] == {"enabled": True, "check_grad_overflow": True} and "fp16" not in raw
    elif precision == "fp16":
        assert raw["fp16"]["enabled"] is True and raw["fp16"]["loss_scale"] == 0 and "bf16" not in raw
    else:
        assert "bf16" not in raw and "fp16" not in raw
    assert ("optimizer" in raw) == (_device(ds_path) == "cuda")


@pytest.mark.parametrize("ds_path", DS_CONFIGS, ids=lambda p: p.name)
def test_shipped_ds_config_builds(ds_path, monkeypatch):
    _cpu_answers(monkeypatch, native_bf16=False)
    stage, offload, _ = DS_EXPECTED[ds_path.stem]
    precision = _auto_precision(ds_path)
    device = _device(ds_path)
    config = _ds_run_config(ds_path)
    for world in WORLD_ACCUM["pretrain_tiny" if device == "cpu" else "pretrain_original"]:
        ds = build_ds_config(config, world, device)
        json.dumps(ds)  # plain JSON types only
        assert _find_auto(ds) == []
        micro, accum = ds["train_micro_batch_size_per_gpu"], ds["gradient_accumulation_steps"]
        assert micro == 1 and accum == resolve_batch(config, world)
        assert ds["train_batch_size"] == micro * accum * world
        assert ds["gradient_clipping"] == config.optim.clip_norm

        zero = ds["zero_optimization"]
        assert zero["stage"] == stage
        assert (zero.get("offload_optimizer", {}).get("device") == "cpu") == offload

        if device == "cuda":
            params = ds["optimizer"]["params"]
            assert params == {"lr": config.optim.lr, "betas": list(config.optim.betas), "eps": config.optim.eps,
                              "weight_decay": config.optim.weight_decay}
            assert "zero_allow_untested_optimizer" not in ds
        else:
            assert "optimizer" not in ds  # the trainer passes torch's AdamW
            assert ds["zero_allow_untested_optimizer"] is True

        if precision == "bf16":
            assert ds["bf16"] == {"enabled": True, "check_grad_overflow": True}
            assert "fp16" not in ds
        elif precision == "fp16":
            assert ds["fp16"]["enabled"] is True and ds["fp16"]["loss_scale"] == 0  # dynamic
            assert "bf16" not in ds
        else:
            assert "fp16" not in ds and "bf16" not in ds


@pytest.mark.parametrize("ds_path", DS_CONFIGS, ids=lambda p: p.name)
def test_recipe_precision_overrides_ds_config(ds_path, monkeypatch):
    _cpu_answers(monkeypatch, native_bf16=False)
    device = _device(ds_path)
    ds = build_ds_config(_ds_run_config(ds_path, "precision=fp32"), 1, device)
    assert "fp16" not in ds and "bf16" not in ds

    ds = build_ds_config(_ds_run_config(ds_path, "precision=bf16"), 1, device)
    assert ds["bf16"] == {"enabled": True, "check_grad_overflow": True} and "fp16" not in ds

    if device == "cpu":
        with pytest.raises(ValueError, match=r"^config key precision: fp16 needs a GPU"):
            build_ds_config(_ds_run_config(ds_path, "precision=fp16"), 1, device)
    else:
        ds = build_ds_config(_ds_run_config(ds_path, "precision=fp16"), 1, device)
        assert ds["fp16"]["enabled"] is True and ds["fp16"]["loss_scale"] == 0 and "bf16" not in ds


def test_clip_norm_zero_disables_clipping():
    c = load_config("finetune_ctc_original", [SHARDS])
    assert build_ds_config(c, 8, "cuda")["gradient_clipping"] == 0.0
    c = load_config("pretrain_original", [SHARDS, "optim.clip_norm=2.5"])
    assert build_ds_config(c, 64, "cuda")["gradient_clipping"] == 2.5


def test_gpu_ds_configs_refused_on_cpu():
    with pytest.raises(ValueError, match=r"^config key deepspeed_config: .*zero2\.json names a GPU optimizer"):
        build_ds_config(load_config("pretrain_tiny", [SHARDS, "deepspeed_config=ds_configs/zero2.json"]), 1, "cpu")
    # its fp16 is refused first, naming precision
    with pytest.raises(ValueError, match=r"^config key precision:"):
        build_ds_config(load_config("pretrain_tiny", [SHARDS, "deepspeed_config=zero2_fp16.json", "precision=null"]),
                        1, "cpu")


@pytest.mark.parametrize("body, match", [
    ({"zero_optimization": {"stage": 2}, "optimizer": {"type": "AdamW", "params": {"lr": "auto"}}}, None),
    ({"zero_optimization": {"stage": 2, "reduce_bucket_size": "auto"}}, r"zero_optimization\.reduce_bucket_size is \"auto\""),
    ({"zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu"}}}, r"optimizer offload needs"),
    ("{not json", r"not valid JSON"),
])
def test_bad_ds_config_files(tmp_path, body, match):
    path = tmp_path / "ds.json"
    path.write_text(body if isinstance(body, str) else json.dumps(body))
    config = load_config("pretrain_tiny", [SHARDS, f"deepspeed_config={path}"])
    if match is None:  # an "auto" the recipe fills in is fine
        assert build_ds_config(config, 1, "cuda")["optimizer"]["params"]["lr"] == config.optim.lr
    else:
        with pytest.raises(ValueError, match=r"^config key deepspeed_config: .*" + match):
            build_ds_config(config, 1, "cuda")


def test_missing_ds_config_file():
    config = load_config("pretrain_tiny", [SHARDS, "deepspeed_config=/nowhere/zero9.json"])
    with pytest.raises(FileNotFoundError, match="config key deepspeed_config"):
        build_ds_config(config, 1, "cpu")


# DeepSpeed's own parser: no process group is needed. Without one it takes world size 1 (its
# dist.get_rank() raises and it falls back); for larger worlds we stub get_rank and hand it the
# world size through an mpu, the way it reads the data-parallel size in a real run.
class _DataParallelMPU:
    def __init__(self, world_size: int):
        self.world_size = world_size

    def get_data_parallel_world_size(self) -> int:
        return self.world_size


@pytest.mark.parametrize("ds_path", DS_CONFIGS, ids=lambda p: p.name)
def test_shipped_ds_config_passes_deepspeed_parser(ds_path, monkeypatch):
    dsc = pytest.importorskip("deepspeed.runtime.config")
    import torch.distributed

    _pg_before = torch.distributed.is_initialized()  # an earlier in-process trainer test may have one
    _cpu_answers(monkeypatch, native_bf16=False)
    stage, offload, _ = DS_EXPECTED[ds_path.stem]
    precision = _auto_precision(ds_path)
    device = _device(ds_path)
    config = _ds_run_config(ds_path)
    for world in WORLD_ACCUM["pretrain_tiny" if device == "cpu" else "pretrain_original"]:
        if world == 1:
            parsed = dsc.DeepSpeedConfig(build_ds_config(config, 1, device))
        else:
            monkeypatch.setattr(dsc.dist, "get_rank", lambda *a, **k: 0)
            parsed = dsc.DeepSpeedConfig(build_ds_config(config, world, device), mpu=_DataParallelMPU(world))
        assert parsed.world_size == world
        assert parsed.train_batch_size == resolve_batch(config, world) * world
        assert parsed.gradient_accumulation_steps == resolve_batch(config, world)
        assert parsed.train_micro_batch_size_per_gpu == 1
        assert parsed.zero_optimization_stage == stage
        assert (parsed.zero_config.offload_optimizer is not None) == offload
        assert parsed.gradient_clipping == config.optim.clip_norm
        assert parsed.bfloat16_config.enabled == (precision == "bf16")
        assert parsed.float16_config.enabled == (precision == "fp16")
        if precision == "bf16":
            assert parsed.bfloat16_config.check_grad_overflow is True
        if precision == "fp16":
            assert parsed.float16_config.loss_scale == 0  # dynamic
        if device == "cuda":
            assert parsed.optimizer_name == "adamw"
            assert parsed.optimizer_params["lr"] == config.optim.lr
        else:
            assert parsed.optimizer_name is None and parsed.zero_allow_untested_optimizer
    assert torch.distributed.is_initialized() == _pg_before  # nothing here starts a process group


# --- bad configs: one ValueError naming the key, before any process group --------------------------
@pytest.mark.parametrize("overrides, match", [
    (["foo=1"], r"^config key foo: unknown"),
    (["optim.learning_rate=1"], r"^config key optim\.learning_rate: unknown \(known: .*\blr\b"),
    (["data.shard=/y"], r"^config key data\.shard: unknown"),
    (["max_updates=abc"], r"^config key max_updates: expected an integer, got 'abc'"),
    (["max_updates=1.5"], r"^config key max_updates: expected an integer"),
    (["optim.lr=fast"], r"^config key optim\.lr: expected a number"),
    (["optim.lr=true"], r"^config key optim\.lr: expected a number"),
    (["optim.betas=[0.9]"], r"^config key optim\.betas: expected a list of 2 values"),
    (["optim.betas=0.9"], r"^config key optim\.betas: expected a list of 2 values"),
    (["optim.betas=[0.9, 0.98"], r"^config key optim\.betas: value .* is not valid YAML"),
    (["optim=1"], r"^config key optim: expected a mapping"),
    (["model.overrides=[1]"], r"^config key model\.overrides: expected a mapping"),
    (["run_dir=[1, 2]"], r"^config key run_dir: expected a string"),
    (["task=asr"], r"^config key task: 'asr' is not one of pretrain, ctc, cls"),
    (["precision=fp8"], r"^config key precision: 'fp8' is not one of auto, fp32, bf16, fp16"),
    (["schedule.kind=cosine"], r"^config key schedule\.kind:"),
    (["schedule.kind=tri_stage", "schedule.phase_ratio=[0.5, 0.5, 0.5]"], r"^config key schedule\.phase_ratio: must sum to 1"),
    (["schedule.kind=tri_stage", "schedule.final_lr_scale=0"], r"^config key schedule\.final_lr_scale: must be > 0"),
    (["data.batch_s=0"], r"^config key data\.batch_s: must be > 0"),
    (["optim.lr=-1e-3"], r"^config key optim\.lr: must be a finite number >= 0, got -0\.001$"),
    (["optim.lr=.nan"], r"^config key optim\.lr: must be a finite number >= 0, got nan"),
    (["optim.lr=0"], r"^config key optim\.lr: must be > 0"),
    (["schedule.end_lr=-0.5"], r"^config key schedule\.end_lr: must be a finite number >= 0, got -0\.5"),
    (["schedule.warmup_updates=-1"], r"^config key schedule\.warmup_updates: must be >= 0"),
    (["optim.betas=[0.9, 1.0]"], r"^config key optim\.betas: must be two numbers in \[0, 1\)"),
    (["data.train=[]"], r"^config key data\.train: is an empty list: name the corpora"),
    (["data.read_timeout_s=0"], r"^config key data\.read_timeout_s: must be > 0 seconds"),
    (["data.num_workers=-1"], r"^config key data\.num_workers: must be auto or an integer >= 0"),
    (["global_batch_s=-1"], r"^config key global_batch_s: must be > 0"),
    (["max_updates=0"], r"^config key max_updates: must be >= 1"),
    (["save_every=0"], r"^config key save_every: must be >= 1"),
    (["activation_checkpointing=some"], r"^config key activation_checkpointing:"),
    (["activation_checkpointing=[a]"], r"^config key activation_checkpointing:"),
    (["data.augment.speeds=[0.9, 0]"], r"^config key data\.augment\.speeds: every factor must be > 0"),
    (["data.augment.speeds=fast"], r"^config key data\.augment\.speeds: expected a list"),
    (["data.augment.snr_db=[20, 5]"], r"^config key data\.augment\.snr_db: expected \[low, high\] dB with low <= high"),
    (["data.augment.snr_db=[5]"], r"^config key data\.augment\.snr_db: expected a list of 2 values"),
    (["data.augment.noise_prob=2"], r"^config key data\.augment\.noise_prob: a probability in \[0, 1\]"),
    (["data.augment.speed=[1.1]"], r"^config key data\.augment\.speed: unknown"),
    (["task.kind=ctc"], r"^override 'task\.kind=ctc': task is not a section"),
    (["foo"], r"^override 'foo': expected key=value"),
    (["=1"], r"^override '=1': expected key=value"),
])
def test_bad_override_names_the_key(overrides, match):
    import torch.distributed

    _pg_before = torch.distributed.is_initialized()  # an earlier in-process trainer test may have one
    with pytest.raises(ValueError, match=match):
        load_config("pretrain_tiny", [SHARDS, *overrides])
    assert torch.distributed.is_initialized() == _pg_before  # nothing here starts a process group


def test_augment_keys_from_command_line_and_recipe(tmp_path):
    config = load_config("finetune_ctc_tiny", [SHARDS, "data.augment.speeds=[0.9,1.0,1.1]", "data.augment.noise=/n",
                                               "data.augment.snr_db=[0,15]", "data.augment.rir=/r"])
    aug = config.data.augment
    assert aug.speeds == (0.9, 1.0, 1.1) and aug.snr_db == (0.0, 15.0) and aug.active
    assert (aug.noise, aug.noise_prob, aug.rir, aug.rir_prob) == ("/n", 1.0, "/r", 0.5)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("parent: finetune_ctc_tiny\ndata:\n  augment:\n    speeds: [1.1]\n    rir_prob: 1\n")
    aug = load_config(recipe, [SHARDS, "data.augment.rir_prob=0.25"]).data.augment
    assert aug.speeds == (1.1,) and aug.rir_prob == 0.25 and aug.noise is None
    assert not load_config("finetune_ctc_tiny", [SHARDS]).data.augment.active  # off by default


def test_missing_shards():
    with pytest.raises(ValueError, match=r"^config key data\.shards: is required"):
        load_config("pretrain_tiny")
    with pytest.raises(ValueError, match=r"^config key data\.shards: is required"):
        load_config("pretrain_tiny", ["data.shards="])


def test_keyword_field_errors_name_the_key():
    with pytest.raises(ValueError, match=r"^config key optim\.learning_rate: unknown"):
        load_config("pretrain_tiny", [SHARDS], optim={"learning_rate": 1})
    with pytest.raises(ValueError, match=r"^config key bogus: unknown"):
        load_config(None, [SHARDS], bogus=1)


@pytest.mark.parametrize("recipe, overrides, world", [
    ("pretrain_tiny", ["global_batch_s=100"], 1),  # 100 / 32 is not whole
    ("pretrain_tiny", [], 4),  # 64 < 32 x 4: less than one micro-batch per rank
    ("pretrain_original", [], 128),
    ("pretrain_original", [], 3),
])
def test_batch_that_does_not_divide(recipe, overrides, world):
    config = load_config(recipe, [SHARDS, *overrides])
    with pytest.raises(ValueError, match=r"^config key global_batch_s: .* not a whole multiple of data\.batch_s x world_size"):
        resolve_batch(config, world)
    with pytest.raises(ValueError, match=r"^config key global_batch_s:"):
        build_ds_config(config, world, "cpu")


def test_batch_accepts_float_rounding():
    # 0.1 s micro-batches: 0.3 / 0.1 is 2.9999999999999996 in floating point
    config = load_config(None, [SHARDS, "data.batch_s=0.1", "global_batch_s=0.3"])
    assert resolve_batch(config, 1) == 3


def test_missing_recipe_lists_shipped_recipes():
    with pytest.raises(FileNotFoundError, match=r"pretrain_huge: no such recipe file \(shipped recipes: .*pretrain_tiny"):
        load_config("pretrain_huge", [SHARDS])


def test_missing_parent(tmp_path):
    (tmp_path / "a.yaml").write_text("parent: nowhere.yaml\n")
    with pytest.raises(FileNotFoundError, match="nowhere.yaml: no such recipe file"):
        load_config(tmp_path / "a.yaml", [SHARDS])


def test_recipe_parent_cycle(tmp_path):
    (tmp_path / "a.yaml").write_text("parent: b.yaml\nmax_updates: 1\n")
    (tmp_path / "b.yaml").write_text("parent: a.yaml\nmax_updates: 2\n")
    (tmp_path / "self.yaml").write_text("parent: self.yaml\n")
    with pytest.raises(ValueError, match="recipe parent cycle"):
        load_config(tmp_path / "a.yaml", [SHARDS])
    with pytest.raises(ValueError, match="recipe parent cycle"):
        load_config(tmp_path / "self.yaml", [SHARDS])


@pytest.mark.parametrize("text, match", [
    ("task: [pretrain\n", "not valid YAML"),
    ("optim:\n  lr: 1\n   eps: 2\n", "not valid YAML"),
    ("- task\n- pretrain\n", "a recipe must be a mapping"),
])
def test_invalid_recipe_file(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_config(path, [SHARDS])


def test_unknown_key_in_recipe_file(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("parent: pretrain_tiny\nschedule:\n  warmup: 10\n")
    with pytest.raises(ValueError, match=r"^config key schedule\.warmup: unknown"):
        load_config(path, [SHARDS])


# --- precedence: defaults < recipe < child recipe < command line < keyword fields ------------------
def test_defaults_without_recipe():
    # no recipe: runs/<task>, never one directory every task shares
    assert load_config(None, [SHARDS]) == TrainConfig(data=DataConfig(shards="/x"), run_dir="runs/pretrain")
    assert load_config(None, [SHARDS, "task=cls"]).run_dir == "runs/cls"
    assert load_config(None, [SHARDS]).optim.lr == 5e-4


def test_precedence_chain(tmp_path):
    assert TrainConfig().max_updates == 400_000  # default
    assert load_config("finetune_ctc_original", [SHARDS]).max_updates == 20_000  # recipe
    child = load_config("finetune_ctc_tiny", [SHARDS])
    assert child.max_updates == 600  # child over parent
    assert child.schedule.kind == "tri_stage" and child.optim.eps == 1e-8  # inherited from the parent
    assert child.optim.lr == 2e-3  # the child's, not the parent's 5e-5
    cli = load_config("finetune_ctc_tiny", [SHARDS, "max_updates=7"])
    assert cli.max_updates == 7  # command line over the recipe chain
    kw = load_config("finetune_ctc_tiny", [SHARDS, "max_updates=7"], max_updates=9)
    assert kw.max_updates == 9  # keyword fields over the command line
    assert kw.freeze_transformer_updates == 0 and kw.global_batch_s == 16  # the rest untouched

    # a later override wins over an earlier one
    assert load_config("pretrain_tiny", [SHARDS, "seed=2", "seed=3"]).seed == 3


def test_dotted_override_keeps_sibling_keys():
    c = load_config("finetune_ctc_original", [SHARDS, "optim.lr=1e-4", "schedule.phase_ratio=[0.2, 0.3, 0.5]"])
    assert c.optim.lr == 1e-4  # written as 1e-4, not 1.0e-4: a number, not a string
    assert c.optim.eps == 1e-8 and c.optim.weight_decay == 0.0 and c.optim.clip_norm == 0.0
    assert c.schedule.phase_ratio == (0.2, 0.3, 0.5) and c.schedule.final_lr_scale == 0.05
    # keyword sections merge into the recipe's too
    c = load_config("finetune_ctc_original", [SHARDS], optim={"lr": 0.1})
    assert c.optim.lr == 0.1 and c.optim.eps == 1e-8


@pytest.mark.parametrize("text, value", [("1e-4", 1e-4), ("5E-4", 5e-4), ("1.5e3", 1500.0), ("-2e-3", -2e-3)])
def test_exponent_floats_without_a_dot(text, value):
    # YAML 1.1 reads 1e-4 as a string; the recipes and the command line read it as a number
    # (optim.eps must be >= 0: the negative case reads it without the sign)
    c = load_config("pretrain_tiny", [SHARDS, f"optim.eps={text.lstrip('-')}", f"model.overrides.layer_norm_eps={text}"])
    assert c.optim.eps == abs(value)
    assert c.model.overrides["layer_norm_eps"] == value and isinstance(c.model.overrides["layer_norm_eps"], float)
    assert load_config("pretrain_tiny", [SHARDS, "max_updates=1e3"]).max_updates == 1000
    assert load_config("pretrain_tiny", [SHARDS, "run_dir=runs/1e3x"]).run_dir == "runs/1e3x"


def test_model_overrides_merge():
    base = load_config("finetune_ctc_tiny", [SHARDS]).model.overrides
    # the child recipe's overrides merge into the parent's (final_dropout comes from the parent)
    assert base == {"mask_prob": 0.0, "mask_channel_prob": 0.0, "mask_channel_length": 64,
                    "encoder_layerdrop": 0.0, "final_dropout": 0.0, "feature_grad_mult": 1.0}
    c = load_config("finetune_ctc_tiny", [SHARDS, "model.overrides.encoder_layers=2"])
    assert c.model.overrides == {**base, "encoder_layers": 2}
    c = load_config("finetune_ctc_tiny", [SHARDS, "model.overrides.mask_prob=0.5"])
    assert c.model.overrides == {**base, "mask_prob": 0.5}
    c = load_config("finetune_ctc_tiny", [SHARDS], model={"overrides": {"encoder_layers": 3}})
    assert c.model.overrides == {**base, "encoder_layers": 3} and c.model.preset == "tiny"
    # three levels: cls_tiny < cls_original < ctc_original
    assert load_config("finetune_cls_tiny", [SHARDS]).model.overrides == {
        "mask_prob": 0.05, "mask_channel_prob": 0.0, "mask_channel_length": 64,
        "encoder_layerdrop": 0.0, "final_dropout": 0.0, "feature_grad_mult": 1.0}
    # a recipe's own overrides and the command line's merge
    assert load_config("pretrain_tiny", [SHARDS, "model.overrides.encoder_layers=2"]).model.overrides == {
        "latent_temp": [2.0, 0.5, 0.999], "latent_vars": 64, "encoder_layers": 2}
    # a recipe without overrides gets a fresh mapping
    assert load_config("pretrain_original", [SHARDS, "model.overrides.encoder_layers=2"]).model.overrides == {
        "encoder_layers": 2}


def test_user_recipe_with_shipped_parent(tmp_path):
    (tmp_path / "mine.yaml").write_text("parent: pretrain_tiny\nmax_updates: 5\ndata:\n  batch_s: 8.0\n")
    (tmp_path / "mine2.yaml").write_text("parent: mine.yaml\nseed: 4\n")
    c = load_config(tmp_path / "mine2.yaml", [SHARDS])
    assert (c.max_updates, c.seed, c.data.batch_s) == (5, 4, 8.0)
    assert c.data.shuffle_buffer == 500 and c.model.preset == "tiny"  # from pretrain_tiny
    assert resolve_batch(c, 1) == 4  # 8 s x 4 = 32 audio-s
    assert read_recipe(tmp_path / "mine2.yaml")["max_updates"] == 5


def test_loading_does_not_share_state():
    a = load_config("finetune_ctc_tiny", [SHARDS, "model.overrides.encoder_layers=2"])
    b = load_config("finetune_ctc_tiny", [SHARDS])
    assert "encoder_layers" in a.model.overrides and "encoder_layers" not in b.model.overrides


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
@pytest.mark.parametrize("native_bf16", [True, False], ids=["cpu-bf16", "cpu-avx2"])
def test_shipped_recipe_passes_deepspeed_parser(recipe, native_bf16, monkeypatch):
    # the recipe's own combination (precision auto; CTC: no clipping), world size 1, on both CPU kinds
    dsc = pytest.importorskip("deepspeed.runtime.config")
    _cpu_answers(monkeypatch, native_bf16=native_bf16)
    config = load_config(recipe, [SHARDS])
    assert config.precision == "auto"
    ds_path = DS_CONFIG_DIR / Path(config.deepspeed_config).name
    ds = build_ds_config(config, 1, _device(ds_path))
    parsed = dsc.DeepSpeedConfig(ds)
    assert parsed.gradient_accumulation_steps == resolve_batch(config, 1)
    assert parsed.gradient_clipping == config.optim.clip_norm
    precision = built_precision(ds)
    assert precision == ("bf16" if _device(ds_path) == "cuda" or native_bf16 else "fp32")
    assert parsed.bfloat16_config.enabled == (precision == "bf16")
    assert parsed.float16_config.enabled is False


def test_best_metric_chooses_and_is_validated():
    from types import SimpleNamespace

    from ds_w2v.train.tasks import ClsTask

    assert load_config("finetune_ctc_tiny", [SHARDS]).best_metric == "cer"
    with pytest.raises(ValueError, match="config key best_metric: 'acc' is not a dev metric of task ctc: wer, cer, loss"):
        load_config("finetune_ctc_tiny", [SHARDS, "best_metric=acc"]).validate()
    index = SimpleNamespace(labels=["a", "b"])
    default = ClsTask(load_config("finetune_cls_tiny", [SHARDS]), index)
    assert (default.best_metric, default.is_better(0.6, 0.5)) == ("acc", True)
    by_loss = ClsTask(load_config("finetune_cls_tiny", [SHARDS, "best_metric=loss"]), index)
    assert (by_loss.best_metric, by_loss.is_better(0.6, 0.5), by_loss.is_better(0.4, 0.5)) == ("loss", False, True)
    assert ClsTask.best_metric == "acc"  # the class default is untouched


def test_each_section_checks_its_own_keys():
    """Validation is per section: a section alone refuses its bad keys, named as a run names them."""
    from ds_w2v.train.config import DataConfig, OptimConfig, ProbeConfig, ScheduleConfig

    for section, says in ((OptimConfig(lr=-1.0), "config key optim.lr: must be a finite number >= 0, got -1.0"),
                          (OptimConfig(betas=(0.9, 1.0)), "config key optim.betas: must be two numbers in [0, 1)"),
                          (ScheduleConfig(warmup_updates=-2), "config key schedule.warmup_updates: must be >= 0"),
                          (DataConfig(shards=""), "config key data.shards: is required"),
                          (DataConfig(shards="s", batch_s=0), "config key data.batch_s: must be > 0"),
                          (ProbeConfig(epochs=0), "config key probe: max_utterances and epochs must be >= 1")):
        with pytest.raises(ValueError, match="^" + re.escape(says)):
            section.validate()
    for ok in (OptimConfig(), ScheduleConfig(), DataConfig(shards="s"), ProbeConfig()):
        ok.validate()
