"""Training-time augmentation in the stream's workers: speed perturbation, room impulse responses
(RIR) and additive noise, seeded and resumable, all off by default (``data.augment.*``).

Where each runs in the per-rank pipeline (``stream.py``), and why there:

* **speed** (Ko et al. 2015, *Audio augmentation for speech recognition*; Kaldi's and ESPnet's
  0.9/1.0/1.1): each decoded utterance draws one factor ``f`` of ``speeds`` and is resampled as if
  it had been recorded at ``16 kHz x f`` (``soxr.resample(pcm, 16000 * f, 16000)``): ``f > 1`` is
  shorter and higher, ``f < 1`` longer and lower (tempo and pitch change together, like sox's
  ``speed`` effect). It changes the length, so the factor is drawn right after decoding, *before*
  the duration filters, the shuffle buffer and the batcher, and the utterance carries its new
  length (soxr's exact output length, :func:`speed_samples`): the batch budget counts the audio
  the model really gets. The resampling itself waits for collation (:func:`apply_speed`), so it
  is done for emitted batches only. The draw is the next value of one generator per (epoch,
  rank, slot), taken for every decoded utterance in decode order; a resume replays the decode
  from the epoch's start (the fast-forward of ``stream.py``), so it draws the same factors again
  without resampling the utterances of the batches it skips.
* **RIR, then noise**: they keep the length, so they run on the float rows of a batch after its
  collation, for emitted batches only (a resume's skipped batches are never collated, so never
  augmented), with a generator keyed by the batch's index in the epoch: ``(seed, epoch, rank,
  slot, 2, batch)``. Reverberation first, then noise: the noise of a room is not reverberated by
  the speaker's impulse response (Kaldi ``reverberate_data_dir.py`` adds its point-source noises
  after the RIR too).

A row's RIR is convolved by FFT (overlap-add), aligned to the direct path (the RIR's peak: no
delay added) and cut to the input's length, then scaled back to the input's mean power rather
than its peak: the SNR that follows is defined on power, so it stays relative to the speech
level the utterance had, and the loudness the model sees does not depend on how much a room
smears the peak. Noise is scaled so that ``10 log10(P_speech /
P_noise)`` equals the drawn SNR in dB, powers being means over the row's real samples (no VAD:
the "global SNR" of Kaldi, ESPnet and ``torchaudio.functional.add_noise``). A row that was
augmented is clipped to full scale [-1, 1], as a 16-bit recording of it would be.

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
from typing import Any, Sequence

import numpy as np
import soundfile as sf
import soxr

from ds_w2v.data.audio import AUDIO_EXTENSIONS, RESAMPLE_QUALITY, is_audio_name
from ds_w2v.data.batching import Utterance
from ds_w2v.data.shard_format import INDEX_NAME, SAMPLE_RATE
from ds_w2v.errors import reason

log = logging.getLogger(__name__)
_WARNED: set[str] = set()  # files already reported by this process

SPEED_QUALITY = RESAMPLE_QUALITY  # soxr, as prepare resamples; its cost per worker: BENCHMARKS.md
_INT16_SCALE = np.float32(1.0 / 32768.0)  # int16 -> [-1, 1), as batching.collate scales
_SILENT_POWER = (1.0 / 32768.0) ** 2  # mean power below one int16 step (rms): digital silence
MIX_STREAM, SPEED_STREAM = 2, 3
"""Generator stream ids of the stream's seed keys ``(seed, epoch, rank, slot, id, ...)``: 0 is
the shuffle buffer, 1 the pretraining crops (``stream.py``)."""


@dataclass
class AugmentConfig:
    """Training-stream augmentation (``data.augment.*``); everything off by default."""

    speeds: tuple[float, ...] = ()
    """Speed factors, one drawn uniformly per utterance: ``[0.9, 1.0, 1.1]`` as Kaldi/ESPnet
    (Ko et al. 2015). ``()`` (or only 1.0): off. Each factor ``f`` resamples the utterance to
    ``len / f`` samples (0.9: 11 % longer; 1.1: 9 % shorter)."""
    noise: str | None = None
    """A folder of noise audio (recursive), or a prepared shard directory (``dataset.json``,
    loaded into memory: 115 MB per hour). None: no additive noise."""
    noise_prob: float = 1.0
    """Probability that an utterance gets noise (when ``noise`` is set)."""
    snr_db: tuple[float, float] = (5.0, 20.0)
    """Signal-to-noise ratio range in dB, drawn uniformly per noisy utterance."""
    rir: str | None = None
    """A folder of room impulse responses (recursive, any rate; e.g. the simulated RIRs of Ko et
    al. 2017). None: no reverberation."""
    rir_prob: float = 0.5
    """Probability that an utterance is reverberated (when ``rir`` is set)."""

    def __post_init__(self) -> None:
        self.speeds = tuple(float(s) for s in self.speeds)
        self.snr_db = (float(self.snr_db[0]), float(self.snr_db[1]))
        bad = [s for s in self.speeds if not (math.isfinite(s) and s > 0)]
        if bad:
            raise ValueError(f"config key data.augment.speeds: every factor must be > 0, got {list(self.speeds)}")
        low, high = self.snr_db
        if not (math.isfinite(low) and math.isfinite(high)) or low > high:
            raise ValueError(f"config key data.augment.snr_db: expected [low, high] dB with low <= high, "
                             f"got {list(self.snr_db)}")
        for key in ("noise_prob", "rir_prob"):
            p = getattr(self, key)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"config key data.augment.{key}: a probability in [0, 1], got {p}")

    @property
    def perturbs_speed(self) -> bool:
        return any(s != 1.0 for s in self.speeds)

    @property
    def mixes(self) -> bool:
        """Anything applied to collated rows (noise, RIR)."""
        return self.noise is not None or self.rir is not None

    @property
    def active(self) -> bool:
        return self.perturbs_speed or self.mixes


# -- speed ---------------------------------------------------------------------------------------
def speed_samples(num_samples: int, factor: float) -> int:
    """Samples ``num_samples`` become at ``factor`` x speed under :func:`change_speed`: soxr's
    output length, ``num_samples / factor`` rounded half up (checked against soxr in the tests)."""
    return math.floor(num_samples * SAMPLE_RATE / (SAMPLE_RATE * factor) + 0.5)


def apply_speed(utt: Utterance) -> Utterance:
    """``utt`` with its pending speed change (:meth:`Augmenter.draw_speed`) made."""
    if utt.speed == 1.0:
        return utt
    out = change_speed(utt, utt.speed)
    if len(out.pcm) != utt.speed_samples:  # the batcher budgeted the drawn length: it must be exact
        raise RuntimeError(f"{utt.key}: speed {utt.speed:g} gave {len(out.pcm)} samples, "
                           f"{utt.speed_samples} were budgeted")
    return out


def change_speed(utt: Utterance, factor: float) -> Utterance:
    """``utt`` played ``factor`` times faster: ``round(len / factor)`` samples, pitch shifted too.
    The record's ``num_samples``, ``duration_s`` and ``phone_spans`` (sample offsets) follow."""
    if factor == 1.0:
        return utt
    pcm = soxr.resample(utt.pcm, SAMPLE_RATE * factor, SAMPLE_RATE, quality=SPEED_QUALITY)  # int16 in, int16 out
    n = len(pcm)
    record = {**utt.record, "num_samples": n, "duration_s": n / SAMPLE_RATE}
    spans = record.get("phone_spans")
    if spans:  # TIMIT timings stay on the same phones
        record["phone_spans"] = [[min(round(s / factor), n), min(round(e / factor), n)] for s, e in spans]
    return Utterance(utt.key, pcm, record, utt.url)


