"""The on-disk contract between ``prepare`` (writer) and the streaming loader (reader).

A shard is a WebDataset tar named ``{split}-{index:06d}.tar``. Each sample has a key without
dots (WebDataset splits key from extension at the first dot) and two entries:

* ``<key>.<audio ext>``: mono 16 kHz 16-bit audio, encoded by :func:`encode_audio`;
* ``<key>.json``: the metadata record, UTF-8 JSON with these fields
  (absent information is ``null``, never a missing key)::

      id          str    corpus-unique utterance id (also the key, dots replaced)
      duration_s  float  seconds of audio after resampling
      num_samples int    samples at 16 kHz
      speaker     str|null
      text        str|null   normalised transcript (ds_w2v.text.normalize_text)
      phones      list[str]|null  39-phone folded sequence (TIMIT), else null
      phone_spans list[[int, int]]|null  ``[start, end)`` of each phone of ``phones``, in
                         samples at 16 kHz (TIMIT ``.PHN`` timings, scaled when the source
                         was not 16 kHz; a deleted ``q`` leaves a gap), else null. Shards
                         prepared before this field existed lack the key: re-run prepare
      label       str|null   class label (RAVDESS emotion name, CSV label ...)
      source      str    path of the original file
      meta        dict   corpus-specific extras (dialect, sex, intensity, actor, ...)

Next to the shards, ``dataset.json`` indexes them (see :data:`INDEX_FIELDS`).
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_RATE = 16_000  # Hz, what every wav2vec 2.0 model here consumes
INDEX_NAME = "dataset.json"
REJECTS_NAME = "rejects.jsonl"
VOCAB_NAME = "vocab.json"

# dataset.json: {"format": 1, "sample_rate": 16000, "audio_codec": "npy",
#   "splits": {split: {"shards": [relative names], "num_samples": int, "hours": float,
#                      "shard_num_samples": [int per shard], "shard_seconds": [float per shard]}},
#   "labels": [sorted label names] | null, "vocab": {token: id} | null,
#   "rejects": {reason: count}, "source": {"format": str, "path": str}}
INDEX_FIELDS = ("format", "sample_rate", "audio_codec", "splits", "labels", "vocab", "rejects", "source")

# Codec -> tar extension. "npy": raw int16 in a .npy container (a 128-byte header, then the
# samples), decoded by one memcpy; "flac": lossless, ~2x smaller, but decoding costs CPU.
AUDIO_EXTS = {"npy": "npy", "flac": "flac"}
DEFAULT_CODEC = "npy"


def encode_audio(pcm: np.ndarray, codec: str = DEFAULT_CODEC) -> tuple[str, bytes]:
    """Encode mono int16 samples; returns (tar extension, bytes)."""
    if pcm.dtype != np.int16 or pcm.ndim != 1:
        raise ValueError(f"expected 1-D int16 samples, got {pcm.dtype} with shape {pcm.shape}")
    buf = io.BytesIO()
    if codec == "npy":
        np.save(buf, pcm, allow_pickle=False)
    elif codec == "flac":
        import soundfile as sf

        sf.write(buf, pcm, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    else:
        raise ValueError(f"unknown audio codec {codec!r}; known: {sorted(AUDIO_EXTS)}")
    return AUDIO_EXTS[codec], buf.getvalue()


def decode_audio(ext: str, data: bytes) -> np.ndarray:
    """Decode an audio entry written by :func:`encode_audio` to int16 samples."""
    if ext == "npy":
        return np.load(io.BytesIO(data), allow_pickle=False)
    if ext == "flac":
        import soundfile as sf

        pcm, sr = sf.read(io.BytesIO(data), dtype="int16")
        if sr != SAMPLE_RATE:
            raise ValueError(f"flac entry at {sr} Hz, expected {SAMPLE_RATE}")
        return pcm
    raise ValueError(f"unknown audio entry extension {ext!r}")


def read_index(shard_dir: str | Path) -> dict[str, Any]:
    """Load ``dataset.json`` from a prepared directory, with a clear error if it is not one."""
    path = Path(shard_dir) / INDEX_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no dataset index; run `ds-w2v prepare` first")
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not valid JSON ({e}); a damaged dataset index: run `ds-w2v prepare` again") from None
    if not isinstance(index, dict):
        raise ValueError(f"{path}: not a ds_w2v dataset index (a JSON {type(index).__name__}, not an object)")
    missing = [k for k in INDEX_FIELDS if k not in index]
    if missing:
        raise ValueError(f"{path}: not a ds_w2v dataset index (missing {missing})")
    return index
