"""Learning-rate schedules as pure functions of the update number (so a resumed run, which
restores the update counter, continues the schedule exactly).

* ``polynomial`` (fairseq ``polynomial_decay`` with power 1, the BASE pretraining schedule):
  linear warm-up from 0 to ``lr`` over ``warmup_updates``, then linear decay to ``end_lr`` at
  ``max_updates`` (paper §4.2: warm-up 8 % of 400k = 32k updates).
* ``tri_stage`` (fairseq, fine-tuning base_10h / base_100h): warm-up from
  ``init_lr_scale * lr`` to ``lr`` over ``phase_ratio[0]`` of the updates, hold for
  ``phase_ratio[1]``, exponential decay to ``final_lr_scale * lr`` over ``phase_ratio[2]``.
"""
from __future__ import annotations

import math

from .config import OptimConfig, ScheduleConfig


def learning_rate(update: int, optim: OptimConfig, sched: ScheduleConfig, max_updates: int) -> float:
    lr = optim.lr
    if sched.kind == "polynomial":
        warmup = max(sched.warmup_updates, 0)
        if update < warmup:
            return lr * (update + 1) / warmup
        remaining = max(max_updates - warmup, 1)
        frac = min((update - warmup) / remaining, 1.0)
        return sched.end_lr + (lr - sched.end_lr) * (1.0 - frac)
    warm, hold, decay = (int(r * max_updates) for r in sched.phase_ratio)
    init_lr, final_lr = sched.init_lr_scale * lr, sched.final_lr_scale * lr
    if update < warm:
        return init_lr + (lr - init_lr) * update / max(warm, 1)
    if update < warm + hold:
        return lr
    t = min(update - warm - hold, decay)
    return lr * math.exp(math.log(final_lr / lr) * t / max(decay, 1))