# -- reverberation and noise on float rows -------------------------------------------------------
def reverberate(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """``x`` convolved with ``rir`` (which starts at its direct path), its first ``len(x)``
    samples, scaled back to ``x``'s mean power. float32 in and out.

    Linear convolution by overlap-add with FFTs of the power of two >= 4 x ``len(rir)`` (at least
    8,192: fewer Python-level blocks for short RIRs): measured here on 0.2-0.8 s RIRs under 1-16 s
    utterances, 2-3x faster than one FFT over the whole utterance (whose sizes no longer fit the
    CPU caches)."""
    n = len(x)
    block = max(8192, 1 << (4 * len(rir) - 1).bit_length())
    step = block - len(rir) + 1  # input samples per block: their output, step + len(rir) - 1, fits it
    spectrum = np.fft.rfft(rir, block)
    y = np.zeros(n + block, dtype=np.float32)
    for start in range(0, n, step):
        y[start:start + block] += np.fft.irfft(np.fft.rfft(x[start:start + step], block) * spectrum, block)
    y = y[:n]
    p_in, p_out = float(np.dot(x, x)) / n, float(np.dot(y, y)) / n
    if p_out > 0.0:
        y *= np.float32(math.sqrt(p_in / p_out))
    return y


def add_noise(x: np.ndarray, noise: np.ndarray, snr_db: float) -> bool:
    """Add ``noise`` to ``x`` in place at ``snr_db`` (mean powers over the row); False (and ``x``
    unchanged) when either is digitally silent, where no scale can give that SNR."""
    p_speech = float(np.dot(x, x)) / len(x)
    p_noise = float(np.dot(noise, noise)) / len(noise)
    if p_speech < _SILENT_POWER or p_noise < _SILENT_POWER:
        return False
    scale = math.sqrt(p_speech / (p_noise * 10.0 ** (snr_db / 10.0)))
    x += np.float32(scale) * noise
    return True


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
    return soxr.resample(x, rate, SAMPLE_RATE, quality=SPEED_QUALITY)


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


# -- the worker-side object ----------------------------------------------------------------------
class Augmenter:
    """What a stream's worker applies: ``speed`` to decoded utterances, ``mix_rows`` to the float
    rows of a collated batch. Randomness comes only from the generators passed in."""

    def __init__(self, config: AugmentConfig):
        self.config = config
        self.noise = open_noise(config.noise) if config.noise is not None else None
        self.rirs = open_rirs(config.rir) if config.rir is not None else ()

    def draw_speed(self, utt: Utterance, rng: np.random.Generator) -> Utterance:
        """``utt`` with a speed factor drawn and pending (:attr:`Utterance.speed`): only its new
        length is computed; :func:`apply_speed` resamples it when its batch is collated."""
        speeds = self.config.speeds
        factor = speeds[int(rng.integers(len(speeds)))]
        if factor == 1.0:
            return utt
        return Utterance(utt.key, utt.pcm, utt.record, utt.url, factor, speed_samples(len(utt.pcm), factor))

    def mix_rows(self, audio: np.ndarray, lengths: Sequence[int], rng: np.random.Generator) -> None:
        """Reverberate, then add noise to, each row's ``lengths[row]`` real samples, in place
        (padding stays zero)."""
        cfg = self.config
        for row, n in enumerate(lengths):
            x = audio[row, :n]
            changed = False
            if self.rirs and rng.random() < cfg.rir_prob:
                x[:] = reverberate(x, self.rirs[int(rng.integers(len(self.rirs)))])
                changed = True
            if self.noise is not None and rng.random() < cfg.noise_prob:
                snr = float(rng.uniform(*cfg.snr_db))
                noise = self.noise.segment(n, rng)
                changed = (noise is not None and add_noise(x, noise, snr)) or changed
            if changed:
                np.clip(x, -1.0, 1.0, out=x)


def describe(config: AugmentConfig) -> dict[str, Any]:
    """The settings that are on, for a log line."""
    out: dict[str, Any] = {}
    if config.perturbs_speed:
        out["speeds"] = list(config.speeds)
    if config.rir is not None:
        out.update(rir=config.rir, rir_prob=config.rir_prob)
    if config.noise is not None:
        out.update(noise=config.noise, noise_prob=config.noise_prob, snr_db=list(config.snr_db))
    return out
