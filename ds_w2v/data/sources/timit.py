"""TIMIT (LDC93S1): ``TRAIN|TEST/DR1..DR8/<sex><speaker>/{SA,SI,SX}<n>.WAV`` + .TXT/.WRD/.PHN.

* audio: NIST SPHERE 16 kHz 16-bit (soundfile reads it); a RIFF copy ``SI1027.WAV.wav`` that
  some distributions add is used only when the SPHERE file is absent;
* text: ``.TXT`` (``start end text``), else the words of ``.WRD`` (``start end word`` lines);
* phones: ``.PHN`` (``start end phone``), 61 symbols folded to the 39 of Lee & Hon (1989),
  "Speaker-independent phone recognition using hidden Markov models", with ``q`` deleted --
  the set every TIMIT phone error rate since is reported on; the 61 are kept in ``meta``.
  The timings are kept too, one ``[start, end)`` span in samples per folded phone (``q``'s span
  goes with it, leaving a gap): frame-level phone labels (the linear phone probe,
  ``ds_w2v.probe``) come from them. TIMIT's begin/end sample numbers are end-exclusive (the
  next phone begins at the previous one's end);
* splits: ``test`` = the 24-speaker core test set (Lee & Hon; the TIMIT documentation's
  "core test"), the other 144 TEST speakers ``test_noncore`` (``test_set="all"`` puts all 168 in
  ``test``); ``dev`` = a seeded-hash choice of ``dev_percent`` % of the TRAIN speakers, the rest
  ``train``. Speakers never straddle splits.
* SA1/SA2 (the two dialect sentences every speaker read) are left out unless ``include_sa``:
  with them a model memorises two sentences and the test set shares text with training.

Directory and file names are matched case-insensitively: copies exist in upper and lower case.
"""
from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from ds_w2v.data.sources.base import (
    SourceReject,
    SourceScan,
    Utterance,
    clean_text,
    hash_pick,
    is_dir,
    listdir_ci,
    read_utf8,
    safe_id,
)

# The core test set: per dialect region two male and one female speaker.
CORE_TEST_SPEAKERS = {
    "dr1": ("mdab0", "mwbt0", "felc0"),
    "dr2": ("mtas1", "mwew0", "fpas0"),
    "dr3": ("mjmp0", "mlnt0", "fpkt0"),
    "dr4": ("mlll0", "mtls0", "fjlm0"),
    "dr5": ("mbpm0", "mklt0", "fnlp0"),
    "dr6": ("mcmj0", "mjdh0", "fmgd0"),
    "dr7": ("mgrt0", "mnjm0", "fdhc0"),
    "dr8": ("mjln0", "mpam0", "fmld0"),
}
CORE_TEST_SET = frozenset(s for speakers in CORE_TEST_SPEAKERS.values() for s in speakers)

# 61 -> 39 (Lee & Hon 1989, Table I); None = deleted (the glottal stop q).
_FOLDS = {
    "ao": "aa", "ax": "ah", "ax-h": "ah", "axr": "er", "hv": "hh", "ix": "ih", "el": "l",
    "em": "m", "en": "n", "nx": "n", "eng": "ng", "zh": "sh", "ux": "uw",
    "pcl": "sil", "tcl": "sil", "kcl": "sil", "bcl": "sil", "dcl": "sil", "gcl": "sil",
    "h#": "sil", "pau": "sil", "epi": "sil", "q": None,
}
_UNFOLDED = (
    "iy ih eh ey ae aa aw ay ah oy ow uh uw er l r w y m n ng ch jh dh b d dx g p t k z v f th s sh hh"
).split()
PHONE_FOLD_39: dict[str, str | None] = {**{p: p for p in _UNFOLDED}, **_FOLDS}
PHONES_39 = tuple(sorted(set(_UNFOLDED) | {"sil"}))
assert len(PHONE_FOLD_39) == 61 and len(PHONES_39) == 39

SENTENCE_TYPES = ("sa", "si", "sx")
_DIALECT = re.compile(r"dr[1-8]$")
_RANGE_LINE = re.compile(r"^\s*(\d+)\s+(\d+)\s+(.*?)\s*$")


