"""Synthetic read speech in the real TIMIT (LDC93S1) on-disk layout.

Layout written (as TIMIT; the project's TIMIT reader reads it unchanged)::

    DIR/TRAIN|TEST/DR1..DR8/<sex><3 letters><digit>/SA1.WAV SA1.TXT SA1.WRD SA1.PHN ...
    DIR/DOC/SPKRINFO.TXT                 (speaker id, sex, region, split, voice)

* ``.WAV``: NIST SPHERE, 16 kHz, 16-bit mono PCM.
* ``.TXT``: ``0 <num_samples> <text>`` on one line.
* ``.WRD`` / ``.PHN``: ``<start> <end> <label>`` lines in samples; phones from the TIMIT
  61-set with ``h#`` first and last, timed by espeak's phoneme events.

Sentence design follows TIMIT: SA1/SA2 are the same two sentences for every speaker; each SX
sentence is read by up to :data:`SX_READERS` speakers of one split; SI sentences are read once.
The TEST split holds the 24 core-test speakers under their real ids and dialect regions (plus
more test speakers at larger sizes), and no test speaker or test sentence (SA aside) occurs in
TRAIN.
"""
from __future__ import annotations

import math
import os
import random
import string
import time
from dataclasses import dataclass, field
from pathlib import Path

from ds_w2v.synth import audio
from ds_w2v.synth.espeak import get_espeak
from ds_w2v.synth.grammar import SA_SENTENCES, distinct_sentences, words_of
from ds_w2v.synth.jobs import BuildReport, run_jobs
from ds_w2v.synth.phones import Segment, phone_segments, word_segments
from ds_w2v.synth.voices import Voice, draw_prosody, english_accents, variants

SAMPLE_RATE = 16_000  # TIMIT: 16 kHz, 16-bit

# TIMIT core test set: 2 male + 1 female per dialect region (TIMIT docs, "core test set").
CORE_TEST_SPEAKERS: dict[str, tuple[str, ...]] = {
    "DR1": ("MDAB0", "MWBT0", "FELC0"), "DR2": ("MTAS1", "MWEW0", "FPAS0"),
    "DR3": ("MJMP0", "MLNT0", "FPKT0"), "DR4": ("MLLL0", "MTLS0", "FJLM0"),
    "DR5": ("MBPM0", "MKLT0", "FNLP0"), "DR6": ("MCMJ0", "MJDH0", "FMGD0"),
    "DR7": ("MGRT0", "MNJM0", "FDHC0"), "DR8": ("MJLN0", "MPAM0", "FMLD0"),
}
NUM_CORE_TEST = 24
# TIMIT training speakers per dialect region (462 in all) and its share of test speakers
# (168 of 630): the proportions the synthetic corpus copies.
TRAIN_SPEAKERS_PER_REGION = {"DR1": 38, "DR2": 76, "DR3": 76, "DR4": 68, "DR5": 70, "DR6": 35, "DR7": 77, "DR8": 22}
TEST_FRACTION = 168 / 630
MALE_FRACTION = 438 / 630  # TIMIT: 438 male, 192 female speakers
SX_READERS = 7  # each TIMIT SX sentence is read by 7 speakers
# One accent per region, used by most (not all) of its speakers, so that the region is a
# learnable but noisy speaker attribute, like real dialect regions.
REGION_ACCENT_P = 0.6
REGION_ACCENTS = {"DR1": "en-GB-x-rp", "DR2": "en-US", "DR3": "en-GB-x-gbclan", "DR4": "en-GB-x-gbcwmd",
                  "DR5": "en-029", "DR6": "en-US-nyc", "DR7": "en-GB-scotland", "DR8": "en"}
