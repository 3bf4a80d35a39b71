"""Choosing the beam search's ``lm_weight`` and ``word_score`` on the dev split, never on test.

    ds-w2v evaluate data.shards=S model.init=ctc.pt decoding.decoder=beam decoding.lm=lm.arpa \\
        --tune-lm --lm-weights 0,0.5,1,2,3 --word-scores=-2,-1,0,1   # "=": the list starts with "-"

One pass over dev: each batch's forward runs once and its ln-probabilities are decoded under
every (lm_weight, word_score) of the grid, the edit sums kept per point (:class:`GridScoring`, a
task the :class:`~ds_w2v.train.evaluator.Evaluator` runs like any other, so the ranks share the
split and the sums are all-reduced). The point with the lowest dev WER wins (CER breaks ties,
then the smaller |lm_weight|, then the smaller |word_score|); the test splits are then scored
once with it.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Sequence

from .tasks.base import host_float

# metric keys of one grid point's sums: the CTC task's error sums, prefixed "{point}/"
_SUM_KEYS = ("char_err", "chars", "word_err", "words")


@dataclass
class GridPoint:
    lm_weight: float
    word_score: float
    wer: float = float("nan")
    cer: float = float("nan")

    def to_dict(self) -> dict:
        return {"lm_weight": self.lm_weight, "word_score": self.word_score, "wer": self.wer, "cer": self.cer}


def parse_grid(text: str, name: str) -> list[float]:
    """``"0,0.5,1"`` -> [0.0, 0.5, 1.0]; one line naming the option when a value is not a number."""
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{name} {text!r}: expected comma-separated numbers") from None
    if not values:
        raise ValueError(f"{name} {text!r}: no values")
    return list(dict.fromkeys(values))


class GridScoring:
    """A CTC task's dev scoring at every point of a (lm_weight, word_score) grid (module docstring)."""

    def __init__(self, task, lm_weights: Sequence[float], word_scores: Sequence[float]):
        from ..lm.decoder import BeamDecoder

        if not isinstance(task.decoder, BeamDecoder):
            raise ValueError("--tune-lm tunes the beam search's weights: set decoding.decoder=beam decoding.lm=LM.arpa")
        self.task = task
        self.stream_kind = task.stream_kind
        self.points = [GridPoint(w, s) for w, s in itertools.product(lm_weights, word_scores)]
        self.decoders = [task.decoder.with_weights(p.lm_weight, p.word_score) for p in self.points]

    def eval_sums(self, model, batch) -> dict[str, float]:
        out, refs = self.task.forward(model, batch)
        sums = {"loss": host_float(out.loss), "n": float(len(refs))}
        for i, decoder in enumerate(self.decoders):
            hyps = decoder.decode(out.logits, out.frame_lengths)
            for key, value in self.task.error_sums(refs, hyps).items():
                sums[f"{i}/{key}"] = value
        return sums

    def eval_keys(self) -> list[str]:
        return ["loss", "n", *(f"{i}/{k}" for i in range(len(self.points)) for k in _SUM_KEYS)]

    def eval_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        """The best point's WER and CER (the grid itself: :meth:`points` after :meth:`choose`)."""
        best = self.choose(sums)
        return {"wer": best.wer, "cer": best.cer}

    def choose(self, sums: dict[str, float]) -> GridPoint:
        """Fill every point's dev WER/CER from the all-reduced ``sums`` and return the best."""
        for i, p in enumerate(self.points):
            p.wer = sums[f"{i}/word_err"] / max(sums[f"{i}/words"], 1)
            p.cer = sums[f"{i}/char_err"] / max(sums[f"{i}/chars"], 1)
        return min(self.points, key=lambda p: (p.wer, p.cer, abs(p.lm_weight), abs(p.word_score)))
