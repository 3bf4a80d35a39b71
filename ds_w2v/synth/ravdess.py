"""Synthetic emotional speech in the real RAVDESS (speech, audio-only) on-disk layout.

Layout written (the project's RAVDESS reader reads it unchanged)::

    DIR/Actor_01..Actor_24/03-01-EE-II-SS-RR-AA.wav     48 kHz, 16-bit PCM, mono

    03 audio-only, 01 speech, EE emotion (01 neutral .. 08 surprised), II intensity
    (01 normal, 02 strong; neutral has no strong), SS statement (01 "Kids are talking by the
    door", 02 "Dogs are sitting by the door"), RR repetition (01/02), AA actor (odd = male).

24 actors x (1 neutral x 2 statements x 2 repetitions + 7 emotions x 2 intensities x 2 x 2)
= 24 x 60 = 1,440 clips, as RAVDESS.

How emotion is encoded: only through prosody, as an actor would, since the words are fixed.
Each emotion is an :class:`EmotionStyle` of offsets from the actor's neutral voice (pitch
level and range, speaking rate, loudness, pauses, emphasis, sentence-final intonation via
punctuation) plus a few signal-level effects (tremolo for fear, soft saturation for anger, a
darker spectrum for sadness). Strong intensity scales the offsets by :data:`STRONG_SCALE`.
Every actor scales every emotion by its own random factors, so emotions overlap between
actors (a calm actor's "happy" can be close to an animated actor's "neutral") and the
classification task is not a lookup of one parameter. The two repetitions differ by a small
jitter (pitch, rate, loudness, leading silence, noise).
"""
from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ds_w2v.synth import audio
from ds_w2v.synth.espeak import get_espeak
from ds_w2v.synth.jobs import BuildReport, run_jobs
from ds_w2v.synth.voices import english_accents, variants

SAMPLE_RATE = 48_000  # RAVDESS: 48 kHz, 16-bit
NUM_ACTORS = 24
STATEMENTS = {1: "Kids are talking by the door", 2: "Dogs are sitting by the door"}
EMOTIONS = {1: "neutral", 2: "calm", 3: "happy", 4: "sad", 5: "angry", 6: "fearful", 7: "disgust", 8: "surprised"}
INTENSITIES = {1: "normal", 2: "strong"}
STRONG_SCALE = 1.7  # strong intensity = 1.7 x the normal offsets
CLIPS_PER_ACTOR = 60


@dataclass(frozen=True)
class EmotionStyle:
    """Offsets from an actor's neutral delivery (espeak units, see :mod:`ds_w2v.synth.espeak`)."""

    pitch: float = 0.0
    """Added to the base pitch (0..100 scale; +10 is roughly +2 semitones)."""
    range_mult: float = 1.0
    """Multiplies the pitch range: >1 animated, <1 flat."""
    rate_mult: float = 1.0
    """Multiplies words/min: <1 slower, longer clip."""
    volume_mult: float = 1.0
    """Multiplies amplitude."""
    word_gap: int = 0
    """Extra pause between words, 10 ms units."""
    ending: str = "."
    """Final punctuation: "?" rises, "!" is exclamatory, "." falls."""
    emphasis: bool = False
    """SSML <emphasis> on the last word ("door")."""
    break_ms: int = 0
    """SSML pause after the first word (a hesitant or disgusted "Kids... are")."""
    tremolo: float = 0.0
    """Amplitude-modulation depth (0..1) at ~6-8 Hz: a shaking voice."""
    drive: float = 0.0
    """Soft-saturation amount (tanh drive; 0 = clean): a strained, harsh voice."""
    darken: float = 0.0
    """Low-pass mix (0..1): a muffled, low-energy voice."""


STYLES: dict[int, EmotionStyle] = {
    1: EmotionStyle(),
    2: EmotionStyle(pitch=-4, range_mult=0.7, rate_mult=0.88, volume_mult=0.8, word_gap=1, darken=0.3),
    3: EmotionStyle(pitch=10, range_mult=1.5, rate_mult=1.08, volume_mult=1.15, ending="!"),
    4: EmotionStyle(pitch=-9, range_mult=0.45, rate_mult=0.75, volume_mult=0.65, word_gap=3, darken=0.6),
    5: EmotionStyle(pitch=5, range_mult=1.3, rate_mult=1.12, volume_mult=1.6, ending="!", emphasis=True, drive=1.5),
    6: EmotionStyle(pitch=15, range_mult=0.8, rate_mult=1.2, volume_mult=0.9, break_ms=120, tremolo=0.35),
    7: EmotionStyle(pitch=-6, range_mult=1.1, rate_mult=0.8, volume_mult=1.0, emphasis=True, break_ms=250),
    8: EmotionStyle(pitch=13, range_mult=1.9, rate_mult=1.0, volume_mult=1.2, ending="?"),
}


