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

The noise and RIR sources: :mod:`ds_w2v.data.augment_sources`; the settings:
:mod:`ds_w2v.data.augment_config`.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import soxr

from ds_w2v.data.audio import RESAMPLE_QUALITY
from ds_w2v.data.augment_config import AugmentConfig
from ds_w2v.data.augment_sources import open_noise, open_rirs
from ds_w2v.data.batching import Utterance
from ds_w2v.data.shard_format import SAMPLE_RATE

SPEED_QUALITY = RESAMPLE_QUALITY  # soxr, as prepare resamples; its cost per worker: BENCHMARKS.md
_SILENT_POWER = (1.0 / 32768.0) ** 2  # mean power below one int16 step (rms): digital silence
MIX_STREAM, SPEED_STREAM = 2, 3
"""Generator stream ids of the stream's seed keys ``(seed, epoch, rank, slot, id, ...)``: 0 is
the shuffle buffer, 1 the pretraining crops (``stream.py``)."""


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
