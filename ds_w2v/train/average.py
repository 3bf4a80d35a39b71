"""Checkpoint averaging: the mean of several checkpoints of one run as one ds_w2v model file.

As fairseq's ``scripts/average_checkpoints.py``: every floating-point tensor is the mean of the
chosen checkpoints' fp32 weights (here the consolidated fp32 masters of any ZeRO stage,
``checkpoint.consolidated_state_dict``); integer tensors (the update counter) are the newest
chosen checkpoint's. Averaging the last few checkpoints of a run, or its best few on dev, smooths
the noise of the final updates (Vaswani et al. 2017, sec. 6.1; fairseq's translation recipes).

Which checkpoints (only complete ones: ``checkpoint.complete_tags``):

* ``last N``: the N newest update tags (``update_*``). A run keeps ``keep_last`` of them.
* ``best N``: the N tags with the best dev value of the run's best metric (``config.yaml``:
  ``best_metric``, else the task's own; the task's direction), among the update and best tags
  on disk; a tag's value is the last ``dev/<metric>`` that ``metrics.jsonl`` holds for its update,
  a tag whose update was not evaluated is not a candidate. Tags of one update hold the same
  weights and count once (the one written last: after a resume, the newer trajectory). A run
  keeps its ``keep_best`` best tags (default 1) besides the last update tags: train with
  ``keep_best=N`` (and ``eval_every`` = ``save_every``, or a divisor of it) to have the N best to
  average. Fewer than N candidates on disk is refused, listing them: nothing is averaged silently
  over fewer than asked.

The output is the model file ``export`` writes; ``OUT.average.json`` beside it records the run,
the rule and the tags averaged with their updates and dev values.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from ..models.wav2vec2.factory import save_model
from .checkpoint_export import consolidated_state_dict, model_with_state
from .checkpoint_tags import TAG_RE, ckpt_dir, complete_tags, is_run_dir
from .tasks import TASK_CLASSES

SIDECAR = ".average.json"  # OUT + this: which tags were averaged


@dataclass(frozen=True)
class Chosen:
    tag: str
    update: int
    value: float | None = None
    """The dev value of the run's best metric at ``update`` (None: not evaluated there)."""


@dataclass(frozen=True)
class Averaged:
    out: Path
    sidecar: Path
    rule: str  # "last" or "best"
    chosen: list[Chosen]  # oldest first
    metric: str | None  # "dev/wer"
    higher_is_better: bool | None


def check_run_dir(run_dir: Path) -> None:
    if not is_run_dir(run_dir):
        raise FileNotFoundError(f"{run_dir}: not a run directory (no model.json and checkpoints/)")


def best_metric(run_dir: Path) -> tuple[str, bool]:
    """The run's best metric as ``metrics.jsonl`` names it (``dev/wer``) and whether higher is better."""
    f = Path(run_dir) / "config.yaml"
    if not f.is_file():
        raise FileNotFoundError(f"{run_dir}: no config.yaml, so the run's best metric is unknown")
    config = yaml.safe_load(f.read_text()) or {}
    task = TASK_CLASSES.get(str(config.get("task")))
    if task is None:
        raise ValueError(f"{f}: task {config.get('task')!r} is not one of {', '.join(TASK_CLASSES)}")
    name = config.get("best_metric") or task.best_metric
    if name not in task.best_metrics:
        raise ValueError(f"{f}: best_metric {name!r} is not a dev metric of task {task.name}")
    return f"dev/{name}", task.best_metrics[name]


def dev_values(run_dir: Path, metric: str) -> dict[int, float]:
    """update -> the last value of ``metric`` logged at it in ``metrics.jsonl`` (a resumed run logs
    the updates after its checkpoint again: the last record is the trajectory the run kept)."""
    values: dict[int, float] = {}
    f = Path(run_dir) / "metrics.jsonl"
    if not f.is_file():
        return values
    for line in f.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:  # the last line of a run killed mid-write: no value lost but that one
            continue
        if isinstance(record, dict) and metric in record and "update" in record:
            values[int(record["update"])] = float(record[metric])
    return values


def choose_last(run_dir: Path, n: int) -> list[Chosen]:
    run_dir = Path(run_dir)
    if n < 1:
        raise ValueError(f"{run_dir}: --last must be >= 1, got {n}")
    tags = sorted((u, t) for t, u in complete_tags(run_dir).items() if TAG_RE.match(t))
    if len(tags) < n:
        have = ", ".join(t for _, t in tags) or "none"
        raise ValueError(f"{run_dir}: --last {n} needs {n} update checkpoints, the run has {len(tags)} ({have}); "
                         "keep_last decides how many a run keeps")
    return [Chosen(t, u) for u, t in tags[-n:]]