def file_name(emotion: int, intensity: int, statement: int, repetition: int, actor: int) -> str:
    """RAVDESS file name, e.g. ``03-01-05-02-01-02-07.wav``."""
    return f"03-01-{emotion:02d}-{intensity:02d}-{statement:02d}-{repetition:02d}-{actor:02d}.wav"


def parse_name(name: str) -> dict[str, int]:
    """Inverse of :func:`file_name` (fields as ints)."""
    fields = Path(name).stem.split("-")
    if len(fields) != 7:
        raise ValueError(f"not a RAVDESS file name: {name!r}")
    keys = ("modality", "channel", "emotion", "intensity", "statement", "repetition", "actor")
    return dict(zip(keys, map(int, fields)))


def clip_keys(actor: int) -> list[tuple[int, int, int, int]]:
    """(emotion, intensity, statement, repetition) of an actor's 60 clips, RAVDESS order."""
    return [(e, i, s, r) for e in EMOTIONS for i in INTENSITIES if not (e == 1 and i == 2)
            for s in STATEMENTS for r in (1, 2)]


@dataclass(frozen=True)
class Actor:
    """An actor's neutral voice and personal expressiveness per emotion."""

    number: int
    voice: str  # espeak "accent+variant"
    rate: int  # words/min
    pitch: int  # 0..100
    pitch_range: int  # 0..100
    volume: int  # percent
    noise_dbfs: float
    expressiveness: tuple[float, ...]  # indexed by emotion code 1..8 (0 unused): scales its offsets