def scan(
    src: Path,
    include_sa: bool = False,
    dev_percent: float = 10.0,
    dev_seed: int = 0,
    test_set: str = "core",
) -> SourceScan:
    if test_set not in ("core", "all"):
        raise ValueError(f"TIMIT test_set must be 'core' or 'all', got {test_set!r}")
    if not 0 <= dev_percent < 100:
        raise ValueError(f"TIMIT dev_percent must be in [0, 100), got {dev_percent}")
    parts = _find_parts(src)
    scan_ = SourceScan()
    # (timit part, dialect, speaker dir) for every speaker, TRAIN before TEST
    speakers = [
        (part, dialect, speaker_dir)
        for part, part_dir in sorted(parts.items(), key=lambda kv: kv[0] != "train")
        for dialect, dialect_dir in sorted(listdir_ci(part_dir).items())
        if _DIALECT.match(dialect) and is_dir(dialect_dir)
        for speaker_dir in sorted(listdir_ci(dialect_dir).values())
        if is_dir(speaker_dir)
    ]
    train_speakers = [d.name.lower() for part, _, d in speakers if part == "train"]
    dev_speakers = hash_pick(train_speakers, dev_percent / 100.0, seed=dev_seed)
    for part, dialect, speaker_dir in speakers:
        speaker = speaker_dir.name.lower()
        if part == "train":
            split = "dev" if speaker in dev_speakers else "train"
        elif test_set == "all" or speaker in CORE_TEST_SET:
            split = "test"
        else:
            split = "test_noncore"
        sex = speaker[0] if speaker[:1] in ("f", "m") else None
        for stem, files in sorted(_group_by_sentence(speaker_dir).items()):
            kind = stem[:2]
            if kind == "sa" and not include_sa:
                scan_.exclude("timit_sa_sentence")
                continue
            audio = files.get("wav") or files.get("wav.wav")
            if audio is None:
                some = next(iter(files.values()))
                scan_.reject(some, "missing_audio", f"{stem}: transcript without a .WAV", split)
                continue
            try:
                text = clean_text(_read_text(files))
                timed = _read_phones(files["phn"]) if "phn" in files else None
            except SourceReject as e:
                scan_.reject(audio, e.reason, e.detail, split)
                continue
            phones61 = folded = spans = None
            if timed is not None:
                phones61 = [phone for _, _, phone in timed]
                kept = [(PHONE_FOLD_39[phone], (start, end)) for start, end, phone in timed if PHONE_FOLD_39[phone]]
                folded = [phone for phone, _ in kept]
                spans = [span for _, span in kept]
            scan_.utterances.append(
                Utterance(
                    audio=str(audio),
                    split=split,
                    id=safe_id(speaker, stem),
                    speaker=speaker,
                    text=text,
                    phones=folded,
                    phone_spans=spans,
                    meta={
                        "corpus": "timit",
                        "dialect": dialect,
                        "sex": sex,
                        "sentence_type": kind if kind in SENTENCE_TYPES else None,
                        "timit_part": part,
                        "core_test": speaker in CORE_TEST_SET,
                        "phones61": phones61,
                    },
                )
            )
    if not scan_.utterances and not scan_.rejects:
        raise ValueError(f"{src}: TIMIT folders found but no utterances (.WAV + .TXT) in them")
    return scan_


def _find_parts(src: Path) -> dict[str, Path]:
    """``{"train": dir, "test": dir}`` of a TIMIT tree at ``src`` or up to two levels below it."""
    candidates = [src]
    for child in listdir_ci(src).values():
        if is_dir(child):
            candidates.append(child)
            candidates += [c for c in listdir_ci(child).values() if is_dir(c)]
    for root in candidates:
        entries = listdir_ci(root)
        parts = {
            name: path
            for name, path in entries.items()
            if name in ("train", "test") and any(_DIALECT.match(n) for n in listdir_ci(path))
        }
        if parts:
            return parts
    # SRC may itself be TRAIN/ or TEST/
    if src.name.lower() in ("train", "test") and any(_DIALECT.match(n) for n in listdir_ci(src)):
        return {src.name.lower(): src}
    raise ValueError(
        f"{src}: not a TIMIT tree (expected TRAIN/ and TEST/ holding DR1..DR8/<speaker>/ "
        "with .WAV, .TXT and .PHN files)"
    )


def _group_by_sentence(speaker_dir: Path) -> dict[str, dict[str, Path]]:
    """``{"si1027": {"wav": path, "txt": path, "phn": path, "wrd": path}}`` (lower-case keys)."""
    groups: dict[str, dict[str, Path]] = defaultdict(dict)
    for name, path in listdir_ci(speaker_dir).items():
        stem, _, ext = name.partition(".")
        if ext in ("wav", "wav.wav", "txt", "wrd", "phn"):
            groups[stem][ext] = path
    return groups


def _read_text(files: dict[str, Path]) -> str | None:
    """Transcript from ``.TXT`` (``start end text``), else the words of ``.WRD``."""
    if "txt" in files:
        m = _RANGE_LINE.match(read_utf8(files["txt"]).strip().replace("\n", " "))
        if m and m.group(3):
            return m.group(3)
    if "wrd" in files:
        words = [m.group(3) for line in read_utf8(files["wrd"]).splitlines() if (m := _RANGE_LINE.match(line))]
        return " ".join(words)
    return None


def _read_phones(path: Path) -> list[tuple[int, int, str]]:
    """``(start, end, phone)`` of each ``.PHN`` line: samples at the file's rate, 61-set phone."""
    phones = []
    for n, line in enumerate(read_utf8(path).splitlines(), 1):
        if not line.strip():
            continue
        m = _RANGE_LINE.match(line)
        phone = m.group(3).lower() if m else None
        if phone not in PHONE_FOLD_39:
            raise SourceReject("bad_phones", f"{path.name} line {n}: {line.strip()[:40]!r} is not 'start end phone'")
        start, end = int(m.group(1)), int(m.group(2))
        if end < start:
            raise SourceReject("bad_phones", f"{path.name} line {n}: {line.strip()[:40]!r} ends before it starts")
        phones.append((start, end, phone))
    return phones
