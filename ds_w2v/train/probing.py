"""The representation's learning curve: CPC's linear phone probe of the model being trained,
every ``probe_every`` updates (``TrainConfig.probe``).

The contrastive loss and accuracy say how well the model solves its own task, not whether its
layers come to encode phones; the probe says that, with a number that means the same thing at
every update (a fixed subset of utterances, fixed classifier settings and seed). The utterances
are read once, when the trainer is built (so a corpus without phone timings is refused before
any process group); each probe computes every layer's features of the frozen current model and
trains one linear classifier per layer (tiny, 60 + 60 utterances: ~6 s on 2 CPU cores).

Every rank runs it (under ZeRO-3 each forward gathers parameters, a collective); the figures are
the same on every rank (the same weights, seed and data), rank 0 logs them.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch

from ..probe import layer_names, linear_phone_probe, read_utterances
from ..probe.utterances import require_phone_spans

log = logging.getLogger("ds_w2v.train")


class PhoneProbe:
    """The probe of one run: ``PhoneProbe.from_config(config)`` (None when ``probe_every`` is 0),
    then ``run(module)`` -> the figures to log."""

    def __init__(self, data: str, train_split: str, eval_split: str, max_utterances: int, epochs: int, seed: int):
        where = f"probe.data: {data}"
        self.train = read_utterances(data, train_split, max_utterances)
        self.eval = read_utterances(data, eval_split, max_utterances)
        require_phone_spans(self.train, f"{where} split {train_split}")
        require_phone_spans(self.eval, f"{where} split {eval_split}")
        self.epochs, self.seed = epochs, seed

    @classmethod
    def from_config(cls, config) -> "PhoneProbe | None":
        if not config.probe_every:
            return None
        p = config.probe
        data = p.data or config.data.shards
        if not Path(data).is_dir():
            raise ValueError(f"config key probe.data: {data}: no such directory")
        return cls(data, p.train_split, p.eval_split, p.max_utterances, p.epochs, config.seed)

    def run(self, module: torch.nn.Module) -> dict[str, Any]:
        """The figures of one probe of ``module`` (frozen for it; its mode is restored)."""
        t0 = time.perf_counter()
        out = linear_phone_probe(module, self.train, self.eval, epochs=self.epochs, seed=self.seed)
        names = layer_names(module)
        figures = {"dev/probe_phone_acc": out["best_acc"], "dev/probe_best_layer": float(names.index(out["best_layer"])),
                   "dev/probe_majority_acc": out["majority_acc"], "perf/probe_s": time.perf_counter() - t0}
        figures.update({f"dev/probe/{name}": acc for name, acc in out["layers"].items()})
        return figures
