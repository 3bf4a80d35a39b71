"""Tiny corpora in their real on-disk layouts, for the ``prepare`` tests (fixtures ``prep_*``).

Audio is a short chirp written with soundfile in the corpus's own container (TIMIT: NIST
SPHERE with upper-case names; RAVDESS: 48 kHz WAV; LibriSpeech: FLAC), so the readers meet the
bytes they meet on real copies. Every builder returns what a correct reader should find.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

# --- audio --------------------------------------------------------------------------------------


def prep_signal(seconds: float, rate: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A chirp (200 Hz -> 3 kHz) plus a little noise, float32 in [-0.5, 0.5]."""
    t = np.arange(int(round(seconds * rate))) / rate
    f = 200 + 2800 * t / max(seconds, 1e-3)
    x = 0.4 * np.sin(2 * np.pi * np.cumsum(f) / rate)
    x = x + 0.02 * np.random.default_rng(seed).standard_normal(len(t))
    x = x.astype(np.float32)
    return np.stack([x, 0.5 * x], axis=1) if channels == 2 else x


def prep_write(path: Path, seconds: float = 0.8, rate: int = 16000, channels: int = 1,
               fmt: str | None = None, subtype: str | None = None, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, prep_signal(seconds, rate, channels, seed), rate, format=fmt, subtype=subtype)
    return path


# --- TIMIT --------------------------------------------------------------------------------------
TIMIT_TEXT = "She had your dark suit in greasy wash water all year."
# 61-phone transcription with a glottal stop (q, deleted), closures and h# (-> sil), ax-h (-> ah)
TIMIT_PHN = ["h#", "sh", "iy", "hv", "ae", "dcl", "d", "q", "ax-h", "zh", "ux", "epi", "h#"]
TIMIT_PHN_39 = ["sil", "sh", "iy", "hh", "ae", "sil", "d", "ah", "sh", "uw", "sil", "sil"]

# (part, dialect, speaker); TEST has two core-test speakers and one that is not core
TIMIT_SPEAKERS = [
    ("TRAIN", "DR1", "FCJF0"), ("TRAIN", "DR1", "MDAC0"), ("TRAIN", "DR2", "FAEM0"),
    ("TRAIN", "DR2", "MARC0"), ("TRAIN", "DR3", "FALK0"),
    ("TEST", "DR1", "MDAB0"), ("TEST", "DR4", "FJLM0"), ("TEST", "DR2", "MBJK0"),
]
TIMIT_SENTENCES = ["SA1", "SI1027", "SX37"]


@dataclass
class TimitTree:
    root: Path
    speakers: list[tuple[str, str, str]]
    sentences: list[str]
    files: list[Path] = field(default_factory=list)  # every .WAV written


def prep_make_timit(root: Path, lower_case_test: bool = True, seconds: float = 0.6) -> TimitTree:
    """TIMIT with SPHERE audio, .TXT/.WRD/.PHN; TEST in lower case, as some copies are."""
    tree = TimitTree(root, TIMIT_SPEAKERS, TIMIT_SENTENCES)
    words = TIMIT_TEXT.rstrip(".").split()
    for k, (part, dialect, speaker) in enumerate(TIMIT_SPEAKERS):
        lower = lower_case_test and part == "TEST"
        folder = root / "TIMIT" / (f"{part}/{dialect}/{speaker}".lower() if lower else f"{part}/{dialect}/{speaker}")
        for j, sentence in enumerate(TIMIT_SENTENCES):
            name = sentence.lower() if lower else sentence
            ext = {e: e.lower() if lower else e for e in ("WAV", "TXT", "WRD", "PHN")}
            wav = prep_write(folder / f"{name}.{ext['WAV']}", seconds, 16000, fmt="NIST", subtype="PCM_16", seed=k * 10 + j)
            tree.files.append(wav)
            n = int(seconds * 16000)
            (folder / f"{name}.{ext['TXT']}").write_text(f"0 {n} {TIMIT_TEXT}\n")
            step = n // len(words)
            (folder / f"{name}.{ext['WRD']}").write_text(
                "".join(f"{i * step} {(i + 1) * step} {w.lower()}\n" for i, w in enumerate(words)))
            step = n // len(TIMIT_PHN)
            (folder / f"{name}.{ext['PHN']}").write_text(
                "".join(f"{i * step} {(i + 1) * step} {p}\n" for i, p in enumerate(TIMIT_PHN)))
    return tree


