"""Curves read from a run's ``metrics.jsonl``: the linear phone probe during pretraining (the
trainer's ``probe_every``: rows with ``dev/probe_phone_acc``, ``dev/probe_best_layer`` and
``dev/probe/<layer>``), and any other logged figure.

A resumed run may log an update twice (the updates after its last checkpoint run again): the
last row of an update wins, as in the demo's report.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROBE_KEY = "dev/probe_phone_acc"
PROBE_LAYER_KEY = "dev/probe_best_layer"
PROBE_LAYER_PREFIX = "dev/probe/"
PROBE_MAJORITY_KEY = "dev/probe_majority_acc"


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """Every row of ``run_dir/metrics.jsonl`` (none if it is absent); a damaged last line (a run
    killed mid-write) is skipped."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def curve(rows: list[dict[str, Any]], key: str) -> list[tuple[int, float]]:
    """(update, value) of ``key``, one point per update (the last logged), in update order."""
    last: dict[int, float] = {}
    for r in rows:
        if key in r and "update" in r:
            last[int(r["update"])] = float(r[key])
    return sorted(last.items())


@dataclass(frozen=True)
class ProbePoint:
    update: int
    acc: float
    """The best layer's frame accuracy."""
    best_layer: int | None
    layers: dict[str, float] = field(default_factory=dict)
    majority: float | None = None


def probe_curve(run_dir: str | Path) -> list[ProbePoint]:
    """The probe's points of a run, in update order (empty without ``probe_every``)."""
    points: dict[int, ProbePoint] = {}
    for r in read_metrics(run_dir):
        if PROBE_KEY not in r:
            continue
        layers = {k[len(PROBE_LAYER_PREFIX):]: float(v) for k, v in r.items() if k.startswith(PROBE_LAYER_PREFIX)}
        best = r.get(PROBE_LAYER_KEY)
        points[int(r["update"])] = ProbePoint(int(r["update"]), float(r[PROBE_KEY]),
                                              None if best is None else int(best), layers, r.get(PROBE_MAJORITY_KEY))
    return [points[u] for u in sorted(points)]


def gain_per_update(points: list[ProbePoint], last_fraction: float = 0.5) -> float | None:
    """Least-squares slope of probe accuracy over the last ``last_fraction`` of the curve's
    updates (accuracy per update): how fast it was still rising when the budget ran out."""
    if len(points) < 2:
        return None
    end = points[-1].update
    tail = [p for p in points if p.update >= end * (1 - last_fraction)]
    if len(tail) < 2:
        tail = points[-2:]
    xs, ys = [p.update for p in tail], [p.acc for p in tail]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return None if var == 0 else sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var
