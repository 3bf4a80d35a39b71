"""Loading a tag into an engine of another layout (world size, ZeRO stage).

**Another world size or ZeRO stage.** A tag saved on W ranks at ZeRO stage S loads directly into
an engine of the same W and S. Into another (a job rescheduled on fewer GPUs, or moved from
ZeRO-2 to ZeRO-3), ``load`` converts the tag once into DeepSpeed's *universal* checkpoint
(``deepspeed.checkpoint.ds_to_universal``: every parameter's fp32 master and Adam moments,
unpartitioned, under ``checkpoints/universal/<tag>/``), loads that (``checkpoint.load_universal``),
and removes the conversion. The trainer keeps the global batch by changing the accumulation and
maps the data position (``ds_w2v.data.loader``). Stage 0 keeps no partitioned optimizer state, so
a change to or from it is refused unless both sides are stage 0 without per-rank files.
"""
from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .checkpoint_tags import UNIVERSAL, barrier, ckpt_dir

log = logging.getLogger("ds_w2v.train")


@dataclass(frozen=True)
class Layout:
    """How a checkpoint's (or an engine's) state is split: over how many data-parallel ranks, at
    which ZeRO stage, and whether the optimizer state lies in per-rank files."""

    world_size: int
    zero_stage: int
    per_rank_files: bool

    def __str__(self) -> str:
        return f"{self.world_size} rank(s), ZeRO stage {self.zero_stage}"


def saved_layout(run_dir: Path, tag: str) -> Layout:
    """The layout of the tag directory ``tag``, from DeepSpeed's own records in it (the model-
    states file's ``dp_world_size`` and ``ds_config``; the per-rank optimizer files)."""
    d = ckpt_dir(run_dir) / tag
    files = sorted(d.glob("*model_states.pt"))
    if not files:
        raise FileNotFoundError(f"{d}: no DeepSpeed model-states file (an incomplete checkpoint)")
    # mmap: only the small records are read, not the weights
    state = torch.load(files[0], map_location="cpu", weights_only=False, mmap=True)
    stage = int(((state.get("ds_config") or {}).get("zero_optimization") or {}).get("stage", 0))
    per_rank = sorted(d.glob("*optim_states.pt"))
    return Layout(int(state.get("dp_world_size") or max(1, len(per_rank))), stage, bool(per_rank))


def engine_layout(engine) -> Layout:
    stage = int(engine.zero_optimization_stage())
    return Layout(int(engine.dp_world_size), stage, stage > 0 or bool(engine.bfloat16_enabled()))


def load_universal(engine, run_dir: Path, tag: str):
    """Rank 0 converts ``tag`` (once: a complete conversion is kept until loaded), every rank
    loads it, then rank 0 removes it (the run's next save is in the new layout)."""
    import torch.distributed as dist

    rank0 = not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0
    # the converter writes a latest_universal file beside its output: a folder of its own per tag
    work = ckpt_dir(run_dir) / UNIVERSAL / tag
    out = work / tag
    failure = None
    if rank0 and not (out / "zero").is_dir():
        failure = _to_universal(ckpt_dir(run_dir) / tag, out)
    failed = [failure]
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.broadcast_object_list(failed, src=0)  # every rank raises the same line, none waits forever
    if failed[0]:
        raise RuntimeError(failed[0])
    config = engine._config  # the flag is read at load time only; set for this load
    config.load_universal_checkpoint = True
    try:
        result = engine.load_checkpoint(str(out.parent), tag=tag, load_module_strict=True,
                                        load_optimizer_states=True, load_lr_scheduler_states=True)
    finally:
        config.load_universal_checkpoint = False
    barrier()  # every rank has read it
    if rank0:
        shutil.rmtree(work, ignore_errors=True)
        if not any(work.parent.iterdir()):
            work.parent.rmdir()
    return result


def _complete_universal(out: Path) -> None:
    """The converter writes a tag as its *source* stage keeps it, and each stage's loader reads its
    own form: ZeRO-3 a torch-style ``optimizer_state_dict`` (step, hyper-parameters); ZeRO-1/2
    ``ds_version``, every parameter's state as ``{"param": tensor of its shape}`` and a ``step``
    file (a ZeRO-3 source gives flat tensors and no step files). Add what the other family lacks,
    so that one conversion loads at any stage. The step is every parameter's: our optimizer has
    one group, updated together."""
    import deepspeed

    zero = out / "zero"
    path = zero / "optimizer_state.pt"
    sd = torch.load(path, map_location="cpu", weights_only=False)
    steps = sorted(zero.glob("*/step.pt"))
    if "optimizer_state_dict" not in sd:  # from ZeRO-1/2
        step = torch.load(steps[0], map_location="cpu", weights_only=False)
        sd["optimizer_state_dict"] = {"state": {0: {"step": step}}, "param_groups": sd["param_groups"]}
    sd.setdefault("ds_version", deepspeed.__version__)
    torch.save(sd, path)
    if steps:
        return
    # from ZeRO-3: flat tensors, shaped here from the model-states file's parameter shapes
    states = sorted(out.glob("*model_states.pt"))
    shapes: dict[str, Any] = {}
    for group in torch.load(states[0], map_location="cpu", weights_only=False, mmap=True)["param_shapes"]:
        shapes.update(group)
    step = sd["optimizer_state_dict"]["state"][0]["step"]
    for folder in (p for p in zero.iterdir() if p.is_dir()):
        for f in folder.glob("*.pt"):
            t = torch.load(f, map_location="cpu", weights_only=False)
            if torch.is_tensor(t) and folder.name in shapes:
                torch.save({"param": t.reshape(shapes[folder.name])}, f)
        torch.save(step, folder / "step.pt")


def _to_universal(src: Path, out: Path) -> str | None:
    """``ds_to_universal`` of the tag directory ``src`` into ``out`` (written beside it, renamed
    when complete); None, or the one-line reason it failed."""
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    # its own process: the converter runs process pools and prints progress bars
    cmd = [sys.executable, "-m", "deepspeed.checkpoint.ds_to_universal", "--input_folder", str(src),
           "--output_folder", str(tmp), "--num_extract_workers", "2", "--num_merge_workers", "2",
           "--inject_missing_state"]  # our models carry no universal_checkpoint_info: the plain layout
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        last = next((line for line in reversed((proc.stderr or proc.stdout).splitlines()) if line.strip()), "")
        return f"{src}: could not convert it for another world size or ZeRO stage (ds_to_universal: {last.strip()})"
    # the converter copies the model-states files as the source stage names them; an engine
    # reads its own stage's name (ZeRO-3: zero_pp_rank_0_..., others: mp_rank_00_...), and takes
    # only the client state and records from it (the weights come from zero/): give it both names
    _complete_universal(tmp)
    names = ("mp_rank_00_model_states.pt", "zero_pp_rank_0_mp_rank_00_model_states.pt")
    present = [n for n in names if (tmp / n).is_file()]
    for n in names:
        if present and not (tmp / n).exists():
            shutil.copyfile(tmp / present[0], tmp / n)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return None


