"""What a training run is, beyond its weights and optimizer: the counters a resume restores.

``TrainerState`` is the one list of these fields (as torchtitan's trainer keeps its step and
counters in one stateful object): ``state_dict`` goes into every checkpoint's client state,
``load_state_dict`` restores it, and a field missing from an older checkpoint takes its default
here, in one place.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass
class TrainerState:
    update: int = 0
    """Optimizer updates applied (skipped non-finite attempts not counted)."""
    best: float | None = None
    """The best dev value of the task's best metric so far, and the update it was reached at."""
    best_update: int | None = None
    bad_total: int = 0
    """Update attempts skipped because a loss was not finite (all ranks skip together)."""
    bad_in_a_row: int = 0
    train_time_s: float = 0.0
    """Wall-clock seconds spent in updates (evaluation and checkpoints not counted)."""

    def state_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        defaults = TrainerState()
        for f in dataclasses.fields(self):
            setattr(self, f.name, state.get(f.name, getattr(defaults, f.name)))
        self.update = int(self.update)
