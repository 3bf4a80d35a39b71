"""Duration-bucketed batching: utterances in, padded or cropped :class:`Batch` tensors out.

A device batch is bounded by a budget of audio samples, like fairseq's ``max_tokens``: what counts
is the *padded* size ``B x T`` (the tensor the model really allocates), not the sum of the
utterance lengths. Two collations, one per task family:

* **pretraining** (fairseq ``RawAudioDataset`` with ``pad=False``): every utterance is cropped to
  the shortest of the batch, itself capped at ``max_sample_size`` (250,000 samples = 15.6 s,
  fairseq's wav2vec 2.0 BASE/LARGE value), at a random offset; no padding. Cost ``B x min(len)``.
* **fine-tuning** (``pad=True``): padded with zeros to the longest, lengths carried. Cost
  ``B x max(len)``.

Mixing a 2-s and a 15-s utterance wastes 13 s of padding (or of cropped audio), so utterances are
first sorted into duration buckets (by default 30 geometric buckets, each 15 % longer than the
previous: at most ~13 % padding inside a bucket, ~7 % on average) and a batch only holds
utterances of one bucket. Each bucket holds at most one open batch: memory is bounded by
``num_buckets x budget``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from ds_w2v.data.shard_format import SAMPLE_RATE

PRETRAIN, FINETUNE = "pretrain", "finetune"
BATCH_KINDS = (PRETRAIN, FINETUNE)
MAX_SAMPLE_SIZE = 250_000  # samples = 15.6 s; fairseq wav2vec 2.0 pretraining max_sample_size
_INT16_SCALE = np.float32(1.0 / 32768.0)  # int16 -> [-1, 1)


def geometric_buckets(first_s: float = 1.0, last_s: float = 35.0, ratio: float = 1.15) -> tuple[float, ...]:
    """Bucket upper bounds in seconds: ``first_s``, ``first_s * ratio``, ... up to ``last_s``.

    A constant ratio gives a constant worst-case padding fraction inside a bucket,
    ``1 - 1/ratio`` (13 % for 1.15); utterances longer than the last bound share a last bucket.
    """
    if first_s <= 0 or ratio <= 1 or last_s < first_s:
        raise ValueError(f"bad bucket spec first_s={first_s} last_s={last_s} ratio={ratio}")
    bounds = [first_s]
    while bounds[-1] * ratio <= last_s:
        bounds.append(round(bounds[-1] * ratio, 3))
    return tuple(bounds)


DEFAULT_BUCKETS_S = geometric_buckets()


@dataclass(slots=True)
class Utterance:
    """One decoded sample of a shard, as it travels from the reader to the batcher."""

    key: str
    pcm: np.ndarray
    """int16 samples at 16 kHz (often a read-only view on the tar member's bytes)."""
    record: dict[str, Any]
    """The JSON metadata record of :mod:`ds_w2v.data.shard_format`."""
    url: str = ""
    speed: float = 1.0
    """A speed change drawn for it and not yet applied (``augment.Augmenter.draw_speed``):
    ``pcm`` and ``record`` are still the original's, and ``augment.apply_speed`` resamples them
    when the batch is collated, so a resume's fast-forward never resamples what it skips."""
    speed_samples: int = 0
    """Samples after that change (the resampler's exact output length); unused at speed 1."""

    @property
    def num_samples(self) -> int:
        """Samples it will have in a batch: after its pending speed change, if any."""
        return len(self.pcm) if self.speed == 1.0 else self.speed_samples


@dataclass
class Batch:
    """A device batch. ``audio`` rows are zero beyond ``lengths`` (fine-tuning) or all full
    (pretraining, every row cropped to ``T``)."""

    audio: torch.Tensor
    """float32 [B, T], waveform scaled from int16 to [-1, 1)."""
    lengths: torch.Tensor
    """int64 [B], valid samples of each row."""
    ids: list[str]
    texts: list[str | None]
    labels: list[str | None]
    meta: list[dict[str, Any]] = field(default_factory=list)
    """The full JSON record of each utterance (speaker, phones, source, corpus extras...)."""
    host_lengths: tuple[int, ...] | None = None
    """``lengths`` as host integers, kept by ``to()``: batch arithmetic (audio-seconds, FLOPs)
    reads them without waiting on the device once ``lengths`` lives there."""

    @property
    def batch_size(self) -> int:
        return int(self.audio.shape[0])

    @property
    def lengths_list(self) -> tuple[int, ...]:
        """Valid samples of each row, on the host."""
        if self.host_lengths is None:
            self.host_lengths = tuple(int(n) for n in self.lengths.tolist())
        return self.host_lengths

    @property
    def num_samples(self) -> int:
        """Valid (non-padding) audio samples in the batch."""
        return sum(self.lengths_list)

    @property
    def num_audio_s(self) -> float:
        """Valid audio in seconds (padding excluded), e.g. for audio-seconds-per-second rates."""
        return self.num_samples / SAMPLE_RATE

    @property
    def padding_fraction(self) -> float:
        return 1.0 - self.num_samples / max(1, self.audio.numel())

    def padding_mask(self) -> torch.Tensor:
        """Bool [B, T], True on padding (the convention of fairseq and HF ``attention_mask == 0``)."""
        pos = torch.arange(self.audio.shape[1], device=self.lengths.device)
        return pos[None, :] >= self.lengths[:, None]

    def to(self, device: torch.device | str, non_blocking: bool = True) -> "Batch":
        host = self.lengths_list  # read while the lengths are still on the host
        return Batch(
            self.audio.to(device, non_blocking=non_blocking),
            self.lengths.to(device, non_blocking=non_blocking),
            self.ids, self.texts, self.labels, self.meta, host,
        )

    def pin_memory(self) -> "Batch":
        """Called by ``DataLoader(pin_memory=True)``."""
        return Batch(self.audio.pin_memory(), self.lengths.pin_memory(), self.ids, self.texts, self.labels, self.meta,
                     self.host_lengths)


class DurationBatcher:
    """Groups utterances into duration buckets and emits a bucket's batch when it is full.

    ``add`` returns the batch (a list of utterances) that the new utterance could not join, or
    ``None``; ``flush`` empties every bucket (used only by single-pass evaluation streams).
    The padded cost ``B x T`` of an emitted batch never exceeds ``max_batch_samples``.
    """

    def __init__(
        self,
        max_batch_samples: int,
        kind: str = PRETRAIN,
        bucket_boundaries_s: Sequence[float] = DEFAULT_BUCKETS_S,
        max_sample_size: int = MAX_SAMPLE_SIZE,
        max_batch_size: int | None = None,
    ):
        if kind not in BATCH_KINDS:
            raise ValueError(f"unknown batch kind {kind!r}; known: {BATCH_KINDS}")
        if max_batch_samples <= 0:
            raise ValueError(f"max_batch_samples must be > 0, got {max_batch_samples}")
        self.max_batch_samples = int(max_batch_samples)
        self.kind = kind
        self.max_sample_size = int(max_sample_size)
        self.max_batch_size = max_batch_size or math.inf
        self._bounds = np.asarray(sorted(round(b * SAMPLE_RATE) for b in bucket_boundaries_s), dtype=np.int64)
        num_buckets = len(self._bounds) + 1
        self._items: list[list[Utterance]] = [[] for _ in range(num_buckets)]
        # the length that sets the padded cost: max for fine-tuning, min (cropped) for pretraining
        self._width = [0] * num_buckets

    def effective_length(self, num_samples: int) -> int:
        """Samples an utterance occupies in a batch (pretraining crops; fine-tuning keeps all)."""
        if self.kind == PRETRAIN:
            return min(num_samples, self.max_sample_size, self.max_batch_samples)
        return num_samples

    def fits_alone(self, num_samples: int) -> bool:
        return self.effective_length(num_samples) <= self.max_batch_samples

    def add(self, utt: Utterance) -> list[Utterance] | None:
        n = self.effective_length(utt.num_samples)
        if n > self.max_batch_samples:
            raise ValueError(f"{utt.key}: {n} samples exceed the batch budget {self.max_batch_samples}")
        b = int(np.searchsorted(self._bounds, n, side="left"))
        items, width = self._items[b], self._width[b]
        if items:
            new_width = max(width, n) if self.kind == FINETUNE else min(width, n)
            if (len(items) + 1) * new_width <= self.max_batch_samples and len(items) < self.max_batch_size:
                items.append(utt)
                self._width[b] = new_width
                return None
        full = items if items else None
        self._items[b], self._width[b] = [utt], n
        return full

    def flush(self) -> Iterator[list[Utterance]]:
        for b, items in enumerate(self._items):
            if items:
                yield items
            self._items[b], self._width[b] = [], 0


@dataclass
class CollateStats:
    """Sample counts of one collated batch, summed by the stream into its statistics."""

    num_utterances: int
    valid_samples: int
    """Samples of real audio in the tensor."""
    tensor_samples: int
    """``B x T``: what the budget counts."""
    cropped_samples: int
    """Audio dropped by pretraining crops (0 for fine-tuning)."""


def collate(
    utts: Sequence[Utterance], kind: str, max_sample_size: int = MAX_SAMPLE_SIZE,
    rng: np.random.Generator | None = None,
) -> tuple[Batch, CollateStats]:
    """Stack utterances into a :class:`Batch`: crop to the shortest (pretraining, random offsets
    from ``rng``) or zero-pad to the longest (fine-tuning)."""
    lens = np.fromiter((len(u.pcm) for u in utts), dtype=np.int64, count=len(utts))
    if kind == PRETRAIN:
        width = int(min(lens.min(), max_sample_size))
        rng = rng if rng is not None else np.random.default_rng()
        offsets = rng.integers(0, lens - width + 1)  # one draw per row, inclusive of len - width
        audio = np.empty((len(utts), width), dtype=np.float32)
        for row, (u, off) in enumerate(zip(utts, offsets)):
            # int16 * float32 -> float32 written in place: one pass, no temporary
            np.multiply(u.pcm[off:off + width], _INT16_SCALE, out=audio[row])
        lengths = np.full(len(utts), width, dtype=np.int64)
        cropped = int(lens.sum()) - width * len(utts)
    elif kind == FINETUNE:
        width = int(lens.max())
        audio = np.empty((len(utts), width), dtype=np.float32)
        for row, u in enumerate(utts):
            n = len(u.pcm)
            np.multiply(u.pcm, _INT16_SCALE, out=audio[row, :n])
            audio[row, n:] = 0.0
        lengths, cropped = lens, 0
    else:
        raise ValueError(f"unknown batch kind {kind!r}; known: {BATCH_KINDS}")
    records = [u.record for u in utts]
    batch = Batch(
        audio=torch.from_numpy(audio),
        lengths=torch.from_numpy(lengths),
        ids=[r.get("id") or u.key for r, u in zip(records, utts)],
        texts=[r.get("text") for r in records],
        labels=[r.get("label") for r in records],
        meta=records,
    )
    valid = int(lengths.sum())
    return batch, CollateStats(len(utts), valid, audio.size, cropped)
