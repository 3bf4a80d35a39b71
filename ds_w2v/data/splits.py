"""The splits a training run reads, refused or accepted before any process group starts: train
(or ``data.train``'s mix of corpora), dev, the test splits. The trainer, the dry run
(``train/plan.py``) and any reference loop read them here, with the two facts of their task that
matter (``Task.reads_targets``, ``Task.needs_dev``)."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from .index import SplitIndex, read_split
from .mix import mix_probabilities
from .mix_sources import TARGETS, MixSource, check_same_targets, parse_mix, read_mix
from .shard_format import read_index

log = logging.getLogger("ds_w2v.train")


@dataclass
class RunSplits:
    """The splits a run reads, refused or accepted before any process group starts."""

    train: SplitIndex
    """The train split; with ``data.train`` (a mix) its first corpus: vocabulary and labels are
    the same across the mix (checked), which is what the task's head is built from."""
    dev: SplitIndex | None
    tests: dict[str, SplitIndex]
    mix: list[tuple[MixSource, SplitIndex, float]] | None = None
    """``data.train``'s corpora: (source, index, weight), in order; None without a mix."""


def read_run_splits(d, reads_targets: bool | tuple[str, ...] = True, needs_dev: bool = True) -> RunSplits:
    """The splits of ``d`` (a ``DataConfig``): the default test split may be absent (pretraining
    audio), a split named explicitly must exist; a mix's corpora must agree on what the task reads
    (``reads_targets``: True transcripts, ``("label set",)`` labels, False nothing) with each other and
    with dev; without ``needs_dev`` a missing dev split is a warning, not an error."""
    prefix = d.shard_url_prefix
    mix = None
    if d.train:
        sources = parse_mix(d.train, d.train_split)
        # what the task's head trains on must agree: a classification mix reads only the label sets
        indexes = read_mix(sources, prefix, check_targets=reads_targets)
        mix_probabilities([i.total_s for i, _ in indexes], [w for _, w in indexes], d.mix_alpha)  # refuses a bad alpha
        mix = [(src, index, weight) for src, (index, weight) in zip(sources, indexes)]
        train = mix[0][1]
    else:
        train = read_split(d.shards, d.train_split, prefix)
    dev = None
    if d.dev_split and not needs_dev and d.dev_split not in read_index(d.shards)["splits"]:
        # a folder of audio (`prepare --format dir`) has no dev split unless --valid-percent made one:
        # a task that needs none to learn (pretraining) runs without dev evaluation and says so
        log.warning("data.shards %s has no split %r: the run goes on without dev evaluation (no best checkpoint "
                    "on dev; `prepare --valid-percent 1` holds out a dev split, data.dev_split=null silences this)",
                    d.shards, d.dev_split)
    elif d.dev_split:
        dev = read_split(d.shards, d.dev_split, prefix)
    if mix and dev is not None and reads_targets:
        check_same_targets([(f"{d.shards}:{d.dev_split}", dev), *((src.entry, index) for src, index, _ in mix)],
                           TARGETS if reads_targets is True else reads_targets)
    tests = {}
    for split in d.test_splits:
        try:
            tests[split] = read_split(d.shards, split, prefix)
        except ValueError:
            if split == "test" and len(d.test_splits) == 1:
                continue
            raise
    return RunSplits(train, dev, tests, mix)
