"""Signal post-processing shared by the corpora: resample, pad with room noise, back to int16.

Why room noise: espeak emits exact digital zeros between words and at the ends. Real
recordings never do, and an all-zero stretch makes per-utterance normalisation divide by
(almost) zero, so a faint seeded Gaussian floor (about -65 dBFS) is added everywhere.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

INT16_FULL_SCALE = 32768.0


def resample(samples: np.ndarray, from_hz: int, to_hz: int) -> np.ndarray:
    """int16 or float samples -> float32 in [-1, 1) at ``to_hz`` (soxr, high quality)."""
    x = samples.astype(np.float32) / INT16_FULL_SCALE if samples.dtype == np.int16 else samples.astype(np.float32)
    if from_hz == to_hz or len(x) == 0:
        return x
    return soxr.resample(x, from_hz, to_hz, quality="HQ").astype(np.float32)


def limit_peak(x: np.ndarray, peak: float = 0.95) -> np.ndarray:
    """Scale down (never up) so that max |x| <= ``peak``: loud voices must not clip."""
    top = float(np.max(np.abs(x))) if len(x) else 0.0
    return x * np.float32(peak / top) if top > peak else x


def pad_and_noise(x: np.ndarray, lead: int, trail: int, noise_dbfs: float, rng: np.random.Generator) -> np.ndarray:
    """Add ``lead``/``trail`` samples of silence and a Gaussian floor at ``noise_dbfs`` (RMS)."""
    y = np.concatenate([np.zeros(lead, np.float32), x, np.zeros(trail, np.float32)])
    sigma = 10.0 ** (noise_dbfs / 20.0)
    return y + np.float32(sigma) * rng.standard_normal(len(y), dtype=np.float32)


def to_int16(x: np.ndarray) -> np.ndarray:
    """float in [-1, 1) -> int16 with clipping (no wrap-around on overshoot)."""
    return np.clip(np.round(x * INT16_FULL_SCALE), -32768, 32767).astype(np.int16)


def write_audio(path: Path, samples: np.ndarray, sample_rate: int, format: str) -> None:
    """Write int16 mono ``samples`` as ``format`` ("NIST" SPHERE or "WAV"), 16-bit PCM.

    Encoded in memory first: libsndfile's close on a real file calls fsync, which costs
    ~4 ms per file and dominated the write time of 1,440 short clips.
    """
    buf = io.BytesIO()
    sf.write(buf, samples, sample_rate, format=format, subtype="PCM_16")
    Path(path).write_bytes(buf.getvalue())


def rng_for(*keys) -> np.random.Generator:
    """A generator seeded from ``keys`` (ints/strings) independent of process and hash seed."""
    import zlib

    words = [zlib.crc32(str(k).encode()) for k in keys]
    return np.random.default_rng(np.random.SeedSequence(words))
