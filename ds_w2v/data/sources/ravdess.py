"""RAVDESS speech (Livingstone & Russo 2018): ``Actor_NN/03-01-EE-II-SS-RR-AA.wav`` at 48 kHz.

The seven two-digit fields of the file name are the whole annotation:

====  =============  ==========================================================
MM    modality       01 full-AV, 02 video-only, 03 audio-only (the .wav files)
CC    vocal channel  01 speech, 02 song
EE    emotion        01 neutral .. 08 surprised (:data:`EMOTIONS`); the label
II    intensity      01 normal, 02 strong (neutral has no strong take)
SS    statement      01 "Kids are talking by the door", 02 "Dogs are sitting by the door"
RR    repetition     01, 02
AA    actor          01..24; odd = male, even = female
====  =============  ==========================================================

Splits are by actor, so no voice is in two of them (the study split at random, unseeded, with
the same actors in train and test): by default actors 1-18 train, 19-20 dev, 21-24 test.
Song files (channel 02) are left out unless ``include_song``: their emotion set lacks disgust
and surprised, and sung and spoken emotion are different tasks.
"""
from __future__ import annotations

import re
from pathlib import Path

from ds_w2v.data.audio import is_audio_name
from ds_w2v.data.sources.base import SourceScan, Utterance, safe_id, walk_files
from ds_w2v.text import normalize_text

EMOTIONS = {
    "01": "neutral", "02": "calm", "03": "happy", "04": "sad",
    "05": "angry", "06": "fearful", "07": "disgust", "08": "surprised",
}
INTENSITIES = {"01": "normal", "02": "strong"}
STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
VOCAL_CHANNELS = {"01": "speech", "02": "song"}
NUM_ACTORS = 24
DEFAULT_SPLIT_ACTORS = {"train": "1-18", "dev": "19-20", "test": "21-24"}

_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)$")
_ACTOR_DIR = re.compile(r"^actor_?(\d+)$", re.IGNORECASE)


def parse_actor_set(spec: str | list[int] | tuple[int, ...]) -> set[int]:
    """``"1-18"``, ``"19,20"``, ``"1-3,7"`` or a list of ints -> set of actor numbers."""
    if not isinstance(spec, str):
        return {int(a) for a in spec}
    actors: set[int] = set()
    for part in filter(None, (p.strip() for p in spec.split(","))):
        lo, _, hi = part.partition("-")
        try:
            actors.update(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            raise ValueError(f"bad actor list {spec!r}: expected e.g. '1-18' or '19,20'") from None
    return actors


def scan(
    src: Path,
    include_song: bool = False,
    train_actors: str = DEFAULT_SPLIT_ACTORS["train"],
    dev_actors: str = DEFAULT_SPLIT_ACTORS["dev"],
    test_actors: str = DEFAULT_SPLIT_ACTORS["test"],
) -> SourceScan:
    split_of_actor: dict[int, str] = {}
    for split, spec in (("train", train_actors), ("dev", dev_actors), ("test", test_actors)):
        for actor in parse_actor_set(spec):
            if not 1 <= actor <= NUM_ACTORS:
                raise ValueError(f"RAVDESS actor {actor} in the {split} actors: actors are 1..{NUM_ACTORS}")
            if actor in split_of_actor:
                raise ValueError(f"RAVDESS actor {actor} is in both {split_of_actor[actor]} and {split}")
            split_of_actor[actor] = split
    scan_ = SourceScan(labels=sorted(EMOTIONS.values()))
    files = walk_files(src, is_audio_name, scan_)
    if not files:
        raise ValueError(f"{src}: no RAVDESS audio (expected Actor_NN/03-01-EE-II-SS-RR-AA.wav)")
    for path in files:
        stem = path.name.rsplit(".", 1)[0]
        m = _NAME.match(stem)
        if not m:
            scan_.reject(path, "bad_name", "not MM-CC-EE-II-SS-RR-AA (seven two-digit fields)")
            continue
        modality, channel, emotion, intensity, statement, repetition, actor_s = m.groups()
        actor = int(actor_s)
        problem = None
        if modality != "03":
            problem = f"modality {modality}: the audio-only files are 03"
        elif channel not in VOCAL_CHANNELS:
            problem = f"vocal channel {channel} (01 speech, 02 song)"
        elif intensity not in INTENSITIES or (emotion == "01" and intensity == "02"):
            problem = f"intensity {intensity} for emotion {emotion}"
        elif statement not in STATEMENTS or repetition not in ("01", "02"):
            problem = f"statement {statement} / repetition {repetition} (each 01 or 02)"
        elif not 1 <= actor <= NUM_ACTORS:
            problem = f"actor {actor_s} (01..{NUM_ACTORS})"
        elif (d := _ACTOR_DIR.match(path.parent.name)) and int(d.group(1)) != actor:
            problem = f"actor {actor_s} in the folder {path.parent.name}"
        if problem:
            scan_.reject(path, "bad_name", problem)
            continue
        if emotion not in EMOTIONS:
            scan_.reject(path, "bad_label", f"unknown emotion code {emotion} (01..08)")
            continue
        if channel == "02" and not include_song:
            scan_.exclude("ravdess_song")
            continue
        split = split_of_actor.get(actor)
        if split is None:
            scan_.exclude("ravdess_actor_in_no_split")
            continue
        scan_.utterances.append(
            Utterance(
                audio=str(path),
                split=split,
                id=safe_id(stem),
                speaker=f"actor{actor:02d}",
                text=normalize_text(STATEMENTS[statement]),
                label=EMOTIONS[emotion],
                meta={
                    "corpus": "ravdess",
                    "emotion": EMOTIONS[emotion],
                    "intensity": INTENSITIES[intensity],
                    "statement": int(statement),
                    "repetition": int(repetition),
                    "actor": actor,
                    "sex": "m" if actor % 2 else "f",
                    "vocal_channel": VOCAL_CHANNELS[channel],
                },
            )
        )
    return scan_
