"""Turn a shipped DeepSpeed JSON (ZeRO stage, offload, optimizer implementation) plus the run's
config into the dict handed to ``deepspeed.initialize``: batch integers from the audio-seconds
arithmetic, precision, gradient clipping and optimizer hyper-parameters from the recipe. No
``"auto"`` value survives; a combination DeepSpeed would reject later is refused here, first.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .config import TrainConfig, resolve_batch
from .precision import Precision, json_precision, resolve_precision

_PACKAGE = Path(__file__).resolve().parents[1]
# Where the shipped DeepSpeed JSONs are, first found first: inside the package in an installed
# wheel (setup.py's build_py copies the checkout's top-level ds_configs/ there), else at the
# checkout's top level (a source tree or an editable install), which is their one source.
DS_CONFIG_DIRS = (_PACKAGE / "ds_configs", _PACKAGE.parent / "ds_configs")
DS_CONFIG_DIR = next((d for d in DS_CONFIG_DIRS if d.is_dir()), DS_CONFIG_DIRS[-1])


def find_ds_config(path: str) -> Path:
    """``path`` as given (absolute, or relative to the working directory), else the shipped JSON
    of that name: recipes say ``ds_configs/zero2.json`` and run from any directory."""
    p = Path(path)
    if p.is_file():
        return p
    for d in DS_CONFIG_DIRS:
        if (d / p.name).is_file():
            return d / p.name
    raise FileNotFoundError(f"config key deepspeed_config: {path}: no such file, nor a shipped config of that name "
                            f"(in {DS_CONFIG_DIR})")


def read_ds_config(path: str) -> dict[str, Any]:
    p = find_ds_config(path)
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"config key deepspeed_config: {p}: not valid JSON ({e})") from None


def _no_auto(d: Any, path: str = "") -> None:
    if isinstance(d, dict):
        for k, v in d.items():
            _no_auto(v, f"{path}.{k}" if path else k)
    elif d == "auto":
        raise ValueError(f"config key deepspeed_config: {path} is \"auto\"; give a value")


def built_precision(ds: dict[str, Any]) -> str:
    """The precision of a DeepSpeed dict made by :func:`build_ds_config` (exactly one block enabled, or none)."""
    return json_precision(ds) or "fp32"


def build_ds_config(config: TrainConfig, world_size: int, device_type: str,
                    precision: Precision | None = None) -> dict[str, Any]:
    """``precision``: already resolved (the trainer logs it); None: resolved here from the config."""
    ds = read_ds_config(config.deepspeed_config)
    accum = resolve_batch(config, world_size)
    # one duration-filled batch is one DeepSpeed micro-batch
    ds["train_micro_batch_size_per_gpu"] = 1
    ds["gradient_accumulation_steps"] = accum
    ds["train_batch_size"] = accum * world_size
    ds["gradient_clipping"] = config.optim.clip_norm
    ds.setdefault("steps_per_print", 10**9)  # our logger reports; keep DeepSpeed quiet
    precision = (precision or resolve_precision(config.precision, ds, device_type)).name
    fp16 = ds.pop("fp16", None) if precision != "fp16" else ds.get("fp16")
    if precision == "fp16":
        if not (fp16 or {}).get("enabled"):
            ds["fp16"] = {"enabled": True, "loss_scale": 0, "initial_scale_power": 16, "loss_scale_window": 1000,
                          "hysteresis": 2, "min_loss_scale": 1}  # dynamic loss scaling
    ds.pop("bf16", None)
    if precision == "bf16":
        # skip (not apply) an update whose gradients are not finite
        ds["bf16"] = {"enabled": True, "check_grad_overflow": True}
    if "optimizer" in ds:
        params = ds["optimizer"].setdefault("params", {})
        params.update(lr=config.optim.lr, betas=list(config.optim.betas), eps=config.optim.eps,
                      weight_decay=config.optim.weight_decay)
    zero = ds.get("zero_optimization", {})
    if zero.get("offload_optimizer", {}).get("device") == "cpu" and "optimizer" not in ds:
        raise ValueError("config key deepspeed_config: optimizer offload needs an \"optimizer\" block (DeepSpeedCPUAdam)")
    if device_type == "cpu" and "optimizer" in ds:
        raise ValueError(
            f"config key deepspeed_config: {config.deepspeed_config} names a GPU optimizer; on CPU use ds_configs/cpu.json"
        )
    if "optimizer" not in ds:
        ds["zero_allow_untested_optimizer"] = True  # the trainer passes torch's fused AdamW
    if config.compile != "none" and ds.get("zero_optimization", {}).get("stage") == 3:
        # Tried on CPU (DeepSpeed 0.19.8, torch 2.13): the losses are right, but ZeRO-3 gathers
        # parameters in per-module forward hooks marked torch.compiler.disable, so dynamo breaks
        # the graph at every Linear / LayerNorm / Dropout and soon hits its recompile limit (8):
        # the blocks would run uncompiled, after minutes of compiling.
        raise ValueError(
            f"config key compile: {config.compile} is refused with ZeRO-3 ({config.deepspeed_config}): its "
            "per-module parameter gathers break the compiled graphs at every layer; use ZeRO-1/2 or compile=none"
        )
    _no_auto(ds)
    return ds
