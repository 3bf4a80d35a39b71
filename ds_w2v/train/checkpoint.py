"""Checkpoints of a run, through DeepSpeed's ``save_checkpoint`` / ``load_checkpoint``.

Layout of ``RUN_DIR``::

    model.json                   task, config and vocabulary / labels of the model (written first)
    checkpoints/update_00001000/ DeepSpeed tag directories (model + optimizer shards of every rank)
    checkpoints/best_update_00000750/  the best-on-dev checkpoint (fine-tuning), a tag of its own
    checkpoints/latest           names the newest *complete* update tag
    checkpoints/best             names the best tag
    checkpoints/bests            the ``keep_best`` best-on-dev tags kept, best first, with their dev values

Both pointer files are written by rank 0 after every rank's files (DeepSpeed's closing barrier),
by rename, so a kill or a full disk mid-save leaves them on the previous complete tag. A new best
is a new directory; the one it replaces is removed only once ``best`` names the new one. A run
saved before that layout has ``checkpoints/best/`` as a directory: it is still read (with a
warning) and its next best save replaces it. ``resolve_tag`` is the one place where ``latest``,
``best`` and tag names become a directory.

**The N best** (``keep_best=N``, for ``ds-w2v average --best N``): a dev value that ranks among
the N best kept so far is saved as a best tag too, without moving ``best``. The ``bests`` record
(JSON, written by rank 0 by rename once the tag is complete, like the pointers) lists the kept
ones; a best tag that neither ``best`` nor ``bests`` names is a partial or replaced one and is
removed, and the tag that falls out of the N is removed only after the record that drops it stands.

**Another world size or ZeRO stage.** A tag saved on W ranks at ZeRO stage S loads directly into
an engine of the same W and S. Into another (a job rescheduled on fewer GPUs, or moved from
ZeRO-2 to ZeRO-3), ``load`` converts the tag once into DeepSpeed's *universal* checkpoint
(``deepspeed.checkpoint.ds_to_universal``: every parameter's fp32 master and Adam moments,
unpartitioned, under ``checkpoints/universal/<tag>/``), loads that (``checkpoint.load_universal``),
and removes the conversion. The trainer keeps the global batch by changing the accumulation and
maps the data position (``ds_w2v.data.loader``). Stage 0 keeps no partitioned optimizer state, so
a change to or from it is refused unless both sides are stage 0 without per-rank files.

The client state holds what DeepSpeed does not: update counter, epoch and stream position,
RNG states (torch, CUDA, numpy, python), best metric, non-finite counters. Only the newest
``keep_last`` update tags stay, never one a pointer names. ``export`` consolidates the fp32
weights of any ZeRO stage into a ds_w2v model file.
"""
from __future__ import annotations

import json
import logging
import math
import random
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..models.wav2vec2.factory import MODEL_FORMAT, model_from_payload, save_model
from ..models.wav2vec2.model import Wav2Vec2Task

log = logging.getLogger("ds_w2v.train")
LATEST, BEST = "latest", "best"  # the pointer files' names, accepted wherever a tag is
BESTS = "bests"  # the record of the kept best tags (keep_best): [{"tag", "update", "value"}], best first
TAG_RE = re.compile(r"^update_(\d{8})$")
# a distinct family, so that keep_last counts update tags only; "_1" when a resumed run saves a best
# again at the update of the best it saved before it was killed (that tag must not be overwritten)
BEST_TAG_RE = re.compile(r"^best_update_(\d{8})(_\d+)?$")
# where an older run's best directory goes while a pointer file takes its name (a rename: the
# directory cannot be replaced by a file in one step); read as the best until the pointer stands
OLD_BEST_MOVED = "best.replaced"
UNIVERSAL = "universal"  # checkpoints/universal/<tag>/: a tag converted for another world size or stage


def tag_for(update: int) -> str:
    return f"update_{update:08d}"


def ckpt_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def _is_tag(run_dir: Path, tag: str) -> bool:
    # a plain name inside checkpoints/, never a path out of it
    return tag not in ("", ".", "..") and Path(tag).name == tag and (ckpt_dir(run_dir) / tag).is_dir()


def _read_pointer(run_dir: Path, name: str) -> str | None:
    f = ckpt_dir(run_dir) / name
    if not f.is_file():
        return None
    tag = f.read_text().strip()
    return tag if _is_tag(run_dir, tag) else None


def _write_pointer(run_dir: Path, name: str, tag: str) -> None:
    tmp = ckpt_dir(run_dir) / f"{name}.tmp"
    tmp.write_text(tag)
    tmp.replace(ckpt_dir(run_dir) / name)


def latest_tag(run_dir: Path) -> str | None:
    return _read_pointer(run_dir, LATEST)


