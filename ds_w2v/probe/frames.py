"""Frame-level phone labels from the shards' phone spans.

The convention: frame ``t`` of the conv feature encoder sees samples
``[t * stride, t * stride + receptive_field)`` (BASE: stride 320 = 20 ms, receptive field 400 =
25 ms at 16 kHz), so its centre is ``t * stride + receptive_field / 2`` (BASE: 320 t + 200). Its
label is the phone whose ``[start, end)`` span holds that centre. A frame whose centre falls in
no span -- the gap a deleted ``q`` leaves, or audio past the last ``.PHN`` line -- gets
:data:`IGNORE` and counts neither in training nor in accuracy. Transformer layers keep the conv
encoder's frame grid, so one labelling serves every layer.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..data.sources.timit import PHONES_39

IGNORE = -100  # a frame without a phone (the PyTorch cross-entropy's ignore_index)
PHONE_IDS = {p: i for i, p in enumerate(PHONES_39)}  # the 39 folded TIMIT phones -> 0..38


def frame_centres(num_frames: int, stride: int, receptive_field: int) -> np.ndarray:
    """Centre of each frame's receptive field, in samples (float64 [num_frames])."""
    return np.arange(num_frames, dtype=np.float64) * stride + receptive_field / 2.0


def frame_phone_labels(
    phones: Sequence[str],
    spans: Sequence[tuple[int, int]],
    num_frames: int,
    stride: int,
    receptive_field: int,
    phone_ids: dict[str, int] = PHONE_IDS,
) -> np.ndarray:
    """int64 [num_frames]: the id of the phone covering each frame's centre, else :data:`IGNORE`.

    ``spans`` are ``[start, end)`` in samples, one per phone; overlapping spans (not in TIMIT)
    resolve to the one that starts last before the centre.
    """
    if len(phones) != len(spans):
        raise ValueError(f"{len(phones)} phones but {len(spans)} spans")
    labels = np.full(num_frames, IGNORE, dtype=np.int64)
    if not spans or num_frames == 0:
        return labels
    order = sorted(range(len(spans)), key=lambda i: spans[i][0])  # stable: ties keep file order
    starts = np.array([spans[i][0] for i in order], dtype=np.float64)
    ends = np.array([spans[i][1] for i in order], dtype=np.float64)
    ids = np.array([phone_ids[phones[i]] for i in order], dtype=np.int64)
    centres = frame_centres(num_frames, stride, receptive_field)
    k = np.searchsorted(starts, centres, side="right") - 1  # last span starting at or before the centre
    inside = (k >= 0) & (centres < ends[np.maximum(k, 0)])
    labels[inside] = ids[k[inside]]
    return labels
