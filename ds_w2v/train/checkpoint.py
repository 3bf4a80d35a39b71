"""Checkpoints of a run, through DeepSpeed's ``save_checkpoint`` / ``load_checkpoint``: ``save``
(with the best-on-dev tags and pruning), ``load`` (through :mod:`.checkpoint_universal` into
another layout), the client state's RNG states, and whether a run directory can be resumed.
Tag names and pointers: :mod:`.checkpoint_tags`; export: :mod:`.checkpoint_export`.

The client state holds what DeepSpeed does not: update counter, epoch and stream position,
RNG states (torch, CUDA, numpy, python), best metric, non-finite counters. Only the newest
``keep_last`` update tags stay, never one a pointer names. ``export`` consolidates the fp32
weights of any ZeRO stage into a ds_w2v model file.
"""
from __future__ import annotations

import json
import logging
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..models.wav2vec2.factory import MODEL_FORMAT
from ..models.wav2vec2.model import Wav2Vec2Task
from .checkpoint_tags import (
    BEST, BEST_TAG_RE, BESTS, LATEST, OLD_BEST_MOVED, TAG_RE, BestRank, barrier, ckpt_dir, kept_bests, latest_tag,
    pointed_at, resolve_tag, write_pointer,
)
from .checkpoint_universal import engine_layout, load_universal, saved_layout

log = logging.getLogger("ds_w2v.train")


SHAPE_KEYS = ("conv_layers", "extractor_mode", "conv_bias", "encoder_layers", "encoder_embed_dim",
              "encoder_ffn_embed_dim", "encoder_attention_heads", "layer_norm_first", "conv_pos", "conv_pos_groups",
              "latent_vars", "latent_groups", "latent_dim", "final_dim", "classifier_proj_size",
              "use_weighted_layer_sum")


def resume_problem(run_dir: Path, model: Wav2Vec2Task) -> str | None:
    """Why ``model`` cannot resume the checkpoints in ``run_dir`` (another task, shape, vocabulary
    or label set, read from its ``model.json``), or None (nothing to resume, or it fits). Checked
    before anything is written, so that the answer is one line, not a missing-key traceback."""
    if latest_tag(run_dir) is None:
        return None
    try:
        meta = json.loads((Path(run_dir) / "model.json").read_text())
    except (OSError, ValueError):
        return None  # an older layout: DeepSpeed's own load will say what does not fit
    if meta.get("task") != model.task:
        return f"holds the checkpoints of a {meta.get('task')} run, and this is a {model.task} run"
    old = meta.get("config") or {}
    new = json.loads(json.dumps(model.config.to_dict()))  # tuples as JSON lists, as model.json has them
    diff = [k for k in SHAPE_KEYS if k in old and old[k] != new.get(k)]
    if diff:
        shown = "; ".join(f"{k} {old[k]} there, {new.get(k)} here" for k in diff[:3])
        return f"holds the checkpoints of another model ({shown})"
    old_extra, new_extra = meta.get("extra") or {}, json.loads(json.dumps(model.extra_state()))
    for key in sorted(set(old_extra) | set(new_extra)):
        if old_extra.get(key) != new_extra.get(key):
            return f"holds the checkpoints of a model with another {key}"
    return None


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
         save_latest: bool = True, rank: BestRank | None = None) -> str:
    """Save ``tag``, then point ``latest`` at it; returns the tag directory written. ``tag="best"``
    writes a new ``best_update_*`` tag (from ``client_state["update"]``) and points ``best`` at it;
    with a ``rank``, enters it into the ``bests`` record (keeping ``rank.keep``) and moves ``best``
    only for a new best. A save that fails (a full disk) removes its partial tag directory and
    leaves the pointers and the record on the previous complete checkpoints."""
    run_dir = Path(run_dir)
    is_best = tag == BEST
    if is_best:
        tag = _new_best_tag(run_dir, int(client_state["update"]))
        if is_rank0:
            # files of a killed save of this tag (perhaps of another world size, whose extra shard
            # files zero_to_fp32 would read); safe here: the other ranks write only after
            # save_checkpoint's opening barrier, which rank 0 reaches after this
            shutil.rmtree(ckpt_dir(run_dir) / tag, ignore_errors=True)
    # DeepSpeed's own ``latest`` is written by rank 0 without waiting for the other ranks' files,
    # and by truncate-then-write; ours comes after save_checkpoint's closing barrier, by rename
    try:
        engine.save_checkpoint(str(ckpt_dir(run_dir)), tag=tag, client_state=client_state, save_latest=False)
    except BaseException:
        if is_rank0 and tag not in pointed_at(run_dir):
            shutil.rmtree(ckpt_dir(run_dir) / tag, ignore_errors=True)  # frees the space it took
        raise
    if is_best:
        _commit_best(run_dir, tag, is_rank0, int(client_state["update"]), rank)
    if not save_latest:
        return tag
    if is_rank0:
        write_pointer(run_dir, LATEST, tag)
        prune(run_dir, keep_last)
    return tag


# a filesystem with less free space than this after a failed write is taken to be full: torch's
# zip writer reports a full disk as "unexpected pos" / "file write failed", not as ENOSPC
FULL_DISK_BYTES = 64 * 2**20
_FULL_DISK_ERRNOS = (28, 122)  # ENOSPC, EDQUOT (Linux)