def best_tag(run_dir: Path) -> str | None:
    """The tag directory of the best checkpoint: the one ``checkpoints/best`` names, or, in a run
    saved before that file existed, the ``best`` directory itself (``best.replaced`` if a kill
    fell between its rename and the pointer's)."""
    d = ckpt_dir(run_dir)
    if (d / BEST).is_dir():
        return BEST
    if (d / BEST).is_file():
        return _read_pointer(run_dir, BEST)
    return OLD_BEST_MOVED if (d / OLD_BEST_MOVED).is_dir() else None


def _pointed_at(run_dir: Path) -> set[str]:
    """The tags a pointer or the ``bests`` record names: complete, never removed."""
    listed = {e["tag"] for e in kept_bests(run_dir)}
    return listed | {t for t in (latest_tag(run_dir), best_tag(run_dir)) if t}


@dataclass(frozen=True)
class BestRank:
    """A best-on-dev save's place: its dev value of the task's best metric, the metric's direction,
    how many best tags the run keeps (``keep_best``) and whether it is a new best (``best`` moves)."""

    value: float
    higher_is_better: bool
    keep: int
    new_best: bool

    def order(self, value: float | None) -> float:
        """Sort key, best first; NaN (or no value) last."""
        if value is None or math.isnan(value):
            return math.inf
        return -value if self.higher_is_better else value


def kept_bests(run_dir: Path) -> list[dict[str, Any]]:
    """The ``bests`` record's entries whose tag directory exists (none for a run without one)."""
    f = ckpt_dir(run_dir) / BESTS
    try:
        entries = json.loads(f.read_text())
    except (FileNotFoundError, ValueError):  # no record (keep_best unused, an older run); never half a one: renamed
        return []
    return [e for e in entries if isinstance(e, dict) and _is_tag(run_dir, str(e.get("tag", "")))]


def ranks_among_bests(run_dir: Path, rank: BestRank) -> bool:
    """Whether a dev value that is not a new best still belongs among the ``rank.keep`` best tags:
    fewer are kept, or it beats the worst of them. Every rank reads the same record (it changes
    only inside _commit_best, between barriers), so all agree on the collective save."""
    if rank.keep <= 1:
        return False
    entries = kept_bests(run_dir)
    held = {e["tag"] for e in entries} | {t for t in (best_tag(run_dir),) if t}  # an older run's best: a slot
    if len(held) < rank.keep:
        return True
    return bool(entries) and rank.order(rank.value) < max(rank.order(e.get("value")) for e in entries)


def _inventory(run_dir: Path) -> str:
    d = ckpt_dir(run_dir)
    tags = sorted(p.name for p in d.iterdir() if p.is_dir()) if d.is_dir() else []
    pointers = [f"{name} -> {t}" for name, t in ((LATEST, latest_tag(run_dir)), (BEST, best_tag(run_dir))) if t]
    return "tags: " + (", ".join(tags) or "none") + "".join(f"; {p}" for p in pointers)


def complete_tags(run_dir: Path) -> dict[str, int]:
    """Every tag directory a kill or a failed save cannot have left half-written -> its update: the
    update tags up to the one ``latest`` names (a newer one is a save cut short), and the tags a
    pointer or the ``bests`` record names (written after their tag was complete)."""
    run_dir = Path(run_dir)
    latest = latest_tag(run_dir)
    newest = _tag_update(run_dir, latest) if latest else -1
    found: dict[str, int] = {}
    d = ckpt_dir(run_dir)
    for p in sorted(d.iterdir()) if d.is_dir() else []:
        m = TAG_RE.match(p.name)
        if p.is_dir() and m and int(m.group(1)) <= newest:
            found[p.name] = int(m.group(1))
    for tag in _pointed_at(run_dir):
        update = _tag_update(run_dir, tag)
        if update is not None:
            found[tag] = update
    return found


def _tag_update(run_dir: Path, tag: str) -> int | None:
    """The update a tag was saved at: from its name, or (a best of the older layout) its client state."""
    m = TAG_RE.match(tag) or BEST_TAG_RE.match(tag)
    if m:
        return int(m.group(1))
    client = saved_state(run_dir, tag)
    return int(client["update"]) if client and "update" in client else None


def resolve_tag(run_dir: Path, tag: str | None) -> str:
    """The tag directory (in ``checkpoints/``) that ``tag`` stands for: ``latest`` and ``best``
    the ones their pointer files name, a tag directory's name itself, None ``best`` if the run
    has one, else ``latest``. FileNotFoundError when there is no such checkpoint."""
    run_dir = Path(run_dir)
    if tag is None:
        tag = BEST if best_tag(run_dir) else LATEST
    if tag == LATEST:
        found = latest_tag(run_dir)
    elif tag == BEST:
        found = best_tag(run_dir)
    else:
        found = tag if _is_tag(run_dir, tag) else None
    if found is None:
        raise FileNotFoundError(f"{run_dir}: no checkpoint {tag!r} ({_inventory(run_dir)})")
    if found in (BEST, OLD_BEST_MOVED):
        log.warning("%s: checkpoints/%s is a best checkpoint in the layout before the best pointer file; "
                    "using it (the run's next best save replaces it)", run_dir, found)
    return found


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and (path / "model.json").is_file() and ckpt_dir(path).is_dir()


