"""lr selection and aggregation on hand-made results: the best dev wins, test is never read for
the choice (nor from a run at another lr), a diverged run never wins, the spread is right."""
import math

import pytest

from experiments.study.plan import Arm
from experiments.study.selection import GridPoint, Spread, choose_lr, grid_edge, grid_points, ratio, summarize_arm


class Watched(dict):
    """A results.json whose reads are recorded: test must be read only from chosen runs."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.read: set[str] = set()

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)


def _run(dev, test, wall=10.0):
    return Watched({"best_dev": dev, "test": {"per": test}, "wall_s": wall, "run_dir": f"dev{dev}"})


def test_lower_is_better_picks_the_lowest_dev_whatever_test_says():
    # the test PERs would pick 4e-3; dev picks 2e-3
    grid = {1e-3: _run(0.80, 0.50), 2e-3: _run(0.60, 0.70), 4e-3: _run(0.65, 0.10)}
    assert choose_lr(grid_points(grid), higher_is_better=False) == 2e-3
    assert all("test" not in r.read for r in grid.values())


def test_higher_is_better_and_ties_go_to_the_smaller_lr():
    points = [GridPoint(5e-4, 0.4), GridPoint(1e-3, 0.6), GridPoint(2e-3, 0.6)]
    assert choose_lr(points, higher_is_better=True) == 1e-3
    assert choose_lr(points, higher_is_better=False) == 5e-4


def test_diverged_or_missing_dev_never_wins():
    grid = {1e-3: Watched({"best_dev": 0.9}), 2e-3: Watched({"diverged": True}), 4e-3: Watched({"best_dev": None})}
    points = grid_points(grid)
    assert [p.dev for p in points] == [0.9, None, None]
    assert choose_lr(points, higher_is_better=False) == 1e-3
    nan_dev = grid_points({1e-3: {"best_dev": float("nan")}, 2e-3: {"best_dev": 0.5}})
    assert nan_dev[0].dev is None and choose_lr(nan_dev, higher_is_better=True) == 2e-3
    with pytest.raises(ValueError, match="all diverged"):
        choose_lr(grid_points({1e-3: {"diverged": True}}), higher_is_better=False)


def test_summary_reads_test_only_from_the_chosen_runs_and_spreads_over_seeds():
    grid = {1e-3: _run(0.80, 0.01), 2e-3: _run(0.60, 0.70, wall=20), 4e-3: _run(0.65, 0.02)}
    seeds = {2: _run(0.62, 0.74, wall=30), 3: _run(0.58, 0.66, wall=40)}
    s = summarize_arm(Arm("phones", "pretrained", 0.1), "per", False, grid, seeds, grid_seed=1)
    assert s.chosen_lr == 2e-3 and s.seeds == (1, 2, 3)
    assert "test" not in grid[1e-3].read and "test" not in grid[4e-3].read  # the other lrs' test: never read
    assert s.test.values == (0.70, 0.74, 0.66) and s.dev.values == (0.60, 0.62, 0.58)
    assert s.test.n == 3 and s.test.mean == pytest.approx(0.70)
    assert s.test.std == pytest.approx(0.04)  # sample std of 0.70, 0.74, 0.66
    assert (s.test.min, s.test.max) == (0.66, 0.74)
    assert s.wall_s == pytest.approx(10 + 20 + 10 + 30 + 40)  # every run of the arm
    assert [p.lr for p in s.grid] == [1e-3, 2e-3, 4e-3]

    assert s.edge is None  # chosen in the middle of the grid

def test_a_diverged_seed_is_left_out_of_the_spread():
    grid = {1e-3: _run(0.5, 0.4)}
    s = summarize_arm(Arm("phones", "random", 1.0), "per", False, grid, {2: Watched({"diverged": True})}, grid_seed=1)
    assert s.test.values == (0.4,) and s.test.n == 1 and s.test.std == 0.0


def test_spread_edges():
    assert Spread.of([]).mean is None and Spread.of([]).std is None and Spread.of([None]).n == 0
    assert Spread.of([0.5, math.inf, 0.7]).values == (0.5, 0.7)
    assert ratio(Spread.of([0.3]), Spread.of([0.6])) == pytest.approx(0.5)
    assert ratio(Spread.of([0.3]), Spread.of([])) is None and ratio(Spread.of([0.3]), Spread.of([0.0])) is None


def test_grid_edge_flags_a_chosen_end_that_beats_its_neighbour():
    pts = [GridPoint(1e-3, 0.74), GridPoint(2e-3, 0.95), GridPoint(4e-3, 0.98)]  # lower is better
    assert grid_edge(pts, 1e-3, higher_is_better=False) == "lowest"
    assert grid_edge(list(reversed(pts)), 1e-3, higher_is_better=False) == "lowest"  # order does not matter
    acc = [GridPoint(5e-4, 0.13), GridPoint(1e-3, 0.24), GridPoint(2e-3, 0.26)]  # higher is better
    assert grid_edge(acc, 2e-3, higher_is_better=True) == "highest"
    assert grid_edge(acc, 1e-3, higher_is_better=True) is None  # the middle
    # a tie with the neighbour is a flat grid (every run on the plateau), not an edge
    flat = [GridPoint(1e-3, 1.0), GridPoint(2e-3, 1.0), GridPoint(4e-3, 1.0)]
    assert grid_edge(flat, 1e-3, higher_is_better=False) is None
    # a neighbour without a dev figure (diverged) is beaten; a one-lr grid has no edge
    assert grid_edge([GridPoint(1e-3, 0.9), GridPoint(2e-3, None)], 1e-3, higher_is_better=False) == "lowest"
    assert grid_edge([GridPoint(1e-3, 0.9)], 1e-3, higher_is_better=False) is None
