"""Scoring a model on a split, over all ranks: the trainer's dev/test evaluation and ``ds-w2v evaluate``.

Every utterance of the split is scored once: the split's shards are divided between the ranks,
each streams its share in one pass (``loop=False``: an utterance longer than the batch budget
goes in a batch of its own, never skipped), the task's sums (errors, counts, confusion cells)
are all-reduced and turned into metrics. The output says how much was scored —
``num_utterances`` and ``audio_s`` — and an utterance that could not be scored (a damaged
sample, or one left out by ``eval_max_batches``) is counted in ``num_unscored`` with one warning
line, so a metric is never computed silently on a subset.

Ranks stream different numbers of batches. Under ZeRO-3 every forward gathers parameters, a
collective every rank must join, so the ranks go in lockstep: before each batch one flag
(does this rank still have a batch?) is all-reduced; while any rank has one, the others run a
dummy forward on a second of silence and discard it. The sequence of collectives is then the
same on every rank, whatever the split's shape. Without ZeRO-3 nothing inside a forward is
collective, and the flag is all there is.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch

from ..data.index import SplitIndex
from ..data.loader import StreamingLoader
from ..data.samples import BAD_SHARD, CORRUPTION_REASONS
from ..data.shard_format import SAMPLE_RATE
from ..data.stream import StreamConfig
from .distributed import all_reduce

log = logging.getLogger("ds_w2v.train")

# the seed of the evaluation stream's crop offsets / masks, apart from the training seed's
EVAL_SEED_OFFSET = 12345
DUMMY_SAMPLES = SAMPLE_RATE  # 1 s of silence: the forward a rank without a batch runs under ZeRO-3


@dataclass
class EvalResult:
    split: str
    metrics: dict[str, float]
    """The task's metrics (wer/cer, acc/f1, loss, ...) plus num_utterances, audio_s and, when
    some were not scored, num_unscored. Empty if nothing was scored."""
    sums: dict[str, float]
    """The all-reduced sums the metrics come from (the confusion matrix of classification)."""


class Evaluator:
    """``Evaluator(task, ...).run(model, index)``: ``model`` is a DeepSpeed engine or a plain module."""

    def __init__(self, task: Any, stream: StreamConfig, *, rank: int = 0, world: int = 1,
                 device: torch.device | None = None, zero3: bool = False):
        """``stream``: ``DataConfig.eval_stream_config`` (one ordered pass, unaugmented); its seed
        seeds the evaluation's own RNG (dropout-free, but the forward may draw)."""
        self.task = task
        self.stream, self.seed = stream, stream.seed
        self.rank, self.world = rank, world
        self.device = device or torch.device("cpu")
        self.zero3 = zero3

    def loader(self, index: SplitIndex) -> StreamingLoader:
        """One pass over this rank's share of the split, in index order (no shuffling)."""
        return StreamingLoader.from_split(index, self.stream, rank=self.rank, world_size=self.world)

    def _any(self, flag: bool) -> bool:
        if self.world == 1:
            return flag
        return all_reduce([1.0 if flag else 0.0], "max", self.device)[0] > 0

    def _dummy_forward(self, model) -> None:
        p = next(model.parameters())
        model(torch.zeros(1, DUMMY_SAMPLES, device=p.device, dtype=p.dtype))

    @torch.no_grad()
    def run(self, model, index: SplitIndex, max_batches: int | None = None) -> EvalResult:
        """Score ``model`` on ``index``; every rank returns the same result."""
        from .checkpoint import rng_state, set_rng_state

        rng = rng_state()  # evaluation must not perturb the training RNG stream
        torch.manual_seed(self.seed + EVAL_SEED_OFFSET)
        was_training = model.training
        model.eval()
        loader = self.loader(index)
        batches = iter(loader)
        sums: dict[str, float] = defaultdict(float)
        scored = {"num_utterances": 0.0, "audio_s": 0.0}
        count = 0
        try:
            while True:
                batch = next(batches, None) if max_batches is None or count < max_batches else None
                if not self._any(batch is not None):
                    break
                if batch is None:  # others still score: join their parameter gathers (ZeRO-3)
                    if self.zero3:
                        self._dummy_forward(model)
                    continue
                for k, v in self.task.eval_sums(model, batch).items():
                    sums[k] += v
                scored["num_utterances"] += len(batch.ids)
                scored["audio_s"] += batch.num_audio_s
                count += 1
        finally:
            batches = None
            if was_training:
                model.train()
            set_rng_state(rng)
        # what could not be scored, in utterances where the index says: damaged samples, damaged
        # shards (their unread rest is unknown: counted as shards), and the utterances the index
        # lists in shards that could not be read at all
        stats = loader.stats
        damaged = float(sum(stats.skipped.get(r, 0) for r in CORRUPTION_REASONS if r != BAD_SHARD))
        bad_shards = float(stats.skipped.get(BAD_SHARD, 0))
        lost = [n for url, n in zip(index.urls, index.shard_num_samples) if url in stats.unreachable_shards]
        # the same key list on every rank, even one that saw no batch: one all-reduce
        keys = list(self.task.eval_keys())
        extra = ["num_utterances", "audio_s", "damaged", "bad_shards", "unreadable_shards", "unreadable_utts"]
        values = [sums.get(k, 0.0) for k in keys] + [scored["num_utterances"], scored["audio_s"], damaged,
                                                     bad_shards, float(len(lost)), float(sum(lost))]
        if self.world > 1:
            values = all_reduce(values, "sum", self.device)
        total = dict(zip(keys + extra, values))
        n = int(total.pop("num_utterances"))
        audio_s = total.pop("audio_s")
        why = _unscored_reasons({k: int(total.pop(k)) for k in extra[2:]})
        sums_out = {k: total[k] for k in keys}
        if n == 0:
            log.warning("%s: no utterance could be scored (%s)", index.split, ", ".join(why) or "none read")
            return EvalResult(index.split, {}, sums_out)
        metrics = self.task.eval_metrics(sums_out)
        metrics.update(num_utterances=n, audio_s=round(audio_s, 3))
        unscored = index.num_samples - n
        if unscored > 0:
            if max_batches is not None:
                why.append(f"eval_max_batches={max_batches}")
            metrics["num_unscored"] = unscored
            if self.rank == 0:
                log.warning("%s: scored %d of %d utterances (%s); the metrics are over the scored ones",
                            index.split, n, index.num_samples, ", ".join(why) or "the index counts more than the shards hold")
        return EvalResult(index.split, metrics, sums_out)


def _unscored_reasons(counts: dict[str, int]) -> list[str]:
    """Why utterances went unscored, in the units the counts have (utterances, shards)."""
    why = []
    if counts["damaged"]:
        why.append(f"{counts['damaged']} damaged utterance(s)")
    if counts["bad_shards"]:
        why.append(f"{counts['bad_shards']} damaged shard(s), their unread rest")
    if counts["unreadable_shards"]:
        why.append(f"{counts['unreadable_utts']} utterance(s) in {counts['unreadable_shards']} unreadable shard(s)")
    return why
