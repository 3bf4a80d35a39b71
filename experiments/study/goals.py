"""The study's goals, computed from its figures, never typed in:

1. the pretrained model's best-layer linear phone probe (CPC protocol, TIMIT test frames) is at
   least :data:`PROBE_GAIN` (15 points) above a random-init model's (means over probe seeds);
2. the same gain read as a share of the headroom: (pretrained - random) / (ceiling - random),
   the ceiling being the probe of the supervised model (``ceiling.py``), at least
   :data:`HEADROOM_SHARE` (60 %). CPC's paper (van den Oord et al. 2018, Table 2: LibriSpeech-100
   phone classification, a linear probe) gives the same three figures: random init 27.6 %, CPC
   64.6 %, supervised 74.6 %, so CPC closed :data:`CPC_SHARE` (79 %) of its headroom. A
   "ceiling" that probes at or below the pretrained model bounds nothing: n/a;
3. with 10 % of the labels, the pretrained model's phone-CTC test PER is at most
   :data:`PER_RATIO` (0.7) x the random-init model's (means over seeds at each arm's chosen lr).

Each is PASS, MISS, or n/a (a figure it needs is missing: a plan without that arm or probe).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from .selection import ArmSummary, Spread, ratio

PROBE_GAIN = 0.15
PER_RATIO = 0.7
HEADROOM_SHARE = 0.60
CPC_RANDOM, CPC_PRETRAINED, CPC_SUPERVISED = 0.276, 0.646, 0.746  # CPC (2018), Table 2
CPC_SHARE = (CPC_PRETRAINED - CPC_RANDOM) / (CPC_SUPERVISED - CPC_RANDOM)  # 0.787


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


def headroom_share(pretrained: float, random_init: float, ceiling: float) -> float | None:
    """(pretrained - random) / (ceiling - random); None when the ceiling does not lie above the
    pretrained model (no headroom to share out)."""
    if ceiling <= pretrained or ceiling <= random_init:
        return None
    return (pretrained - random_init) / (ceiling - random_init)


def headroom_goal(pretrained: Sequence[Mapping], random_init: Sequence[Mapping], ceiling: Sequence[Mapping]) -> Goal:
    pre, rnd, top = linear_best_acc(pretrained), linear_best_acc(random_init), linear_best_acc(ceiling)
    target = (f"(pretrained - random) / (ceiling - random) >= {100 * HEADROOM_SHARE:.0f} % (CPC on LibriSpeech-100: "
              f"{100 * CPC_SHARE:.0f} %)")
    name = "headroom closed"
    if pre.mean is None or rnd.mean is None or top.mean is None:
        return Goal(name, target, "n/a", None, None)
    share = headroom_share(pre.mean, rnd.mean, top.mean)
    cells = f"{100 * pre.mean:.1f}, {100 * rnd.mean:.1f}, {100 * top.mean:.1f} % (pretrained, random, ceiling)"
    if share is None:
        return Goal(name, target, f"n/a: the ceiling does not bound ({cells})", None, None)
    measured = (f"({100 * pre.mean:.1f} - {100 * rnd.mean:.1f}) / ({100 * top.mean:.1f} - {100 * rnd.mean:.1f}) "
                f"= {100 * share:.0f} %")
    return Goal(name, target, measured, share, share >= HEADROOM_SHARE)


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