def save_failure(e: BaseException, run_dir: Path) -> str:
    """Why a save failed, in a few words: "no space left on device (12 MiB free on RUN_DIR's
    filesystem)" where that is the cause, else the exception's own first line."""
    chain, seen = e, set()
    while chain is not None and id(chain) not in seen:  # ENOSPC anywhere in the chain
        seen.add(id(chain))
        if isinstance(chain, OSError) and chain.errno in _FULL_DISK_ERRNOS:
            break
        chain = chain.__cause__ or chain.__context__
    try:
        free = shutil.disk_usage(run_dir).free
    except OSError:
        free = None
    where = f" ({free / 2**20:,.0f} MiB free on the filesystem of {run_dir})" if free is not None else ""
    if chain is not None or (free is not None and free < FULL_DISK_BYTES):
        return "no space left on device" + where
    first = (str(e).strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {first}"


def _new_best_tag(run_dir: Path, update: int) -> str:
    # every rank computes it (DeepSpeed wants one tag): from the shared ``best`` pointer, which
    # only moves inside _commit_best, between barriers
    taken = pointed_at(run_dir)
    base = tag = f"best_update_{update:08d}"
    suffix = 0
    while tag in taken:
        suffix += 1
        tag = f"{base}_{suffix}"
    return tag


def _commit_best(run_dir: Path, tag: str, is_rank0: bool, update: int, rank: BestRank | None) -> None:
    """Rank 0 enters the complete ``tag`` into the ``bests`` record (with a ``rank``), points
    ``best`` at it (a new best) and removes the best tags neither names any more; then every rank
    waits, so that none reads ``best`` (the trainer loads it after its last save) or the record
    before they moved. A kill between the two renames keeps both the old and the new best: the
    pointer still names the one, the record the other."""
    d = ckpt_dir(run_dir)
    try:
        if is_rank0:
            if (d / BEST).is_dir():  # an older run's best: out of the way, removed once the pointer stands
                (d / BEST).rename(d / OLD_BEST_MOVED)
            if rank is not None:
                entries = [e for e in kept_bests(run_dir) if e["tag"] != tag]
                entries.append({"tag": tag, "update": update, "value": rank.value})
                entries.sort(key=lambda e: rank.order(e.get("value")))
                write_pointer(run_dir, BESTS, json.dumps(entries[:max(1, rank.keep)], indent=1))
            if rank is None or rank.new_best:
                write_pointer(run_dir, BEST, tag)
            _remove_stale_bests(run_dir)
    finally:
        barrier()


def _remove_stale_bests(run_dir: Path) -> None:
    """Best tags no pointer names: the one just replaced, or one a killed save left."""
    keep = pointed_at(run_dir)
    for p in ckpt_dir(run_dir).iterdir():
        if p.is_dir() and (BEST_TAG_RE.match(p.name) or p.name == OLD_BEST_MOVED) and p.name not in keep:
            shutil.rmtree(p, ignore_errors=True)


def prune(run_dir: Path, keep_last: int) -> None:
    """Keep the newest ``keep_last`` update tags, and every tag ``latest`` or ``best`` names; remove
    best tags a killed best save left behind."""
    keep = pointed_at(run_dir)
    tags = sorted(p.name for p in ckpt_dir(run_dir).iterdir() if p.is_dir() and TAG_RE.match(p.name))
    for tag in tags[:-keep_last] if keep_last > 0 else []:
        if tag not in keep:
            shutil.rmtree(ckpt_dir(run_dir) / tag, ignore_errors=True)
    _remove_stale_bests(run_dir)


def load(engine, run_dir: Path, tag: str | None = None) -> dict[str, Any]:
    """Load ``tag`` (default: ``latest``; see resolve_tag) into the engine; returns the client state.
    A tag of another world size or ZeRO stage goes through DeepSpeed's universal checkpoint (module
    docstring). FileNotFoundError when the run has no such checkpoint."""
    found = resolve_tag(run_dir, tag or LATEST)
    saved, now = saved_layout(run_dir, found), engine_layout(engine)
    if saved == now or (saved.zero_stage == now.zero_stage == 0 and not saved.per_rank_files and not now.per_rank_files):
        path, client = engine.load_checkpoint(str(ckpt_dir(run_dir)), tag=found, load_module_strict=True,
                                              load_optimizer_states=True, load_lr_scheduler_states=True)
    elif saved.zero_stage == 0 or now.zero_stage == 0:
        raise ValueError(
            f"{ckpt_dir(run_dir) / found}: saved on {saved}, this run has {now}; a change of world size or "
            "stage needs ZeRO stage 1-3 on both sides (DeepSpeed's universal checkpoint): resume with the saved "
            "world size and stage, or start a new run from `ds-w2v export` with model.init="
        )
    else:
        log.info("%s: saved on %s, resuming on %s: through DeepSpeed's universal checkpoint", found, saved, now)
        path, client = load_universal(engine, run_dir, found)
    if path is None:
        raise RuntimeError(f"{ckpt_dir(run_dir) / found}: DeepSpeed could not load this checkpoint")
    return client


