"""A run's checkpoint directory by name: tags, the ``latest`` / ``best`` pointers, the record of
the kept bests, and which tags are complete (:mod:`ds_w2v.train.checkpoint` saves and loads them).

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
"""
from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

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


def write_pointer(run_dir: Path, name: str, tag: str) -> None:
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


def pointed_at(run_dir: Path) -> set[str]:
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
    for tag in pointed_at(run_dir):
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


def saved_state(run_dir: Path, tag: str) -> dict[str, Any] | None:
    """What DeepSpeed saved beside the weights of ``tag`` (our client state's keys among them),
    read from rank 0's model-states file without an engine; None if there is none."""
    files = sorted((ckpt_dir(run_dir) / tag).glob("*model_states.pt"))
    if not files:
        return None
    state = torch.load(files[0], map_location="cpu", weights_only=False)
    return state


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()
