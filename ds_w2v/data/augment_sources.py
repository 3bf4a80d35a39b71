"""Where augmentation's noise and room impulse responses come from, opened once per process.

Noise sources (``noise``): a **folder** of audio files (searched recursively, any format
libsndfile reads: WAV, FLAC, OGG, ...; another rate is resampled with soxr, channels averaged),
of which only the headers are read up front: each draw opens one file and reads a random segment
of the length needed (a file shorter than the utterance is tiled from a random point). Or a
**prepared shard directory** (holds ``dataset.json``, made by ``ds-w2v prepare``, e.g. from
MUSAN): all of its splits are read into memory once per process as one int16 array, 32 kB per
audio-second (115 MB per hour). The trainer loads it before the ``DataLoader`` workers start,
and they are forked from it, so they share those pages (copy-on-write; a ``spawn`` start method
would load one copy per worker). RIRs (``rir``, a folder) are read into memory as float32 (a
1-s RIR: 64 kB).

An unreadable file in a noise or RIR folder is skipped and logged once, naming it; a folder
without a readable file, a missing folder, speeds <= 0, a reversed SNR range are refused in one
line naming the key and the path (:func:`check_augment`, called before any process group).
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf
import soxr

from ds_w2v.data.audio import AUDIO_EXTENSIONS, RESAMPLE_QUALITY, is_audio_name
from ds_w2v.data.augment_config import AugmentConfig
from ds_w2v.data.shard_format import INDEX_NAME, SAMPLE_RATE
from ds_w2v.errors import reason

log = logging.getLogger(__name__)
_WARNED: set[str] = set()  # files already reported by this process
_INT16_SCALE = np.float32(1.0 / 32768.0)  # int16 -> [-1, 1), as batching.collate scales


def _tile(x: np.ndarray, n: int, start: int) -> np.ndarray:
    """``n`` samples of ``x`` repeated cyclically from ``start`` (< ``len(x)``)."""
    return np.tile(x, -(-(start + n) // len(x)))[start:start + n]  # block copies, not an index gather


# -- sources -------------------------------------------------------------------------------------
def _warn_once(path: str, why: str) -> None:
    if path not in _WARNED:
        _WARNED.add(path)
        log.warning("augmentation: skipping %s (%s)", path, why)


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if is_audio_name(p.name) and p.is_file())


def _read_float(path: Path, start: int = 0, frames: int = -1) -> tuple[np.ndarray, int]:
    """Mono float32 samples of ``path`` (``frames`` from ``start``; -1: to the end) and its rate."""
    with sf.SoundFile(os.fsencode(path)) as f:
        rate = f.samplerate
        if start:
            f.seek(start)
        x = f.read(frames, dtype="float32", always_2d=True)
    return (x[:, 0] if x.shape[1] == 1 else x.mean(axis=1, dtype=np.float32)), rate


def _to_16k(x: np.ndarray, rate: int) -> np.ndarray:
    if rate == SAMPLE_RATE:
        return x
    return soxr.resample(x, rate, SAMPLE_RATE, quality=RESAMPLE_QUALITY)  # as prepare and speed resample


@dataclass(frozen=True)
class _NoiseFile:
    path: Path
    frames: int
    rate: int


class NoiseFolder:
    """Noise read on demand: one random segment of one random file per draw."""

    def __init__(self, files: Sequence[_NoiseFile]):
        self.files = list(files)

    @classmethod
    def scan(cls, folder: Path) -> "NoiseFolder":
        found, skipped = [], 0
        for path in _audio_files(folder):
            try:
                info = sf.info(os.fsencode(path))
                if info.frames <= 0 or info.samplerate <= 0:
                    raise ValueError(f"header gives {info.frames} frames at {info.samplerate} Hz")
            except Exception as e:  # libsndfile's own errors; any failure makes the file unusable
                _warn_once(str(path), f"unreadable noise file: {reason(e)}")
                skipped += 1
                continue
            found.append(_NoiseFile(path, int(info.frames), int(info.samplerate)))
        if not found:
            raise ValueError(f"config key data.augment.noise: {folder}: no readable audio file "
                             f"({skipped} unreadable; extensions {', '.join(AUDIO_EXTENSIONS)})")
        log.info("augmentation: noise from %d file(s) in %s (read on demand)", len(found), folder)
        return cls(found)

    def segment(self, n: int, rng: np.random.Generator) -> np.ndarray | None:
        """``n`` float32 samples at 16 kHz, or None if the drawn file cannot be read now."""
        f = self.files[int(rng.integers(len(self.files)))]
        need = n if f.rate == SAMPLE_RATE else math.ceil(n * f.rate / SAMPLE_RATE) + 1  # file frames
        start = int(rng.integers(max(0, f.frames - need) + 1))
        tile_start = int(rng.integers(1 << 30))  # used only when the file is shorter than n
        try:
            x, rate = _read_float(f.path, start, min(need, f.frames))
        except Exception as e:
            _warn_once(str(f.path), f"noise file became unreadable: {reason(e)}")
            return None
        x = _to_16k(x, rate)
        if len(x) == 0:
            return None
        return x[:n] if len(x) >= n else _tile(x, n, tile_start % len(x))


class NoiseBank:
    """Noise held in memory: the utterances of a prepared shard directory, one int16 array."""

    def __init__(self, audio: np.ndarray, starts: np.ndarray, lengths: np.ndarray):
        self.audio, self.starts, self.lengths = audio, starts, lengths

    @property
    def nbytes(self) -> int:
        return int(self.audio.nbytes)

    @classmethod
    def load(cls, shard_dir: Path) -> "NoiseBank":
        from ds_w2v.data.reader import split_utterances
        from ds_w2v.data.shard_format import read_index

        pieces: list[np.ndarray] = []
        damaged: list[str] = []  # one line per damaged sample or shard, naming the shard: skipped
        for split in sorted(read_index(shard_dir)["splits"]):
            pieces.extend(utt.pcm for utt in split_utterances(shard_dir, split, damaged=damaged))
        if damaged:
            _warn_once(str(shard_dir), f"{len(damaged)} damaged noise sample(s) or shard(s); the first: {damaged[0]}")
        if not pieces:
            raise ValueError(f"config key data.augment.noise: {shard_dir}: no readable utterance in its shards")
        lengths = np.fromiter((len(p) for p in pieces), dtype=np.int64, count=len(pieces))
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        bank = cls(np.concatenate(pieces), starts, lengths)
        log.info("augmentation: noise from %d utterance(s), %.2f h of shards in %s, %.0f MB in memory",
                 len(pieces), lengths.sum() / SAMPLE_RATE / 3600, shard_dir, bank.nbytes / 1e6)
        return bank

    def segment(self, n: int, rng: np.random.Generator) -> np.ndarray:
        i = int(rng.integers(len(self.lengths)))
        start, length = int(self.starts[i]), int(self.lengths[i])
        offset = int(rng.integers(max(0, length - n) + 1))
        tile_start = int(rng.integers(1 << 30))
        x = self.audio[start:start + length]
        pcm = x[offset:offset + n] if length >= n else _tile(x, n, tile_start % length)
        return pcm * _INT16_SCALE


def _existing_dir(path: str, key: str) -> Path:
    folder = Path(path).expanduser()
    if not folder.exists():
        raise FileNotFoundError(f"config key data.augment.{key}: {folder}: no such directory")
    if not folder.is_dir():
        raise ValueError(f"config key data.augment.{key}: {folder}: not a directory")
    return folder


@lru_cache(maxsize=None)
def open_noise(path: str) -> NoiseFolder | NoiseBank:
    """The noise source at ``path``, once per process (DataLoader workers forked after it was
    opened share it)."""
    folder = _existing_dir(path, "noise")
    return NoiseBank.load(folder) if (folder / INDEX_NAME).is_file() else NoiseFolder.scan(folder)


@lru_cache(maxsize=None)
def open_rirs(path: str) -> tuple[np.ndarray, ...]:
    """The impulse responses of a folder at 16 kHz, each cut to start at its peak (direct path)."""
    folder = _existing_dir(path, "rir")
    rirs, skipped = [], 0
    for file in _audio_files(folder):
        try:
            h, rate = _read_float(file)
            h = _to_16k(h, rate).astype(np.float32)
            peak = int(np.argmax(np.abs(h))) if len(h) else 0
            if len(h) == 0 or h[peak] == 0.0 or not np.isfinite(h).all():
                raise ValueError("silent or not finite")
        except Exception as e:
            _warn_once(str(file), f"unusable impulse response: {reason(e)}")
            skipped += 1
            continue
        rirs.append(np.ascontiguousarray(h[peak:]))
    if not rirs:
        raise ValueError(f"config key data.augment.rir: {folder}: no readable impulse response "
                         f"({skipped} unusable; extensions {', '.join(AUDIO_EXTENSIONS)})")
    log.info("augmentation: %d impulse response(s) from %s", len(rirs), folder)
    return tuple(rirs)


def check_augment(config: AugmentConfig) -> None:
    """Open the configured sources now (refusing a bad folder in one line), before any process
    group or DataLoader worker starts; the workers then find them opened."""
    if config.noise is not None:
        open_noise(config.noise)
    if config.rir is not None:
        open_rirs(config.rir)
