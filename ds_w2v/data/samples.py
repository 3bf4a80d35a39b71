"""Turn one raw WebDataset sample (``{"__key__", "npy"|"flac", "json"}`` bytes) into an
:class:`~ds_w2v.data.batching.Utterance`, or say precisely why it cannot be used.

The ``npy`` codec of :mod:`ds_w2v.data.shard_format` is decoded without a copy: its header is
parsed and the samples are an ``np.frombuffer`` view on the tar member's bytes (the copy into the
float batch tensor is the only pass over the audio). Anything else goes through
:func:`~ds_w2v.data.shard_format.decode_audio`.
"""
from __future__ import annotations

import ast
import json
from typing import Any

import numpy as np

from ds_w2v.data.batching import Utterance
from ds_w2v.data.shard_format import AUDIO_EXTS, decode_audio

_NPY_MAGIC = b"\x93NUMPY"
_AUDIO_EXTS = tuple(AUDIO_EXTS.values())

# reasons a sample is skipped; the first four mean the shard is damaged, the last two are filters
BAD_SHARD, BAD_AUDIO, BAD_JSON, INCOMPLETE = "bad_shard", "bad_audio", "bad_json", "incomplete_sample"
TOO_SHORT, TOO_LONG = "too_short", "too_long"
CORRUPTION_REASONS = (BAD_SHARD, BAD_AUDIO, BAD_JSON, INCOMPLETE)


class SampleError(Exception):
    """A sample that cannot be used; ``reason`` is one of the constants above."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def decode_npy_int16(data: bytes) -> np.ndarray:
    """1-D little-endian int16 ``.npy`` bytes -> a zero-copy read-only view; else ValueError."""
    if data[:6] != _NPY_MAGIC:
        raise ValueError("not a .npy entry (bad magic)")
    major = data[6]
    if major == 1:
        header_len, start = int.from_bytes(data[8:10], "little"), 10
    elif major in (2, 3):
        header_len, start = int.from_bytes(data[8:12], "little"), 12
    else:
        raise ValueError(f"unsupported .npy version {major}")
    header = ast.literal_eval(data[start:start + header_len].decode("latin1"))
    descr, shape = header.get("descr"), header.get("shape")
    if descr not in ("<i2", "|i2") and not (descr == "=i2" and np.little_endian):
        raise ValueError(f".npy entry of dtype {descr!r}, expected int16")
    if header.get("fortran_order") or not isinstance(shape, tuple) or len(shape) != 1:
        raise ValueError(f".npy entry of shape {shape!r}, expected 1-D")
    offset, count = start + header_len, shape[0]
    if len(data) - offset != 2 * count:
        raise ValueError(f".npy entry holds {len(data) - offset} bytes for {count} int16 samples")
    return np.frombuffer(data, dtype=np.int16, count=count, offset=offset)


def decode_sample(raw: dict[str, Any]) -> Utterance:
    """Validate and decode one raw sample; raises :class:`SampleError`."""
    key = raw.get("__key__", "?")
    ext = next((e for e in _AUDIO_EXTS if e in raw), None)
    if ext is None or "json" not in raw:
        present = sorted(k for k in raw if not k.startswith("__"))
        raise SampleError(INCOMPLETE, f"{key}: entries {present}, need an audio entry {_AUDIO_EXTS} and json")
    try:
        record = json.loads(raw["json"])
        if not isinstance(record, dict):
            raise ValueError(f"a JSON {type(record).__name__}, expected an object")
    except (ValueError, UnicodeDecodeError) as e:
        raise SampleError(BAD_JSON, f"{key}.json: {e}") from None
    try:
        pcm = decode_npy_int16(raw[ext]) if ext == "npy" else decode_audio(ext, raw[ext])
        if pcm.dtype != np.int16 or pcm.ndim != 1:
            raise ValueError(f"decoded to {pcm.dtype} {pcm.shape}, expected 1-D int16")
    except Exception as e:  # soundfile raises its own LibsndfileError; any failure means unusable
        raise SampleError(BAD_AUDIO, f"{key}.{ext}: {type(e).__name__}: {e}") from None
    if len(pcm) == 0:
        raise SampleError(BAD_AUDIO, f"{key}.{ext}: no samples")
    return Utterance(key=key, pcm=pcm, record=record, url=raw.get("__url__", ""))
