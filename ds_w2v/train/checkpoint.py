"""Checkpoints of a run, through DeepSpeed's ``save_checkpoint`` / ``load_checkpoint``.

Layout of ``RUN_DIR``::

    model.json                 task, config and vocabulary / labels of the model (written first)
    checkpoints/update_00001000/ DeepSpeed tag directories (model + optimizer shards of every rank)
    checkpoints/best/          the best-on-dev checkpoint (fine-tuning)
    checkpoints/latest         names the newest *complete* tag: written (atomically) after every
                               rank's files, so a kill or a full disk mid-save leaves it unchanged

The client state holds what DeepSpeed does not: update counter, epoch and stream position,
RNG states (torch, CUDA, numpy, python), best metric, non-finite counters. Only the newest
``keep_last`` update tags stay, never the one ``latest`` names. ``export`` consolidates the fp32
weights of any ZeRO stage into a ds_w2v model file.
"""
from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..models.wav2vec2.factory import MODEL_FORMAT, model_from_payload, save_model
from ..models.wav2vec2.model import Wav2Vec2Task

log = logging.getLogger("ds_w2v.train")
TAG_RE = re.compile(r"^update_(\d{8})$")


def tag_for(update: int) -> str:
    return f"update_{update:08d}"


def ckpt_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def latest_tag(run_dir: Path) -> str | None:
    f = ckpt_dir(run_dir) / "latest"
    if not f.is_file():
        return None
    tag = f.read_text().strip()
    return tag if tag and (ckpt_dir(run_dir) / tag).is_dir() else None


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and (path / "model.json").is_file() and ckpt_dir(path).is_dir()


def write_model_meta(run_dir: Path, model: Wav2Vec2Task) -> None:
    meta = {"format": MODEL_FORMAT, "version": 1, "task": model.task, "config": model.config.to_dict(),
            "extra": model.extra_state()}
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / "model.json.tmp"
    tmp.write_text(json.dumps(meta, indent=1))
    tmp.replace(run_dir / "model.json")


def rng_state() -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def save(engine, run_dir: Path, tag: str, client_state: dict[str, Any], keep_last: int, is_rank0: bool,
         save_latest: bool = True) -> None:
    """Save ``tag``, then point ``latest`` at it. A save that fails (a full disk) removes its
    partial tag directory and leaves ``latest`` on the previous complete checkpoint."""
    # DeepSpeed's own ``latest`` is written by rank 0 without waiting for the other ranks' files,
    # and by truncate-then-write; ours comes after save_checkpoint's closing barrier, by rename
    try:
        engine.save_checkpoint(str(ckpt_dir(run_dir)), tag=tag, client_state=client_state, save_latest=False)
    except BaseException:
        if is_rank0 and tag != latest_tag(run_dir):
            shutil.rmtree(ckpt_dir(run_dir) / tag, ignore_errors=True)  # frees the space it took
        raise
    if not save_latest:
        return
    pause_s = float(os.environ.get("DS_W2V_TEST_SAVE_PAUSE_S", 0))  # tests: widen the kill window
    if pause_s > 0:
        import time

        time.sleep(pause_s)
    if is_rank0:
        tmp = ckpt_dir(run_dir) / "latest.tmp"
        tmp.write_text(tag)
        tmp.replace(ckpt_dir(run_dir) / "latest")
        prune(run_dir, keep_last)


def prune(run_dir: Path, keep_last: int) -> None:
    keep = latest_tag(run_dir)
    tags = sorted(p.name for p in ckpt_dir(run_dir).iterdir() if p.is_dir() and TAG_RE.match(p.name))
    for tag in tags[:-keep_last] if keep_last > 0 else []:
        if tag != keep:
            shutil.rmtree(ckpt_dir(run_dir) / tag, ignore_errors=True)


def load(engine, run_dir: Path, tag: str | None = None) -> dict[str, Any] | None:
    """Load ``tag`` (default: ``latest``) into the engine; returns the client state."""
    tag = tag or latest_tag(run_dir)
    if tag is None:
        return None
    path, client = engine.load_checkpoint(str(ckpt_dir(run_dir)), tag=tag, load_module_strict=True,
                                          load_optimizer_states=True, load_lr_scheduler_states=True)
    if path is None:
        raise RuntimeError(f"{ckpt_dir(run_dir) / tag}: DeepSpeed could not load this checkpoint")
    return client


def consolidated_state_dict(run_dir: Path, tag: str) -> dict[str, torch.Tensor]:
    """fp32 weights of any ZeRO stage (DeepSpeed's zero_to_fp32), on CPU, in one process."""
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    state = get_fp32_state_dict_from_zero_checkpoint(str(ckpt_dir(run_dir)), tag=tag)
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def model_from_run(run_dir: Path, tag: str | None = None) -> Wav2Vec2Task:
    """The run's model at ``tag`` (default: ``best`` if there is one, else ``latest``)."""
    run_dir = Path(run_dir)
    if tag is None:
        tag = "best" if (ckpt_dir(run_dir) / "best").is_dir() else latest_tag(run_dir)
    if tag is None:
        raise FileNotFoundError(f"{run_dir}: no complete checkpoint (checkpoints/latest missing)")
    meta = json.loads((run_dir / "model.json").read_text())
    state = consolidated_state_dict(run_dir, tag)
    template = model_from_payload({**meta, "state_dict": None}, str(run_dir), load_weights=False)
    full = template.state_dict()
    for k in full:  # buffers (the update counter) are not in ZeRO's fp32 partitions
        if k in state:
            full[k] = state[k]
    if "num_updates" not in state:
        client = _client_state(run_dir, tag)
        if client and "update" in client:
            full["num_updates"] = torch.tensor(int(client["update"]))
    template.load_state_dict(full)
    return template


def _client_state(run_dir: Path, tag: str) -> dict[str, Any] | None:
    files = sorted((ckpt_dir(run_dir) / tag).glob("*model_states.pt"))
    if not files:
        return None
    state = torch.load(files[0], map_location="cpu", weights_only=False)
    return state


def export(run_dir: Path, out: Path, tag: str | None = None) -> Path:
    model = model_from_run(run_dir, tag)
    return save_model(model, out)
