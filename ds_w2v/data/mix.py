"""Several corpora in one training stream: per-batch source draws with a temperature, no mix epochs.

::

    # parse_mix, read_mix, mix_labels: ds_w2v.data.mix_sources (the corpora as the config names them)
    mix = parse_mix(["data/ls:train-clean-100", "data/ls:train-clean-360", "data/ls:train-other-500"])
    sources = read_mix(mix)                                   # [(SplitIndex, weight), ...]
    loader = MixedLoader(sources, StreamConfig(kind="pretrain", batch_s=87.5), names=mix_labels(mix))
    loader.load_state_dict(ckpt["data"])                      # optional: resume, bit-exact
    for batch in loader:                                      # never ends (a training stream)
        ...
        ckpt["data"] = loader.state_dict()                    # {"kind": "mix", "batches": 41250, ...}

**Which corpus a batch comes from.** Source ``k`` is drawn with probability
``p_k ∝ (weight_k · hours_k) ** alpha`` (multilingual wav2vec 2.0 / XLS-R, Conneau et al. 2020
§3.1 and Babu et al. 2021 §3.1: ``p_l ∝ (n_l / N) ** α``): ``alpha = 1`` samples in proportion to
the (weighted) audio, ``alpha < 1`` flattens towards the small corpora (XLS-R: 0.5), ``alpha = 0``
is uniform over sources. A weight scales a corpus's hours before the temperature (weight 2: as if
it held twice its audio). The draw of batch ``i`` is a pure function of ``(seed, i)``
(:func:`draw_sources`): every rank draws the same source for the same batch, so every rank takes
the same number of batches from each source, and each source's :class:`StreamingLoader` keeps its
own equal-batches guarantee (``docs/data_stream.md``, *Several corpora*).

**Epochs.** Each source streams its own epochs (its own shard orders, reshuffled each epoch) and
rolls over when its epoch ends, independently of the others; the mix has no epochs. ``epoch`` is
a nominal count for logs: batches drawn // ``len(loader)`` (the sum of the sources' epoch
lengths, i.e. one pass over all the audio at ``alpha = 1``).
"""
from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from ds_w2v.data.batching import Batch
from ds_w2v.data.index import SplitIndex
from ds_w2v.data.loader import StreamingLoader, dist_rank_world
from ds_w2v.data.mix_sources import CONFIG_KEY, mix_labels, parse_mix, read_mix
from ds_w2v.data.stream import StreamConfig, StreamStats

log = logging.getLogger(__name__)

_DRAW_TAG = 0x6D6978  # "mix": keeps the source draws apart from the (seed, epoch, pass) shard orders


# -- the draw ------------------------------------------------------------------------------------
def mix_probabilities(seconds: Sequence[float], weights: Sequence[float], alpha: float = 1.0) -> tuple[float, ...]:
    """``p_k = (w_k s_k) ** alpha / sum_j (w_j s_j) ** alpha`` (module docstring)."""
    if not math.isfinite(alpha) or alpha < 0:
        raise ValueError(f"data.mix_alpha (the temperature) must be a finite number >= 0, got {alpha}")
    mass = np.asarray(weights, dtype=np.float64) * np.asarray(seconds, dtype=np.float64)
    if len(mass) == 0 or not np.all(mass > 0):
        raise ValueError(f"{CONFIG_KEY}: every source needs audio and a weight > 0 (weight x seconds: {mass.tolist()})")
    scaled = np.exp(alpha * (np.log(mass) - np.log(mass).max()))  # in logs: no overflow at large hours
    return tuple(float(p) for p in scaled / scaled.sum())


def draw_sources(seed: int, probabilities: Sequence[float], start: int, count: int) -> np.ndarray:
    """The sources of batches ``start .. start + count - 1``: batch ``i`` takes the first ``k``
    whose cumulative probability exceeds a uniform draw of ``np.random.default_rng([seed, tag, i])``,
    a pure function of ``(seed, i)``: the same on every rank and after any resume."""
    cdf = np.cumsum(probabilities)
    u = np.fromiter((np.random.default_rng([seed, _DRAW_TAG, i]).random() for i in range(start, start + count)),
                    dtype=np.float64, count=count)
    return np.minimum(np.searchsorted(cdf, u * cdf[-1], side="right"), len(cdf) - 1)