# Mean seconds per utterance with padding at the default prosody (measured: ~3.1 s of speech
# for 7-8 words at ~165 words/min, +0.4 s padding; 2,060 files gave 3.34 s each); turns --hours into a speaker count.
MEAN_UTTERANCE_S = 3.35
# Lead/trail silence in ms: TIMIT files start and end with ~0.1-0.3 s of h#.
PAD_MS = (100, 300)


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker: TIMIT id (``MABC0``), split, region and voice."""

    id: str
    sex: str  # "M" | "F"
    split: str  # "TRAIN" | "TEST"
    region: str  # "DR1".."DR8"
    voice: Voice
    noise_dbfs: float


@dataclass(frozen=True)
class Utt:
    """One utterance to synthesise: ``name`` is the TIMIT file stem (``SA1``, ``SX37``, ``SI1204``)."""

    speaker: Speaker
    name: str
    text: str


@dataclass
class TimitConfig:
    """Size and seed of a synthetic TIMIT corpus."""

    out_dir: Path
    num_speakers: int = 220
    """Speakers in TRAIN + TEST; at least 25 (the 24 core-test speakers and one train speaker)."""
    sentences_per_speaker: int = 10
    """Per speaker, SA1/SA2 included (TIMIT: 10 = 2 SA + 5 SX + 3 SI); at least 3."""
    seed: int = 0
    workers: int = 1
    accents: list[str] = field(default_factory=list)
    """espeak accent voices to draw from; empty = every English accent the data ships."""

    def __post_init__(self):
        self.out_dir = Path(self.out_dir)
        if self.num_speakers < NUM_CORE_TEST + 1:
            raise ValueError(f"num_speakers must be >= {NUM_CORE_TEST + 1} (24 core-test speakers + 1 train), got {self.num_speakers}")
        if self.sentences_per_speaker < 3:
            raise ValueError(f"sentences_per_speaker must be >= 3 (SA1, SA2 and one more), got {self.sentences_per_speaker}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")

    @property
    def num_test_speakers(self) -> int:
        return min(max(NUM_CORE_TEST, round(self.num_speakers * TEST_FRACTION)), self.num_speakers - 1)

    @property
    def num_sx(self) -> int:
        """SX sentences per speaker (TIMIT's 5 of 8 non-SA sentences)."""
        return round((self.sentences_per_speaker - 2) * 5 / 8)

    @property
    def num_si(self) -> int:
        return self.sentences_per_speaker - 2 - self.num_sx


def speakers_for_hours(hours: float, sentences_per_speaker: int = 10) -> int:
    """Speaker count giving about ``hours`` of audio (at least the 25-speaker minimum)."""
    return max(NUM_CORE_TEST + 1, math.ceil(hours * 3600 / (MEAN_UTTERANCE_S * sentences_per_speaker)))


# -- planning (pure, deterministic) ------------------------------------------------------------
def _new_id(rng: random.Random, sex: str, taken: set[str]) -> str:
    while True:
        letters = "".join(rng.choice(string.ascii_uppercase) for _ in range(3))
        for digit in "0123456789":  # TIMIT appends 1 when initials repeat (MTAS1)
            sid = f"{sex}{letters}{digit}"
            if sid not in taken:
                taken.add(sid)
                return sid


def plan_speakers(cfg: TimitConfig) -> list[Speaker]:
    """All speakers, test first: the 24 core-test ids, then extra test and train speakers."""
    rng = random.Random(f"timit-speakers-{cfg.seed}")
    espeak = get_espeak()
    accents = cfg.accents or english_accents(espeak)
    voice_variants = {s: variants(espeak, s) for s in "MF"}
    regions = list(TRAIN_SPEAKERS_PER_REGION)
    weights = list(TRAIN_SPEAKERS_PER_REGION.values())
    taken = {sid for ids in CORE_TEST_SPEAKERS.values() for sid in ids}

    def make(sid: str, sex: str, split: str, region: str) -> Speaker:
        preferred = REGION_ACCENTS.get(region)
        accent = preferred if preferred in accents and rng.random() < REGION_ACCENT_P else rng.choice(accents)
        voice = Voice(accent, rng.choice(voice_variants[sex]), **draw_prosody(rng, sex))
        return Speaker(sid, sex, split, region, voice, noise_dbfs=rng.uniform(-72, -60))

    out = [make(sid, sid[0], "TEST", region) for region, ids in CORE_TEST_SPEAKERS.items() for sid in ids]
    for split, count in (("TEST", cfg.num_test_speakers - NUM_CORE_TEST),
                         ("TRAIN", cfg.num_speakers - cfg.num_test_speakers)):
        for _ in range(count):
            sex = "M" if rng.random() < MALE_FRACTION else "F"
            region = rng.choices(regions, weights)[0]
            out.append(make(_new_id(rng, sex, taken), sex, split, region))
    return out


def plan_utterances(cfg: TimitConfig, speakers: list[Speaker]) -> list[Utt]:
    """Sentence assignment: SA for all, SX shared by up to 7 readers of a split, SI unique.

    Sentence numbers follow TIMIT's scheme (SA 1-2, then SX, then SI numbers); one number is
    always one text, so ``SX37`` is the same sentence for every speaker who reads it.
    """
    by_split = {s: [sp for sp in speakers if sp.split == s] for s in ("TRAIN", "TEST")}
    num_sx_texts = {s: max(cfg.num_sx, math.ceil(len(v) * cfg.num_sx / SX_READERS)) for s, v in by_split.items()}
    num_si_texts = len(speakers) * cfg.num_si
    texts = iter(distinct_sentences(num_sx_texts["TEST"] + num_sx_texts["TRAIN"] + num_si_texts, cfg.seed))
    rng = random.Random(f"timit-sentences-{cfg.seed}")
    utts: list[Utt] = []
    number = 3  # SX numbering starts after SA1/SA2, as in TIMIT
    sx_pool: dict[str, list[tuple[int, str]]] = {}
    for split in ("TEST", "TRAIN"):
        n = num_sx_texts[split]
        sx_pool[split] = [(number + k, next(texts)) for k in range(n)]
        number += n
    si_number = number
    for split in ("TEST", "TRAIN"):
        pool = sx_pool[split]
        rng.shuffle(pool)
        # speaker i reads pool texts i*num_sx .. i*num_sx + num_sx - 1 (cyclically): distinct
        # for each speaker, and each text read by at most ceil(speakers*num_sx/len(pool)) <= 7
        for i, sp in enumerate(by_split[split]):
            for k, sa in enumerate(SA_SENTENCES, start=1):
                utts.append(Utt(sp, f"SA{k}", sa))
            for j in range(cfg.num_sx):
                num, text = pool[(i * cfg.num_sx + j) % len(pool)]
                utts.append(Utt(sp, f"SX{num}", text))
            for _ in range(cfg.num_si):
                utts.append(Utt(sp, f"SI{si_number}", next(texts)))
                si_number += 1
    return utts


# -- synthesis (per worker process) -----------------------------------------------------------
def synth_utterance(utt: Utt, out_dir: Path, seed: int) -> float:
    """Synthesise one utterance and write its .WAV/.TXT/.WRD/.PHN; returns audio seconds."""
    espeak = get_espeak()
    sp = utt.speaker
    espeak.set_voice(sp.voice.name)
    espeak.set_params(**sp.voice.params())
    rng = audio.rng_for(seed, sp.id, utt.name)
    u = espeak.synth(utt.text, seed=int(rng.integers(2**31)))
    x = audio.limit_peak(audio.resample(u.samples, u.sample_rate, SAMPLE_RATE))
    lead, trail = (int(rng.integers(*PAD_MS)) * SAMPLE_RATE // 1000 for _ in range(2))
    y = audio.to_int16(audio.pad_and_noise(x, lead, trail, sp.noise_dbfs, rng))
    total_ms = 1000.0 * len(x) / SAMPLE_RATE
    phones = phone_segments(u.events, total_ms, SAMPLE_RATE, lead)
    words = words_of(utt.text)
    wrd = word_segments(u.events, words, utt.text, total_ms, SAMPLE_RATE, lead)
    phones[-1] = Segment(phones[-1].start, len(y), "h#")  # the final h# runs to the file's end

    d = out_dir / sp.split / sp.region / sp.id
    d.mkdir(parents=True, exist_ok=True)
    audio.write_audio(d / f"{utt.name}.WAV", y, SAMPLE_RATE, "NIST")
    (d / f"{utt.name}.TXT").write_text(f"0 {len(y)} {utt.text}\n")
    (d / f"{utt.name}.WRD").write_text("".join(f"{s.start} {s.end} {s.label}\n" for s in wrd))
    (d / f"{utt.name}.PHN").write_text("".join(f"{s.start} {s.end} {s.label}\n" for s in phones))
    return len(y) / SAMPLE_RATE


def _work(args: tuple[list[Utt], str, int]) -> tuple[int, float]:
    utts, out_dir, seed = args
    return len(utts), sum(synth_utterance(u, Path(out_dir), seed) for u in utts)


def write_speaker_info(cfg: TimitConfig, speakers: list[Speaker]) -> None:
    """``DOC/SPKRINFO.TXT`` like TIMIT's (id without sex letter, sex, region, use), plus voice."""
    doc = cfg.out_dir / "DOC"
    doc.mkdir(parents=True, exist_ok=True)
    lines = ["; synthetic TIMIT-layout corpus (ds-w2v synth timit): espeak-ng voices",
             "; ID  Sex DR Use  Voice Rate Pitch Range"]
    for sp in speakers:
        v = sp.voice
        lines.append(f"{sp.id[1:]}  {sp.sex}  {sp.region[2:]}  {'TST' if sp.split == 'TEST' else 'TRN'}  {v.name} {v.rate} {v.pitch} {v.pitch_range}")
    (doc / "SPKRINFO.TXT").write_text("\n".join(lines) + "\n")


def build_timit(cfg: TimitConfig) -> BuildReport:
    """Write the whole corpus under ``cfg.out_dir``; deterministic in ``cfg.seed``."""
    t0 = time.perf_counter()
    speakers = plan_speakers(cfg)
    utts = plan_utterances(cfg, speakers)
    write_speaker_info(cfg, speakers)
    # one job per speaker, its utterances in a fixed order (see jobs.py for why)
    by_speaker: dict[str, list[Utt]] = {}
    for u in utts:
        by_speaker.setdefault(u.speaker.id, []).append(u)
    jobs = [(group, os.fspath(cfg.out_dir), cfg.seed) for group in by_speaker.values()]
    num_files, audio_s = run_jobs(_work, jobs, cfg.workers)
    return BuildReport(num_files, audio_s, time.perf_counter() - t0)
