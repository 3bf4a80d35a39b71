"""``deepspeed.initialize`` over a model: the DeepSpeed engine and its optimizer.

GPU DeepSpeed configs name ``"optimizer": {"type": "AdamW"}``, which DeepSpeed builds as FusedAdam
(a CUDA op, JIT-compiled with nvcc) or, under ``offload_optimizer``, DeepSpeedCPUAdam (a C++ op).
Where that op cannot be built (no nvcc, a CUDA version mismatch, no compiler) the run uses torch's
AdamW instead, with one warning, rather than failing at start-up: ``choose_optimizer`` decides.
A failure is remembered (``op_record.py``: in this process, and for every process given
``DS_W2V_OP_RECORD``), so that the build is not tried again for each engine or each run.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

from . import op_record
from .config import OptimConfig

log = logging.getLogger("ds_w2v.train")

# zero_optimization.offload_optimizer.device values under which DeepSpeed steps with DeepSpeedCPUAdam
# (engine.zero_use_cpu_optimizer)
_CPU_OPTIMIZER_OFFLOAD = ("cpu", "nvme")


@dataclass(frozen=True)
class OpBuild:
    """What one attempt to build (or load) a DeepSpeed op gave."""

    error: str | None
    """The first line of why the op cannot be used; None when it loaded."""
    build_s: float
    """Seconds the attempt took: a first JIT build compiles for minutes, a cached one loads in ~1 s."""


@dataclass(frozen=True)
class OptimizerChoice:
    """What ``build_engine`` hands to ``deepspeed.initialize``."""

    ds_config: dict[str, Any]
    adamw: dict[str, Any] | None
    """Keyword arguments of the torch AdamW to build and pass in; None: DeepSpeed builds its own
    from the config's ``"optimizer"`` block."""
    warning: str | None = None
    """One line saying why DeepSpeed's optimizer was replaced by torch's; None when it was not."""


def probe_op_builder(builder_name: str) -> OpBuild:
    """Build or load DeepSpeed's op ``builder_name`` (``FusedAdamBuilder``, ``CPUAdamBuilder``) as its
    optimizer would on first use; a success leaves it in torch's extension cache for that use.

    A failure recorded by an earlier attempt (``op_record``) is answered at once, without building:
    a failed build fails again, and a cut-short one (the GPU check's timeout) would wait on its lock."""
    recorded = op_record.recorded_failure(builder_name)
    if recorded is not None:
        return OpBuild(f"{recorded} [recorded earlier; not retried]", 0.0)
    start = time.perf_counter()
    try:
        from deepspeed.ops import op_builder

        builder = getattr(op_builder, builder_name)()
        if builder.is_compatible():
            builder.load()
            error = None
        else:
            error = builder.error_log or "not compatible with this machine"
    except Exception as e:  # noqa: BLE001 -- whatever stops the build (nvcc, CUDA, compiler) means torch's AdamW
        lines = str(e).strip().splitlines()
        error = f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__
    if error is not None:
        error = error.strip().splitlines()[0] if error.strip() else "failed"
        op_record.record_failure(builder_name, error)
    return OpBuild(error, time.perf_counter() - start)


def agreed_probe(builder_name: str, device: torch.device) -> OpBuild:
    """``probe_op_builder`` on every rank, and the ranks agree: if the op fails on one (a node
    without nvcc), every rank uses torch's AdamW, so that all keep the same optimizer state."""
    from .distributed import all_reduce

    build = probe_op_builder(builder_name)
    built_everywhere = all_reduce([0.0 if build.error else 1.0], "min", device)[0] > 0
    if build.error is None and not built_everywhere:
        return OpBuild("built here but not on every rank", build.build_s)
    return build


def _is_adamw(block: dict[str, Any]) -> bool:
    """Whether DeepSpeed builds this ``"optimizer"`` block as decoupled-weight-decay Adam (AdamW):
    ``AdamW`` always, ``Adam`` unless ``adam_w_mode`` is false (names are case-insensitive)."""
    kind = str(block.get("type", "")).lower()
    return kind == "adamw" or (kind == "adam" and (block.get("params") or {}).get("adam_w_mode", True))


def choose_optimizer(ds_config: dict[str, Any], optim: OptimConfig, device_type: str,
                     probe: Callable[[str], OpBuild]) -> OptimizerChoice:
    """DeepSpeed's Adam when ``probe`` can build its op here, else torch's AdamW with a warning.

    A config without an ``"optimizer"`` block (the CPU ones) always gets torch's AdamW. The
    hyper-parameters come from ``optim``, the recipe's, which ``build_ds_config`` also wrote into
    the block's params: either optimizer gets the same lr, betas, eps and weight decay."""
    adamw = dict(lr=optim.lr, betas=tuple(optim.betas), eps=optim.eps, weight_decay=optim.weight_decay,
                 fused=device_type in ("cpu", "cuda"))  # torch's fused kernels exist for these devices
    block = ds_config.get("optimizer")
    if block is None:
        return OptimizerChoice(ds_config, adamw)
    if not _is_adamw(block):
        return OptimizerChoice(ds_config, None)  # another DeepSpeed optimizer: built, or refused, as configured
    offload = (ds_config.get("zero_optimization") or {}).get("offload_optimizer") or {}
    offloaded = offload.get("device") in _CPU_OPTIMIZER_OFFLOAD
    op, builder = ("DeepSpeedCPUAdam", "CPUAdamBuilder") if offloaded else ("FusedAdam", "FusedAdamBuilder")
    build = probe(builder)
    if build.error is None:
        return OptimizerChoice(ds_config, None)
    ds = {k: v for k, v in ds_config.items() if k != "optimizer"}
    if offloaded:
        # DeepSpeed raises on a client optimizer under offload unless told not to; torch's AdamW then
        # steps the CPU-resident fp32 partitions and moments (slower than DeepSpeedCPUAdam, but runs)
        ds["zero_force_ds_cpu_optimizer"] = False
    where = " on the CPU-offloaded optimizer state" if offloaded else ""
    warning = (f"DeepSpeed's {op} op could not be built ({build.error}; attempt took {build.build_s:.1f} s): "
               f"using torch.optim.AdamW{' (fused)' if adamw['fused'] else ''}{where} instead")
    return OptimizerChoice(ds, adamw, warning)


def build_engine(model: torch.nn.Module, ds_config: dict[str, Any], optim: OptimConfig, device: torch.device):
    """``deepspeed.initialize`` over the model's trainable parameters: (engine, optimizer).

    The optimizer is the one ``choose_optimizer`` picks: torch's fused AdamW with the recipe's
    hyper-parameters for a config without an ``"optimizer"`` block (the CPU ones), DeepSpeed's
    FusedAdam / DeepSpeedCPUAdam for the GPU configs, or torch's AdamW where that op cannot be
    built. ``build_ds_config`` makes ``ds_config``; ``init_distributed`` must have run."""
    import deepspeed

    params = [p for p in model.parameters() if p.requires_grad]
    choice = choose_optimizer(ds_config, optim, device.type, lambda name: agreed_probe(name, device))
    if choice.warning:
        log.warning(choice.warning)
    optimizer = torch.optim.AdamW(params, **choice.adamw) if choice.adamw is not None else None
    engine, optimizer, _, _ = deepspeed.initialize(
        model=model, model_parameters=params, optimizer=optimizer, config=choice.ds_config, dist_init_required=False
    )
    return engine, optimizer