# -- the loader ----------------------------------------------------------------------------------
class MixedLoader:
    """One rank's training batches drawn from several corpora (module docstring).

    Holds one :class:`StreamingLoader` per source (source ``k`` streams with seed
    ``config.seed + k``: the first is the plain loader's stream, the others do not repeat its
    shuffles and crops). The interface is the one :class:`~ds_w2v.data.prefetch.BatchFeed` uses:
    ``iter(loader)``, ``epoch``, ``state_dict()``, ``load_state_dict()``, ``stats``. An iterator
    continues from the loader's position; hold one at a time.

    Workers: each source has its own ``config.num_workers`` DataLoader workers, so a rank runs
    ``num_sources x num_workers`` worker processes, each holding ``prefetch_factor`` batches;
    the drawn source's workers work while the others wait with their batches ready.
    """

    def __init__(
        self, sources: Sequence[tuple[SplitIndex, float]], config: StreamConfig, *, temperature_alpha: float = 1.0,
        rank: int | None = None, world_size: int | None = None, names: Sequence[str] | None = None,
    ):
        if not sources:
            raise ValueError(f"{CONFIG_KEY}: no corpus to mix")
        if not config.loop:
            raise ValueError("a mix is a training stream (StreamConfig.loop=True); evaluate each split on its own")
        self.config = config
        self.rank, self.world_size = dist_rank_world(rank, world_size)
        self.names = list(names) if names is not None else _unique([index.split for index, _ in sources])
        if len(self.names) != len(sources) or len(set(self.names)) != len(self.names):
            raise ValueError(f"MixedLoader: {len(sources)} sources need as many unique names, got {self.names}")
        self.temperature_alpha = float(temperature_alpha)
        self.probabilities = mix_probabilities([index.total_s for index, _ in sources],
                                               [weight for _, weight in sources], self.temperature_alpha)
        """``p_k`` of each source, in order (the same on every rank)."""
        self.loaders = [
            StreamingLoader.from_split(index, dataclasses.replace(config, seed=config.seed + k),
                                       rank=self.rank, world_size=self.world_size)
            for k, (index, _) in enumerate(sources)
        ]
        self.batches = 0
        """Batches yielded so far (over the whole run, resumed): the index of the next draw."""

    @classmethod
    def from_entries(
        cls, entries: Sequence[str | Mapping[str, Any]], config: StreamConfig, *, default_split: str = "train",
        url_prefix: str | None = None, check_targets: bool = True, **kwargs: Any,
    ) -> "MixedLoader":
        """:func:`parse_mix` + :func:`read_mix` + the loader (``kwargs``: ``temperature_alpha``, ``rank``, ...)."""
        mix = parse_mix(entries, default_split)
        return cls(read_mix(mix, url_prefix, check_targets=check_targets), config, names=mix_labels(mix), **kwargs)

    def __len__(self) -> int:
        """Nominal batches per "epoch" of the mix: the sum of the sources' epoch lengths."""
        return sum(len(sub) for sub in self.loaders)

    @property
    def epoch(self) -> int:
        """Nominal epochs of the mix done (for logs): ``batches // len(self)``."""
        return self.batches // len(self)

    @property
    def source_batches(self) -> list[int]:
        """Batches taken from each source so far (resumed runs included): the same on every rank."""
        return [sub.epoch * len(sub) + sub.batches_in_epoch for sub in self.loaders]

    def __iter__(self) -> Iterator[Batch]:
        epochs: list[Iterator[Batch] | None] = [None] * len(self.loaders)  # each source's current epoch
        while True:
            k = int(draw_sources(self.config.seed, self.probabilities, self.batches, 1)[0])
            batch = self._next_of(k, epochs)
            self.batches += 1
            yield batch

    def _next_of(self, k: int, epochs: list[Iterator[Batch] | None]) -> Batch:
        for _ in range(2):
            if epochs[k] is None:
                epochs[k] = iter(self.loaders[k])  # from the source's position: mid-epoch after a resume
            try:
                return next(epochs[k])
            except StopIteration:  # its epoch is over; the sub-loader moved to the next one itself
                epochs[k] = None
        raise RuntimeError(f"source {self.names[k]!r} yielded no batch in a fresh epoch")  # looping streams cannot

    # -- logging ---------------------------------------------------------------------------------
    @property
    def stats(self) -> StreamStats:
        """The sources' :class:`StreamStats` merged (since the loader was built; per source: ``source_stats``)."""
        total = StreamStats()
        for sub in self.loaders:
            total.merge(sub.stats)
        return total

    @property
    def source_stats(self) -> dict[str, StreamStats]:
        return {name: sub.stats for name, sub in zip(self.names, self.loaders)}

    def source_figures(self, prefix: str = "data/mix/") -> dict[str, float]:
        """Per source: ``batches`` taken, ``share`` of all batches, ``epochs`` streamed (fractional),
        ``p``; the same on every rank (log them from rank 0, no reduction)."""
        out: dict[str, float] = {}
        done = max(self.batches, 1)
        for name, p, sub, n in zip(self.names, self.probabilities, self.loaders, self.source_batches):
            out.update({f"{prefix}{name}/batches": float(n), f"{prefix}{name}/share": n / done,
                        f"{prefix}{name}/epochs": n / len(sub), f"{prefix}{name}/p": p})
        return out

    # -- resumable position ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The draw counter and every source's :meth:`StreamingLoader.state_dict` (plain JSON)."""
        return {
            "kind": "mix", "batches": self.batches, "seed": self.config.seed, "sources": list(self.names),
            "probabilities": list(self.probabilities), "temperature_alpha": self.temperature_alpha,
            "loaders": [sub.state_dict() for sub in self.loaders],
        }

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Restore a position: the next batches are those the saved loader would have yielded.

        The mix is defined by the seed, the sources (by name, in order) and their probabilities,
        each source's stream by :meth:`StreamingLoader.load_state_dict`'s keys. If one differs,
        ``strict`` raises; else the counter is kept, each source found by name resumes
        (non-strictly) and a new one starts at its beginning, with a warning.
        """
        if state.get("kind") != "mix":
            msg = (f"the saved data state is a single-corpus stream; this loader mixes {len(self.loaders)} "
                   f"({', '.join(self.names)})")
            if strict:
                raise ValueError(msg)
            log.warning("%s: starting the mix at its first batch", msg)
            return
        changed = []
        if state["seed"] != self.config.seed:
            changed.append(f"seed: saved {state['seed']}, now {self.config.seed}")
        if list(state["sources"]) != self.names:
            changed.append(f"sources: saved {list(state['sources'])}, now {self.names}")
        elif not np.allclose(state["probabilities"], self.probabilities, rtol=1e-9, atol=0):
            changed.append(f"probabilities: saved {_rounded(state['probabilities'])}, "
                           f"now {_rounded(self.probabilities)}")
        if changed and strict:
            raise ValueError(f"data stream state does not match this mix ({'; '.join(changed)})")
        if changed:
            log.warning("data mix changed (%s): the batches from here on differ from the saved run's",
                        "; ".join(changed))
        saved = dict(zip(state["sources"], state["loaders"]))
        for name, sub in zip(self.names, self.loaders):
            if name in saved:
                sub.load_state_dict(saved[name], strict=strict)
            else:
                sub.set_epoch(0)
        self.batches = int(state["batches"])


def _unique(names: Sequence[str]) -> list[str]:
    return [f"{n}#{k}" if list(names).count(n) > 1 else n for k, n in enumerate(names)]


def _rounded(ps: Sequence[float]) -> list[float]:
    return [round(float(p), 4) for p in ps]
