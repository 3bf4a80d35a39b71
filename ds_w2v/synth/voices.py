"""Speaker voices from what the shipped espeak data has: English accents x voice variants.

A synthetic speaker is an accent (``en-us``, ``en-GB-scotland``, ...) plus a variant
(``m3``, ``f2``, ``Annie``, ...: formants, base pitch, breathiness) plus fixed prosody
(rate, pitch, pitch range, word gap, loudness). Both lists are enumerated with
``espeak_ListVoices`` at run time, then sorted, so a speaker drawn from a seed is the same
wherever the same espeak data is installed.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass

from ds_w2v.synth.espeak import GENDER_FEMALE, GENDER_MALE, Espeak

# Variants that do not sound like one human speaker (robots, effects, whisper, the Klatt
# formant synthesiser test voices, a speed-test voice).
_EXCLUDED_VARIANT_WORDS = ("robo", "robot", "demonic", "croak", "whisper", "announcer", "fast", "klatt")
# "English" voices that do not read Latin-script English text.
_EXCLUDED_ACCENTS = ("en-shaw",)


@dataclass(frozen=True)
class Voice:
    """One speaker's voice; ``name`` is passed to ``espeak_SetVoiceByName``.

    Units: ``rate`` words/min, ``pitch`` and ``pitch_range`` espeak's 0..100 scale,
    ``word_gap`` 10 ms units, ``volume`` percent amplitude.
    """

    accent: str
    variant: str
    rate: int = 175
    pitch: int = 50
    pitch_range: int = 50
    word_gap: int = 0
    volume: int = 100

    @property
    def name(self) -> str:
        return f"{self.accent}+{self.variant}"

    def params(self) -> dict:
        d = asdict(self)
        del d["accent"], d["variant"]
        return d


def english_accents(espeak: Espeak) -> list[str]:
    """Voice names (the file name, which ``SetVoiceByName`` accepts) of English accents."""
    names = set()
    for v in espeak.list_voices():
        base = v.identifier.rsplit("/", 1)[-1]
        if any(lang.startswith("en") for lang in v.languages) and base.lower() not in _EXCLUDED_ACCENTS:
            names.add(base)
    return sorted(names)


def variants(espeak: Espeak, gender: str) -> list[str]:
    """Variant names (file names under ``voices/!v``) for ``gender`` "M" or "F"."""
    code = GENDER_MALE if gender == "M" else GENDER_FEMALE
    out = set()
    for v in espeak.list_voices(variants=True):
        base = v.identifier.rsplit("/", 1)[-1]
        if v.gender == code and " " not in base and not any(w in base.lower() for w in _EXCLUDED_VARIANT_WORDS):
            out.add(base)
    return sorted(out)


def draw_prosody(rng: random.Random, gender: str) -> dict:
    """Per-speaker prosody, fixed for all of a speaker's utterances.

    Rates span slow to brisk read speech (TIMIT speakers read at roughly 130-220 words/min);
    females get a slightly higher pitch setting on top of the variant's own base pitch.
    """
    return {
        "rate": int(min(max(rng.gauss(165, 20), 120), 220)),
        "pitch": int(min(max(rng.gauss(55 if gender == "F" else 45, 10), 20), 80)),
        "pitch_range": int(min(max(rng.gauss(55, 12), 25), 90)),
        "word_gap": rng.choice((0, 0, 0, 1, 1, 2)),
        "volume": int(rng.uniform(80, 120)),
    }