def choose_best(run_dir: Path, n: int) -> tuple[list[Chosen], str, bool]:
    """The ``n`` best tags on dev, oldest first, with the metric's name and direction."""
    run_dir = Path(run_dir)
    if n < 1:
        raise ValueError(f"{run_dir}: --best must be >= 1, got {n}")
    metric, higher = best_metric(run_dir)
    values = dev_values(run_dir, metric)
    # one tag per update: the one whose files were written last
    by_update: dict[int, str] = {}
    for tag, update in complete_tags(run_dir).items():
        held = by_update.get(update)
        if held is None or _written_at(run_dir, tag) > _written_at(run_dir, held):
            by_update[update] = tag
    rated = [Chosen(t, u, values[u]) for u, t in by_update.items() if u in values and not math.isnan(values[u])]
    unrated = sorted(t for u, t in by_update.items() if u not in {c.update for c in rated})
    # best first; among equal values the newer update
    rated.sort(key=lambda c: (-c.value if higher else c.value, -c.update))
    if len(rated) < n:
        have = ", ".join(f"{c.tag} {metric}={c.value:.4g}" for c in rated) or "none"
        rest = f"; without a dev value: {', '.join(unrated)}" if unrated else ""
        raise ValueError(f"{run_dir}: --best {n} needs {n} checkpoints with a {metric}, the run has {len(rated)} "
                         f"({have}{rest}); train with keep_best={n} to keep the {n} best")
    return sorted(rated[:n], key=lambda c: c.update), metric, higher


def _written_at(run_dir: Path, tag: str) -> float:
    """When the tag's newest file was written (seconds since the epoch)."""
    return max((p.stat().st_mtime for p in (ckpt_dir(run_dir) / tag).iterdir()), default=0.0)


def average_state(run_dir: Path, tags: list[str]) -> dict[str, torch.Tensor]:
    """The mean of the consolidated fp32 weights of ``tags`` (oldest first); integer tensors from
    the last. Tags of different models (keys or shapes) are refused, naming the first difference."""
    run_dir = Path(run_dir)
    total: dict[str, torch.Tensor] = {}
    state: dict[str, torch.Tensor] = {}
    for i, tag in enumerate(tags):
        state = consolidated_state_dict(run_dir, tag)  # one checkpoint in memory at a time, besides the sum
        if i == 0:
            total = {k: v.clone() for k, v in state.items() if v.is_floating_point()}
            continue
        _same_model(run_dir, tags[0], total, tag, state)
        for k, v in total.items():
            v += state[k]
    return {k: total[k] / len(tags) if k in total else v for k, v in state.items()}


def _same_model(run_dir: Path, first: str, total: dict[str, torch.Tensor], tag: str,
                state: dict[str, torch.Tensor]) -> None:
    floats = {k for k, v in state.items() if v.is_floating_point()}
    for key in sorted(floats ^ total.keys()):
        holder = first if key in total else tag
        raise ValueError(f"{run_dir}: checkpoints {first} and {tag} hold different models ({key} only in "
                         f"{holder}); they cannot be averaged")
    for key in total:
        if total[key].shape != state[key].shape:
            raise ValueError(f"{run_dir}: checkpoints {first} and {tag} hold different models ({key}: "
                             f"{tuple(total[key].shape)} vs {tuple(state[key].shape)}); they cannot be averaged")


def average(run_dir: Path, out: Path, last: int | None = None, best: int | None = None) -> Averaged:
    """Average the ``last`` newest or the ``best`` best checkpoints of ``run_dir`` into ``out``."""
    run_dir, out = Path(run_dir), Path(out)
    check_run_dir(run_dir)
    if (last is None) == (best is None):
        raise ValueError(f"{run_dir}: give one of --last N and --best N")
    metric = higher = None
    if last is not None:
        chosen = choose_last(run_dir, last)
    else:
        chosen, metric, higher = choose_best(run_dir, best)
    tags = [c.tag for c in chosen]
    model = model_with_state(run_dir, tags[-1], average_state(run_dir, tags))
    save_model(model, out)
    sidecar = out.with_name(out.name + SIDECAR)
    record: dict[str, Any] = {"run_dir": str(run_dir.resolve()), "rule": "last" if last is not None else "best",
                              "n": len(chosen), "metric": metric, "higher_is_better": higher,
                              "tags": [asdict(c) for c in chosen]}
    tmp = sidecar.with_name(sidecar.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1))
    tmp.replace(sidecar)
    return Averaged(out, sidecar, record["rule"], chosen, metric, higher)
