"""The study's two goals (issue 12, item 6), computed from its figures, never typed in:

1. the pretrained model's best-layer linear phone probe (CPC protocol, TIMIT test frames) is at
   least :data:`PROBE_GAIN` (15 points) above a random-init model's (means over probe seeds);
2. with 10 % of the labels, the pretrained model's phone-CTC test PER is at most
   :data:`PER_RATIO` (0.7) x the random-init model's (means over seeds at each arm's chosen lr).

Each is PASS, MISS, or n/a (a figure it needs is missing: a plan without that arm or probe).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from .selection import ArmSummary, Spread, ratio

PROBE_GAIN = 0.15
PER_RATIO = 0.7


@dataclass(frozen=True)
class Goal:
    name: str
    target: str
    measured: str
    value: float | None
    passed: bool | None
    """None: not measured (n/a)."""

    @property
    def verdict(self) -> str:
        return "n/a" if self.passed is None else ("PASS" if self.passed else "MISS")


def linear_best_acc(probe_results: Sequence[Mapping]) -> Spread:
    """The best-layer linear accuracy of each ``ds-w2v probe`` result (its first corpus with a
    linear probe), over the results given (one per seed)."""
    accs = []
    for r in probe_results:
        for data in (r.get("datasets") or {}).values():
            if "linear" in data:
                accs.append(data["linear"]["best_acc"])
                break
    return Spread.of(accs)


def probe_goal(pretrained: Sequence[Mapping], random_init: Sequence[Mapping]) -> Goal:
    pre, rnd = linear_best_acc(pretrained), linear_best_acc(random_init)
    target = f"pretrained - random init >= {100 * PROBE_GAIN:.0f} points (best-layer linear phone probe, test frames)"
    if pre.mean is None or rnd.mean is None:
        return Goal("linear phone probe", target, "n/a", None, None)
    gain = pre.mean - rnd.mean
    measured = f"{100 * pre.mean:.1f} % - {100 * rnd.mean:.1f} % = {100 * gain:+.1f} points"
    return Goal("linear phone probe", target, measured, gain, gain >= PROBE_GAIN)


def per_goal(arms: Sequence[ArmSummary], labels: float = 0.1) -> Goal:
    def find(init: str) -> ArmSummary | None:
        return next((a for a in arms if a.arm.task == "phones" and a.arm.init == init and a.arm.labels == labels),
                    None)

    pre, rnd = find("pretrained"), find("random")
    target = f"pretrained PER <= {PER_RATIO:g} x random init's ({100 * labels:g} % of the labels, test)"
    if pre is None or rnd is None:
        return Goal(f"PER with {100 * labels:g} % labels", target, "n/a", None, None)
    r = ratio(pre.test, rnd.test)
    if r is None:
        return Goal(f"PER with {100 * labels:g} % labels", target, "n/a (no test PER)", None, None)
    measured = f"{100 * pre.test.mean:.1f} % / {100 * rnd.test.mean:.1f} % = {r:.2f} x"
    return Goal(f"PER with {100 * labels:g} % labels", target, measured, r, r <= PER_RATIO)
