"""``results/SEARCH.md`` from a ``--search`` :class:`StudyOutcome`: one table per round (the
variants around one starting point, its ``PretrainSpec.base``), each variant compared with its
base at the update they both reached -- a longer run is not ranked by a later probe than the
others had -- then every probe curve, what the longer runs bought, and the plot.
"""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from .curves import ProbePoint, gain_per_update
from .plan import PretrainSpec
from .report import _hms, _pct, curve_lines, plot_probe_curves
from .runner import StudyOutcome


def probe_at(points: list[ProbePoint], update: int) -> ProbePoint | None:
    """The probe at ``update`` or, failing that, the last one before it."""
    before = [p for p in points if p.update <= update]
    return before[-1] if before else None


class Round(NamedTuple):
    members: list[PretrainSpec]
    """The round's start (its base) first, then the variants of it, in plan order."""
    parent: PretrainSpec | None
    """The variant the start itself changed (None for the first round's start)."""


def rounds(variants: list[PretrainSpec]) -> dict[str, Round]:
    """base name -> its :class:`Round`; a variant whose base is not in ``variants`` is left out."""
    by_name = {v.name: v for v in variants}
    out: dict[str, Round] = {}
    for v in variants:
        if v.base not in by_name:
            continue
        start = by_name[v.base]
        parent = by_name.get(start.base) if start.base != start.name else None
        members = out.setdefault(v.base, Round([start], parent)).members
        if v.name != v.base:
            members.append(v)
    return out


def _change(v: PretrainSpec, base: PretrainSpec | None) -> str:
    """What a variant changes from its base: overrides, updates, warm-up, unlabelled speech."""
    if base is None:
        return "-"
    parts = [f"`{o}`" for o in v.overrides if v is base or o not in base.overrides]
    if v.updates != base.updates:
        parts.append(f"{v.updates:,} updates ({base.name}: {base.updates:,})")
    if v.warmup != base.warmup:
        parts.append(f"warm-up {v.warmup} ({base.name}: {base.warmup})")
    if v.unlabeled != base.unlabeled:
        parts.append(f"unlabelled: {', '.join(v.unlabeled)}" if v.unlabeled else "no unlabelled speech")
    if v is base:
        return "the tiny recipe" + (f" with {', '.join(parts)}" if parts else "")
    return ", ".join(parts) or "-"


def round_table(outcome: StudyOutcome, members: list[PretrainSpec], parent: PretrainSpec | None = None) -> list[str]:
    """The variants of one base, ranked by their probe at the last update all of them reached;
    ``parent``: the variant the base itself changed (its row shows that change)."""
    base = members[0]
    curves = {v.name: outcome.curves.get(v.name) or [] for v in members}
    done = [c[-1].update for c in curves.values() if c]
    if not done:
        return [f"No variant around `{base.name}` has a probe yet.", ""]
    shared = min(done)
    base_at = probe_at(curves[base.name], shared)
    rows, not_run = [], []
    for v in members:
        points = curves[v.name]
        if not points:
            not_run.append(v.name)
            continue
        at = probe_at(points, shared)
        rows.append((at.acc if at else -1.0, v, points, at))
    rows.sort(key=lambda r: -r[0])
    lines = [f"| variant | change | updates | probe at update 0 | probe at {shared:,} | vs {base.name} | last probe "
             "(update) | best probe (update) | dev contrastive acc | wall |", "|---|---|---|---|---|---|---|---|---|---|"]
    for _, v, points, at in rows:
        res = outcome.runs.get(v.name) or {}
        vs = "-" if not (at and base_at) else f"{100 * (at.acc - base_at.acc):+.1f}"
        last = points[-1] if points else None
        best = max(points, key=lambda p: p.acc) if points else None
        change = f"this round's start: {_change(v, parent)}" if v is base and parent is not None \
            else _change(v, base)
        lines.append(f"| {v.name} | {change} | {v.updates:,} | {_pct(points[0].acc) if points else '-'} | "
                     f"{_pct(at.acc if at else None)} | {vs} | "
                     f"{_pct(last.acc) + f' ({last.update:,})' if last else '-'} | "
                     f"{_pct(best.acc) + f' ({best.update:,})' if best else '-'} | "
                     f"{_pct(res.get('last_dev_acc'))} | {_hms(res.get('wall_s'))} |")
    if not_run:
        lines += ["", f"Not run yet: {', '.join(not_run)}."]
    return lines + [""]


def longer_lines(outcome: StudyOutcome, groups: dict[str, Round]) -> list[str]:
    """For each variant run longer than its base: the probe where the base stopped and at its end,
    and the straight-line rate over its last half (what more updates would buy at that rate)."""
    lines = []
    for base, v in ((r.members[0], v) for r in groups.values() for v in r.members[1:]):
        points = outcome.curves.get(v.name) or []
        if v.updates <= base.updates or not points:
            continue
        at, last = probe_at(points, base.updates), points[-1]
        slope = gain_per_update(points)
        text = (f"- **{v.name}**: {_pct(points[0].acc)} at update 0, {_pct(at.acc if at else None)} at "
                f"{base.updates:,} ({base.name}'s length), {_pct(last.acc)} at {last.update:,}")
        if slope is not None:
            text += f"; over its last half {100 * slope * 1000:+.2f} points per 1,000 updates"
        if last.layers:  # where the phone information sits: the conv features, then each block's output
            text += "; per layer at the end: " + ", ".join(f"{k} {_pct(a)}" for k, a in last.layers.items())
        lines.append(text + ".")
    return lines + [""] if lines else []


def write_search(outcome: StudyOutcome, results: str | Path) -> str:
    """SEARCH.md: a table per round, the curves, the longer runs, the plot."""
    results = Path(results)
    results.mkdir(parents=True, exist_ok=True)
    variants = list(outcome.plan.search)
    lines = ["# Search: what makes self-supervised learning start at tiny's size", "",
             f"Made by `{outcome.command}` (`python -m experiments.study --search`): one factor at a time around a "
             "starting point, each variant one pretraining with the trainer's probe curve (linear phone probe, best "
             "layer, dev frames: the search never reads test). A round's variants are ranked by their probe at the "
             "last update all of them reached; finished variants are reused on a rerun.", ""]
    groups = rounds(variants)
    for name, (members, parent) in groups.items():
        title = "Round around `base`, the tiny recipe as first searched" if name == "base" else \
            f"Round around `{name}`"
        lines += [f"## {title}", ""] + round_table(outcome, members, parent)
    more = longer_lines(outcome, groups)
    if more:
        lines += ["## Longer runs", ""] + more
    lines += ["## Curves", ""] + curve_lines(outcome)
    wall = outcome.wall.get("search")
    lines += ["", f"Pretraining time, summed over the variants shown (two ran side by side): {_hms(wall)}."]
    if plot_probe_curves(outcome.curves, results / "search_curves.png", figsize=(9, 5.5), marker=".", ncol=2):
        lines += ["", "![search_curves.png](search_curves.png)"]
    lines += [""]
    text = "\n".join(lines)
    (results / "SEARCH.md").write_text(text)
    return text
