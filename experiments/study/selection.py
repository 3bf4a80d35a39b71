"""The fair comparison's arithmetic: an arm's lr chosen on dev, then its chosen runs summarised
over seeds (mean and spread). Pure functions over ``results.json`` dicts.

Selection reads only each grid run's ``best_dev`` (the dev metric of its best checkpoint, the
metric the arm is judged by, at the budget every lr shares): :func:`choose_lr` is given
:class:`GridPoint` values and nothing else, so it cannot see test. Test (``results["test"]``)
is read once, by :func:`summarize_arm`, from the runs at the chosen lr only.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Mapping, Sequence

from .plan import Arm


@dataclass(frozen=True)
class GridPoint:
    lr: float
    dev: float | None
    """The run's best dev metric; None: it diverged or was never evaluated (it cannot win)."""


@dataclass(frozen=True)
class Spread:
    """Mean and spread of one figure over seeds."""

    values: tuple[float, ...]

    @classmethod
    def of(cls, values: Sequence[float | None]) -> "Spread":
        return cls(tuple(float(v) for v in values if v is not None and math.isfinite(v)))

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation (n - 1); 0 for one value, None for none."""
        if not self.values:
            return None
        return statistics.stdev(self.values) if len(self.values) > 1 else 0.0

    @property
    def min(self) -> float | None:
        return min(self.values) if self.values else None

    @property
    def max(self) -> float | None:
        return max(self.values) if self.values else None


def grid_points(grid: Mapping[float, Mapping]) -> list[GridPoint]:
    """lr -> a grid run's results.json, reduced to what selection may see: its best dev."""
    points = []
    for lr, result in sorted(grid.items()):
        dev = None if result.get("diverged") else result.get("best_dev")
        points.append(GridPoint(float(lr), None if dev is None or not math.isfinite(dev) else float(dev)))
    return points


def choose_lr(points: Sequence[GridPoint], higher_is_better: bool) -> float:
    """The lr whose run has the best dev metric. Ties go to the smaller lr (the gentler of two
    equal choices); a run without a dev figure never wins. ValueError if no run has one."""
    scored = [p for p in points if p.dev is not None]
    if not scored:
        raise ValueError(f"no grid run has a dev figure (lrs {[p.lr for p in points]}: all diverged?)")
    sign = -1.0 if higher_is_better else 1.0
    return min(scored, key=lambda p: (sign * p.dev, p.lr)).lr


@dataclass(frozen=True)
class ArmSummary:
    """One row of the ablation table."""

    arm: Arm
    metric: str
    higher_is_better: bool
    grid: tuple[GridPoint, ...]
    chosen_lr: float
    seeds: tuple[int, ...]
    """Seeds of the chosen runs, in order."""
    dev: Spread
    test: Spread
    wall_s: float
    """Wall time of every run of the arm (grid and seeds)."""
    run_dirs: tuple[str, ...]

    @property
    def edge(self) -> str | None:
        """:func:`grid_edge` of the arm's grid and chosen lr."""
        return grid_edge(self.grid, self.chosen_lr, self.higher_is_better)


def grid_edge(points: Sequence[GridPoint], chosen_lr: float, higher_is_better: bool) -> str | None:
    """``"lowest"`` / ``"highest"`` when ``chosen_lr`` is that end of a grid of 2+ lrs and its dev
    figure is strictly better than its neighbour's (or the neighbour has none): the best lr may
    lie beyond the grid, so the arm may be understated. A tie with the neighbour is a flat grid
    (say, every run still on the CTC plateau), not an edge."""
    ordered = sorted(points, key=lambda p: p.lr)
    if len(ordered) < 2:
        return None
    for end, chosen, neighbour in (("lowest", ordered[0], ordered[1]), ("highest", ordered[-1], ordered[-2])):
        if chosen.lr != chosen_lr or chosen.dev is None:
            continue
        if neighbour.dev is None or (chosen.dev > neighbour.dev if higher_is_better else chosen.dev < neighbour.dev):
            return end
    return None


def summarize_arm(arm: Arm, metric: str, higher_is_better: bool, grid: Mapping[float, Mapping],
                  seed_runs: Mapping[int, Mapping], grid_seed: int) -> ArmSummary:
    """``grid``: lr -> results.json of the ``grid_seed`` run; ``seed_runs``: seed -> results.json
    of the other seeds' runs at the chosen lr. Test is read from the chosen lr's runs only."""
    points = grid_points(grid)
    lr = choose_lr(points, higher_is_better)
    chosen = {grid_seed: grid[lr], **seed_runs}
    seeds = tuple(sorted(chosen))
    dev = Spread.of([None if chosen[s].get("diverged") else chosen[s].get("best_dev") for s in seeds])
    test = Spread.of([None if chosen[s].get("diverged") else (chosen[s].get("test") or {}).get(metric) for s in seeds])
    wall = sum(float(r.get("wall_s", 0.0)) for r in [*grid.values(), *seed_runs.values()])
    dirs = tuple(str(chosen[s].get("run_dir", "")) for s in seeds)
    return ArmSummary(arm, metric, higher_is_better, tuple(points), lr, seeds, dev, test, wall, dirs)


def ratio(a: Spread, b: Spread) -> float | None:
    """mean(a) / mean(b), None when either is missing or b's mean is 0."""
    if a.mean is None or not b.mean:
        return None
    return a.mean / b.mean