# --- RAVDESS ------------------------------------------------------------------------------------
def ravdess_name(emotion: int, intensity: int, statement: int, repetition: int, actor: int, channel: int = 1) -> str:
    return f"03-{channel:02d}-{emotion:02d}-{intensity:02d}-{statement:02d}-{repetition:02d}-{actor:02d}.wav"


def prep_make_ravdess(root: Path, actors=range(1, 25), emotions=(1, 3, 5, 8), seconds: float = 0.6,
                      rate: int = 48000) -> list[Path]:
    """``Actor_NN/03-01-EE-II-SS-RR-AA.wav`` at 48 kHz; neutral (01) only at normal intensity."""
    files = []
    for actor in actors:
        for emotion in emotions:
            intensity = 1 if emotion == 1 else 2
            name = ravdess_name(emotion, intensity, 1 + actor % 2, 1, actor)
            files.append(prep_write(root / f"Actor_{actor:02d}" / name, seconds, rate, seed=actor * 10 + emotion))
    return files


# --- LibriSpeech --------------------------------------------------------------------------------
LIBRI_TEXT = "HE HOPED THERE WOULD BE STEW FOR DINNER TURNIPS AND CARROTS"


def prep_make_librispeech(root: Path, splits=("train-clean-100", "dev-clean", "test-clean"),
                          seconds: float = 0.6) -> dict[str, list[Path]]:
    """``LibriSpeech/<split>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac`` + trans.txt + SPEAKERS.TXT."""
    out: dict[str, list[Path]] = {}
    base = root / "LibriSpeech"
    speakers_txt = ["; ID |SEX| SUBSET |MINUTES| NAME"]
    for s, split in enumerate(splits):
        out[split] = []
        for speaker in (100 + 10 * s, 101 + 10 * s):
            speakers_txt.append(f"{speaker} | {'F' if speaker % 2 else 'M'} | {split} | 25.0 | Reader {speaker}")
            chapter = 2000 + speaker
            folder = base / split / str(speaker) / str(chapter)
            lines = []
            for utt in range(2):
                uid = f"{speaker}-{chapter}-{utt:04d}"
                out[split].append(prep_write(folder / f"{uid}.flac", seconds, 16000, seed=speaker + utt))
                lines.append(f"{uid} {LIBRI_TEXT}")
            (folder / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    (base / "SPEAKERS.TXT").write_text("\n".join(speakers_txt) + "\n")
    return out


# --- fixtures -----------------------------------------------------------------------------------
class _Builders:
    signal = staticmethod(prep_signal)
    write = staticmethod(prep_write)
    timit = staticmethod(prep_make_timit)
    ravdess = staticmethod(prep_make_ravdess)
    ravdess_name = staticmethod(ravdess_name)
    librispeech = staticmethod(prep_make_librispeech)
    TIMIT_TEXT = TIMIT_TEXT
    TIMIT_PHN = TIMIT_PHN
    TIMIT_PHN_39 = TIMIT_PHN_39
    LIBRI_TEXT = LIBRI_TEXT


@pytest.fixture
def prep_build() -> _Builders:
    """Corpus builders: ``prep_build.timit(tmp_path)``, ``.ravdess``, ``.librispeech``, ``.write``."""
    return _Builders()


@pytest.fixture(scope="session")
def prep_timit_tree(tmp_path_factory) -> TimitTree:
    """One read-only TIMIT tree shared by the tests that only read it."""
    return prep_make_timit(tmp_path_factory.mktemp("timit"))
