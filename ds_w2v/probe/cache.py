"""Frozen features on disk, so that a second probe of the same upstream costs no forward pass.

An entry is a folder ``CACHE/<split>-<key>/`` holding ``meta.json`` (ids, frame offsets, layer
names, what it was computed from) and one ``<layer>.npy`` float32 matrix per layer, read back
memory-mapped. The key is a SHA-256 of

* the upstream's fingerprint (``upstream.model_fingerprint``: config + backbone tensors),
* the utterances: each id, length and a hash of its samples -- so a re-prepared corpus, another
  ``max_utterances`` or another split is another entry, whatever the folder is called,
* the extraction settings (``batch_s``, ``max_padding``: padding moves group-norm features) and
  :data:`CACHE_VERSION`.

An entry is written into a temporary folder and renamed into place, so a crashed run leaves no
half entry under a real key, and two runs racing on one key both end with a whole one; an entry
that cannot be read back (a damaged file) is computed again and replaced.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np

from ..inference import MAX_PADDING
from ..models.wav2vec2 import Wav2Vec2Task
from .features import DEFAULT_BATCH_S, LayerFeatures, extract_features
from .upstream import model_fingerprint
from .utterances import ProbeUtterance

CACHE_VERSION = 1  # bump when what extract_features computes changes


def utterances_digest(utterances: Sequence[ProbeUtterance]) -> str:
    """SHA-256 over each utterance's id, length and samples, in order."""
    h = hashlib.sha256()
    for u in utterances:
        h.update(f"{u.id}:{u.num_samples}:".encode())
        h.update(hashlib.sha1(np.ascontiguousarray(u.pcm, dtype=np.int16).tobytes()).digest())
    return h.hexdigest()


def cache_key(fingerprint: str, utterances: Sequence[ProbeUtterance], batch_s: float, max_padding: float) -> str:
    payload = {"version": CACHE_VERSION, "upstream": fingerprint, "utterances": utterances_digest(utterances),
               "batch_s": batch_s, "max_padding": max_padding}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def cached_features(
    model: Wav2Vec2Task,
    utterances: Sequence[ProbeUtterance],
    cache_dir: str | os.PathLike | None,
    *,
    name: str = "split",
    batch_s: float = DEFAULT_BATCH_S,
    max_padding: float = MAX_PADDING,
    fingerprint: str | None = None,
) -> tuple[LayerFeatures, bool]:
    """(features, whether they came from the cache). ``cache_dir`` None: computed, not stored.
    ``name`` (the split) only labels the entry's folder; ``fingerprint`` saves rehashing a model
    that several splits share."""
    if cache_dir is None:
        return extract_features(model, utterances, batch_s=batch_s, max_padding=max_padding), False
    fingerprint = fingerprint or model_fingerprint(model)
    key = cache_key(fingerprint, utterances, batch_s, max_padding)
    entry = Path(cache_dir) / f"{_safe(name)}-{key[:24]}"
    found = _read(entry, utterances)
    if found is not None:
        return found, True
    features = extract_features(model, utterances, batch_s=batch_s, max_padding=max_padding)
    _write(entry, features, {"key": key, "upstream": fingerprint, "split": name}, utterances)
    return _read(entry, utterances) or features, False


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:40] or "split"


def _read(entry: Path, utterances: Sequence[ProbeUtterance]) -> LayerFeatures | None:
    """The entry's features, or None when there is none (or it is not a whole, matching one)."""
    try:
        meta = json.loads((entry / "meta.json").read_text())
        layers = {n: np.load(entry / f"{n}.npy", mmap_mode="r") for n in meta["layers"]}
    except (OSError, ValueError, KeyError):
        return None
    offsets = np.asarray(meta["offsets"], dtype=np.int64)
    if meta.get("version") != CACHE_VERSION or meta["ids"] != [u.id for u in utterances] or any(
            a.shape[0] != offsets[-1] for a in layers.values()):
        return None
    return LayerFeatures(list(meta["ids"]), offsets, layers, int(meta["stride"]), int(meta["receptive_field"]))


def _write(entry: Path, features: LayerFeatures, about: dict, utterances: Sequence[ProbeUtterance]) -> None:
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = entry.with_name(f"{entry.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        for name, matrix in features.layers.items():
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(matrix, dtype=np.float32))
        meta = {"version": CACHE_VERSION, **about, "ids": features.ids, "offsets": features.offsets.tolist(),
                "layers": features.names, "dims": {n: int(m.shape[1]) for n, m in features.layers.items()},
                "stride": features.stride, "receptive_field": features.receptive_field}
        (tmp / "meta.json").write_text(json.dumps(meta))  # last: an entry without it is not read
        try:
            tmp.rename(entry)
        except OSError:  # an entry is there: another run's (keep it), or a damaged one (replace it)
            if _read(entry, utterances) is None:
                shutil.rmtree(entry, ignore_errors=True)
                tmp.rename(entry)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