def plan_actors(seed: int, actors: list[int] | None = None) -> list[Actor]:
    """The 24 actors (odd male, even female), distinct voices; ``actors`` selects a subset."""
    rng = random.Random(f"ravdess-actors-{seed}")
    espeak = get_espeak()
    accents = english_accents(espeak)
    # RAVDESS actors are North American: most get en-US, the rest other accents
    us = [a for a in accents if a.lower() in ("en-us", "en-us-nyc")] or accents
    pools = {s: variants(espeak, s) for s in "MF"}
    for pool in pools.values():
        rng.shuffle(pool)
    out = []
    for n in range(1, NUM_ACTORS + 1):
        sex = "M" if n % 2 else "F"
        pool = pools[sex]
        variant = pool[(n // 2) % len(pool)]  # distinct while the pool lasts (>= 12 each)
        accent = rng.choice(us) if rng.random() < 0.7 else rng.choice(accents)
        out.append(Actor(
            number=n, voice=f"{accent}+{variant}",
            rate=int(rng.gauss(170, 15)), pitch=int(rng.gauss(55 if sex == "F" else 45, 8)),
            pitch_range=int(rng.gauss(50, 8)), volume=int(rng.uniform(85, 115)),
            noise_dbfs=rng.uniform(-72, -58),
            expressiveness=tuple(rng.uniform(0.5, 1.5) for _ in range(9)),
        ))
    return [a for a in out if actors is None or a.number in actors]


def _clamp(x: float, lo: int, hi: int) -> int:
    return int(min(max(round(x), lo), hi))


def _style_for(actor: Actor, emotion: int, intensity: int) -> EmotionStyle:
    """The emotion's offsets scaled by intensity and by the actor's expressiveness."""
    s = STYLES[emotion]
    k = actor.expressiveness[emotion] * (STRONG_SCALE if intensity == 2 else 1.0)
    return replace(
        s, pitch=s.pitch * k, range_mult=s.range_mult ** k, rate_mult=s.rate_mult ** k,
        volume_mult=s.volume_mult ** k, word_gap=round(s.word_gap * k), break_ms=round(s.break_ms * k),
        tremolo=min(0.8, s.tremolo * k), drive=s.drive * k, darken=min(1.0, s.darken * k),
    )


def ssml(statement: str, style: EmotionStyle) -> str:
    """The statement as SSML carrying the style's pauses, emphasis and final punctuation."""
    first, rest = statement.split(" ", 1)
    head, last = rest.rsplit(" ", 1)
    pause = f' <break time="{style.break_ms}ms"/>' if style.break_ms else ""
    last = f"<emphasis>{last}</emphasis>" if style.emphasis else last
    return f"<speak>{first}{pause} {head} {last}{style.ending}</speak>"


def _effects(x: np.ndarray, style: EmotionStyle, rng: np.random.Generator) -> np.ndarray:
    """Signal-level effects at SAMPLE_RATE on float audio in [-1, 1)."""
    if style.darken > 0:  # low-pass: 9-tap moving average mixed in (~-3 dB near 2.4 kHz)
        smooth = np.convolve(x, np.full(9, 1 / 9, np.float32), mode="same")
        x = (1 - style.darken) * x + style.darken * smooth
    if style.tremolo > 0:  # shaking voice: 6-8 Hz amplitude modulation
        t = np.arange(len(x)) / SAMPLE_RATE
        f = rng.uniform(6.0, 8.0)
        x = x * (1 - style.tremolo / 2 + style.tremolo / 2 * np.sin(2 * math.pi * f * t + rng.uniform(0, 2 * math.pi)))
    if style.drive > 0:  # strained voice: soft saturation, peak level kept
        peak = float(np.max(np.abs(x))) or 1.0
        g = 1 + style.drive
        x = np.tanh(g * x / peak) / math.tanh(g) * peak
    return x.astype(np.float32)


def synth_clip(actor: Actor, emotion: int, intensity: int, statement: int, repetition: int,
               out_dir: Path, seed: int) -> float:
    """Synthesise and write one clip; returns its seconds."""
    espeak = get_espeak()
    rng = audio.rng_for(seed, actor.number, emotion, intensity, statement, repetition)
    style = _style_for(actor, emotion, intensity)
    # repetition jitter: a second take is never identical (pitch, rate and level wander)
    jitter_pitch, jitter_rate, jitter_vol = rng.normal(0, 1.5), rng.normal(1, 0.03), rng.normal(1, 0.04)
    espeak.set_voice(actor.voice)
    espeak.set_params(
        rate=_clamp(actor.rate * style.rate_mult * jitter_rate, 80, 450),
        pitch=_clamp(actor.pitch + style.pitch + jitter_pitch, 0, 100),
        pitch_range=_clamp(actor.pitch_range * style.range_mult, 0, 100),
        volume=_clamp(actor.volume * style.volume_mult * jitter_vol, 10, 200),
        word_gap=style.word_gap,
    )
    u = espeak.synth(ssml(STATEMENTS[statement], style), ssml=True, seed=int(rng.integers(2**31)))
    x = audio.limit_peak(_effects(audio.resample(u.samples, u.sample_rate, SAMPLE_RATE), style, rng))
    lead = int(rng.uniform(0.3, 0.8) * SAMPLE_RATE)  # RAVDESS clips start with ~0.5-1 s of room
    trail = int(rng.uniform(0.3, 0.7) * SAMPLE_RATE)
    y = audio.to_int16(audio.pad_and_noise(x, lead, trail, actor.noise_dbfs, rng))
    d = out_dir / f"Actor_{actor.number:02d}"
    d.mkdir(parents=True, exist_ok=True)
    audio.write_audio(d / file_name(emotion, intensity, statement, repetition, actor.number), y, SAMPLE_RATE, "WAV")
    return len(y) / SAMPLE_RATE


def _work(job: tuple[Actor, list[tuple[int, int, int, int]], str, int]) -> tuple[int, float]:
    actor, keys, out_dir, seed = job
    return len(keys), sum(synth_clip(actor, *k, Path(out_dir), seed) for k in keys)


@dataclass
class RavdessConfig:
    """Which actors/emotions to write and how (the full corpus by default)."""

    out_dir: Path
    seed: int = 0
    workers: int = 1
    actors: list[int] | None = None
    """Actor numbers 1..24 to write (None: all 24)."""
    emotions: list[int] | None = None
    """Emotion codes 1..8 to write (None: all 8); a subset is for fast tests."""

    def __post_init__(self):
        self.out_dir = Path(self.out_dir)
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        bad = [a for a in self.actors or [] if not 1 <= a <= NUM_ACTORS]
        if bad:
            raise ValueError(f"actors must be in 1..{NUM_ACTORS}, got {bad}")
        bad = [e for e in self.emotions or [] if e not in EMOTIONS]
        if bad:
            raise ValueError(f"emotions must be in 1..8, got {bad}")


def build_ravdess(cfg: RavdessConfig) -> BuildReport:
    """Write the corpus (or the selected subset) under ``cfg.out_dir``; deterministic in the seed."""
    t0 = time.perf_counter()
    jobs = []
    for actor in plan_actors(cfg.seed, cfg.actors):
        keys = [k for k in clip_keys(actor.number) if cfg.emotions is None or k[0] in cfg.emotions]
        jobs.append((actor, keys, os.fspath(cfg.out_dir), cfg.seed))
    num_files, audio_s = run_jobs(_work, jobs, cfg.workers)
    return BuildReport(num_files, audio_s, time.perf_counter() - t0)
