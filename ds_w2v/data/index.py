"""A prepared directory + a split name -> shard URLs, durations, labels and vocabulary.

Reads ``dataset.json`` through :func:`ds_w2v.data.shard_format.read_index`; the streaming loader
needs the per-shard seconds to derive how many batches each rank yields per epoch.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ds_w2v.data.shard_format import INDEX_NAME, read_index


@dataclass(frozen=True)
class SplitIndex:
    """What the loader and the task heads need to know about one split."""

    split: str
    urls: tuple[str, ...]
    """Shard paths, in index order (the loader shuffles them per epoch)."""
    shard_seconds: tuple[float, ...]
    shard_num_samples: tuple[int, ...]
    num_samples: int
    hours: float
    audio_codec: str
    labels: tuple[str, ...] | None
    """Sorted class names (classification corpora), else None."""
    vocab: dict[str, int] | None
    """CTC character vocabulary ``{token: id}`` (transcribed corpora), else None."""

    @property
    def total_s(self) -> float:
        return sum(self.shard_seconds)

    @property
    def num_shards(self) -> int:
        return len(self.urls)


def read_split(shard_dir: str | Path, split: str) -> SplitIndex:
    """The :class:`SplitIndex` of ``split`` in a prepared directory.

    Raises ``ValueError`` naming the known splits when ``split`` is not one of them, and when
    the per-shard lists do not match the shard list.
    """
    shard_dir = Path(shard_dir)
    index: dict[str, Any] = read_index(shard_dir)
    splits = index["splits"]
    if split not in splits:
        known = ", ".join(sorted(splits)) or "none"
        raise ValueError(f"{shard_dir / INDEX_NAME}: no split {split!r}; known splits: {known}")
    entry = splits[split]
    names = list(entry["shards"])
    if not names:
        raise ValueError(f"{shard_dir / INDEX_NAME}: split {split!r} has no shards")
    seconds = entry.get("shard_seconds")
    counts = entry.get("shard_num_samples")
    if seconds is None:  # an index without per-shard stats: spread the split's hours evenly
        seconds = [float(entry["hours"]) * 3600.0 / len(names)] * len(names)
    if counts is None:
        counts = [int(entry["num_samples"]) // len(names)] * len(names)
    if len(seconds) != len(names) or len(counts) != len(names):
        raise ValueError(
            f"{shard_dir / INDEX_NAME}: split {split!r} lists {len(names)} shards but "
            f"{len(seconds)} shard_seconds and {len(counts)} shard_num_samples"
        )
    labels = index.get("labels")
    return SplitIndex(
        split=split,
        urls=tuple(str(shard_dir / name) for name in names),
        shard_seconds=tuple(float(s) for s in seconds),
        shard_num_samples=tuple(int(n) for n in counts),
        num_samples=int(entry["num_samples"]),
        hours=float(entry["hours"]),
        audio_codec=index["audio_codec"],
        labels=tuple(labels) if labels is not None else None,
        vocab=dict(index["vocab"]) if index.get("vocab") is not None else None,
    )