# the model config fields that decide parameter shapes (or what the parameters mean): a checkpoint
# made with other values cannot be resumed by this model
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
        if is_rank0 and tag not in _pointed_at(run_dir):
            shutil.rmtree(ckpt_dir(run_dir) / tag, ignore_errors=True)  # frees the space it took
        raise
    if is_best:
        _commit_best(run_dir, tag, is_rank0, int(client_state["update"]), rank)
    if not save_latest:
        return tag
    if is_rank0:
        _write_pointer(run_dir, LATEST, tag)
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
    taken = _pointed_at(run_dir)
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
                _write_pointer(run_dir, BESTS, json.dumps(entries[:max(1, rank.keep)], indent=1))
            if rank is None or rank.new_best:
                _write_pointer(run_dir, BEST, tag)
            _remove_stale_bests(run_dir)
    finally:
        _barrier()


def _remove_stale_bests(run_dir: Path) -> None:
    """Best tags no pointer names: the one just replaced, or one a killed save left."""
    keep = _pointed_at(run_dir)
    for p in ckpt_dir(run_dir).iterdir():
        if p.is_dir() and (BEST_TAG_RE.match(p.name) or p.name == OLD_BEST_MOVED) and p.name not in keep:
            shutil.rmtree(p, ignore_errors=True)


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def prune(run_dir: Path, keep_last: int) -> None:
    """Keep the newest ``keep_last`` update tags, and every tag ``latest`` or ``best`` names; remove
    best tags a killed best save left behind."""
    keep = _pointed_at(run_dir)
    tags = sorted(p.name for p in ckpt_dir(run_dir).iterdir() if p.is_dir() and TAG_RE.match(p.name))
    for tag in tags[:-keep_last] if keep_last > 0 else []:
        if tag not in keep:
            shutil.rmtree(ckpt_dir(run_dir) / tag, ignore_errors=True)
    _remove_stale_bests(run_dir)


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
        path, client = _load_universal(engine, run_dir, found)
    if path is None:
        raise RuntimeError(f"{ckpt_dir(run_dir) / found}: DeepSpeed could not load this checkpoint")
    return client


def _load_universal(engine, run_dir: Path, tag: str):
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
    _barrier()  # every rank has read it
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


def consolidated_state_dict(run_dir: Path, tag: str) -> dict[str, torch.Tensor]:
    """fp32 weights of any ZeRO stage (DeepSpeed's zero_to_fp32), on CPU, in one process."""
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    state = get_fp32_state_dict_from_zero_checkpoint(str(ckpt_dir(run_dir)), tag=tag)
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def model_from_run(run_dir: Path, tag: str | None = None) -> Wav2Vec2Task:
    """The run's model at ``tag`` (``latest``, ``best``, a tag directory's name; default: ``best``
    if there is one, else ``latest``)."""
    run_dir = Path(run_dir)
    tag = resolve_tag(run_dir, tag)
    return model_with_state(run_dir, tag, consolidated_state_dict(run_dir, tag))


def model_with_state(run_dir: Path, tag: str, state: dict[str, torch.Tensor]) -> Wav2Vec2Task:
    """The run's model (``model.json``) holding ``state`` (consolidated weights, as of ``tag``)."""
    meta = json.loads((Path(run_dir) / "model.json").read_text())
    template = model_from_payload({**meta, "state_dict": None}, str(run_dir), load_weights=False)
    full = template.state_dict()
    for k in full:  # buffers (the update counter) are not in ZeRO's fp32 partitions
        if k in state:
            full[k] = state[k]
    if "num_updates" not in state:
        client = saved_state(run_dir, tag)
        if client and "update" in client:
            full["num_updates"] = torch.tensor(int(client["update"]))
    template.load_state_dict(full)
    return template


def saved_state(run_dir: Path, tag: str) -> dict[str, Any] | None:
    """What DeepSpeed saved beside the weights of ``tag`` (our client state's keys among them),
    read from rank 0's model-states file without an engine; None if there is none."""
    files = sorted((ckpt_dir(run_dir) / tag).glob("*model_states.pt"))
    if not files:
        return None
    state = torch.load(files[0], map_location="cpu", weights_only=False)
    return state


def export(run_dir: Path, out: Path, tag: str | None = None) -> Path:
    model = model_from_run(run_dir, tag)
    return save_model(model, out)
