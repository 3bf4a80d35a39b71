"""The utterances of one split of a prepared corpus, in memory, for probing a frozen model.

A probe reads a split once, in shard order (``prepare`` writes each split in a seeded hash order
of the ids, so the first ``max_utterances`` are a pseudo-random sample of its speakers, the same
on every run), and keeps the int16 audio with what the probes need of the record: the folded
phones and their 16 kHz spans (TIMIT), the class label (RAVDESS, CSV labels). One hour of 16 kHz
int16 audio is 115 MB; ``max_utterances`` bounds it.

What a protocol needs is checked here, on every utterance, before any feature is computed:
:func:`require_phone_spans` (the linear phone probe), :func:`require_phones` (phone
recognition), :func:`require_labels` (emotion recognition). Each refusal is one line naming the
dataset and the reason.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..data.reader import split_utterances


@dataclass
class ProbeUtterance:
    """One utterance as the probes see it."""

    id: str
    pcm: np.ndarray
    """int16 samples at 16 kHz."""
    phones: list[str] | None = None
    """The 39 folded TIMIT phones, else None."""
    phone_spans: list[tuple[int, int]] | None = None
    """``[start, end)`` in samples at 16 kHz of each of ``phones``; None when the corpus has no
    timings, or the shards were prepared before the record carried them (``spans_missing``)."""
    label: str | None = None
    spans_missing: bool = False
    """The record has no ``phone_spans`` key at all: shards older than the field."""

    @property
    def num_samples(self) -> int:
        return len(self.pcm)


def read_utterances(shard_dir: str | Path, split: str, max_utterances: int | None = None) -> list[ProbeUtterance]:
    """The utterances of ``split`` in ``shard_dir`` (the first ``max_utterances`` in shard order).

    Raises ValueError / FileNotFoundError naming the folder: no ``dataset.json``, an unknown
    split (the known ones listed); naming the shard: a damaged sample or an unreadable shard
    (:func:`~ds_w2v.data.reader.split_utterances`).
    """
    if max_utterances is not None and max_utterances < 1:
        raise ValueError(f"max_utterances must be >= 1, got {max_utterances}")
    out = [_probe_utterance(u) for u in split_utterances(shard_dir, split, limit=max_utterances)]
    if not out:
        raise ValueError(f"{shard_dir}: split {split!r} holds no utterance")
    return out


def _probe_utterance(utt) -> ProbeUtterance:
    record = utt.record
    spans = record.get("phone_spans")
    return ProbeUtterance(
        id=str(record.get("id", utt.key)),
        pcm=utt.pcm,
        phones=record.get("phones"),
        phone_spans=[(int(s), int(e)) for s, e in spans] if spans is not None else None,
        label=record.get("label"),
        spans_missing="phone_spans" not in record,
    )


def require_phones(utterances: Sequence[ProbeUtterance], where: str) -> None:
    """Every utterance has its folded phone sequence (TIMIT), or one ValueError line."""
    bad = next((u for u in utterances if not u.phones), None)
    if bad is not None:
        raise ValueError(f"{where}: utterance {bad.id} has no phone transcription; phone probes need a corpus "
                         "prepared with --format timit")


def require_phone_spans(utterances: Sequence[ProbeUtterance], where: str) -> None:
    """Every utterance has phone timings (one span per phone), or one ValueError line."""
    require_phones(utterances, where)
    old = next((u for u in utterances if u.spans_missing), None)
    if old is not None:
        raise ValueError(f"{where}: the shards have no phone timings (phone_spans; utterance {old.id}): they were "
                         "prepared before ds_w2v kept them; re-run `ds-w2v prepare ... --overwrite` on the corpus")
    bad = next((u for u in utterances if u.phone_spans is None or len(u.phone_spans) != len(u.phones)), None)
    if bad is not None:
        raise ValueError(f"{where}: utterance {bad.id} has no phone timings for its {len(bad.phones)} phones; the "
                         "linear phone probe needs frame alignments (TIMIT .PHN files)")


def require_labels(utterances: Sequence[ProbeUtterance], labels: Sequence[str] | None, where: str) -> None:
    """The corpus has a label set and every utterance one of its labels, or one ValueError line."""
    if not labels:
        raise ValueError(f"{where}: the corpus has no class labels (dataset.json 'labels' is null); emotion "
                         "recognition needs a labelled corpus (e.g. --format ravdess)")
    bad = next((u for u in utterances if u.label not in labels), None)
    if bad is not None:
        raise ValueError(f"{where}: utterance {bad.id} has label {bad.label!r}, not one of the corpus's {list(labels)}")
