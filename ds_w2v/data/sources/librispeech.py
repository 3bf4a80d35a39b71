"""LibriSpeech (Panayotov et al. 2015): ``<split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac``.

Each chapter folder holds ``<speaker>-<chapter>.trans.txt``, one ``ID TRANSCRIPT`` line per
utterance (upper case, no punctuation but apostrophes). SRC is either the ``LibriSpeech/``
folder (every sub-folder holding speaker/chapter folders is a split, named as on disk:
``train-clean-100``, ``dev-clean``, ``test-other`` ...) or one split folder. ``SPEAKERS.TXT``
beside the splits, when present, gives each speaker's sex.
"""
from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from ds_w2v.data.audio import is_audio_name
from ds_w2v.data.sources.base import (
    SourceReject,
    SourceScan,
    Utterance,
    clean_text,
    is_dir,
    listdir_ci,
    safe_id,
    walk_files,
)

_UTT_ID = re.compile(r"^(\d+)-(\d+)-(\d+)$")
TRANS_SUFFIX = ".trans.txt"


def scan(src: Path) -> SourceScan:
    splits = _find_splits(src)
    scan_ = SourceScan()
    sexes = _read_speakers(src)
    for split_name, split_dir in splits.items():
        split = safe_id(split_name)
        wanted = lambda name: name.endswith(TRANS_SUFFIX) or is_audio_name(name)  # noqa: E731
        paths = walk_files(split_dir, wanted, scan_)
        by_dir: dict[Path, list[Path]] = defaultdict(list)
        for path in paths:
            by_dir[path.parent].append(path)
        for directory, files in by_dir.items():
            transcripts: dict[str, str | SourceReject] = {}
            for path in files:
                if path.name.endswith(TRANS_SUFFIX) and not is_dir(path):
                    transcripts.update(_read_trans(path, scan_, split))
            audio_ids = set()
            for path in files:
                if path.name.endswith(TRANS_SUFFIX):
                    continue
                utt_id = path.name.rsplit(".", 1)[0]
                m = _UTT_ID.match(utt_id)
                if not m:
                    scan_.reject(path, "bad_name", "not <speaker>-<chapter>-<utterance>.flac", split)
                    continue
                audio_ids.add(utt_id)
                try:
                    text = clean_text(transcripts.get(utt_id))
                except SourceReject as e:
                    scan_.reject(path, e.reason, e.detail, split)
                    continue
                speaker, chapter, _ = m.groups()
                scan_.utterances.append(
                    Utterance(
                        audio=str(path),
                        split=split,
                        id=safe_id(utt_id),
                        speaker=speaker,
                        text=text,
                        meta={"corpus": "librispeech", "chapter": chapter, "sex": sexes.get(speaker)},
                    )
                )
            for utt_id in sorted(set(transcripts) - audio_ids):
                scan_.reject(directory / f"{utt_id}.flac", "missing_audio", "in the transcript, no audio file", split)
    return scan_


def _find_splits(src: Path) -> dict[str, Path]:
    def is_split(d: Path) -> bool:  # <speaker>/<chapter>/*.trans.txt somewhere below
        for speaker_dir in listdir_ci(d).values():
            for chapter_dir in listdir_ci(speaker_dir).values() if is_dir(speaker_dir) else ():
                if is_dir(chapter_dir) and any(n.endswith(TRANS_SUFFIX) for n in listdir_ci(chapter_dir)):
                    return True
        return False

    if not is_dir(src):
        raise FileNotFoundError(f"{src}: no such directory")
    if is_split(src):
        return {src.name: src}
    splits = {d.name: d for d in sorted(listdir_ci(src).values()) if is_dir(d) and is_split(d)}
    if not splits:
        raise ValueError(
            f"{src}: not a LibriSpeech tree (expected <split>/<speaker>/<chapter>/ folders with "
            f"<speaker>-<chapter>{TRANS_SUFFIX} and .flac files)"
        )
    return splits


def _read_trans(path: Path, scan_: SourceScan, split: str) -> dict[str, str | SourceReject]:
    """``{utterance id: text}`` of a trans.txt; a line that is not UTF-8 maps to its reject."""
    out: dict[str, str | SourceReject] = {}
    try:
        lines = path.read_bytes().splitlines()
    except OSError as e:
        scan_.reject(path, "unreadable", str(e), split)
        return out
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        utt_id, _, text = raw.strip().partition(b" ")
        key = utt_id.decode("ascii", "replace")
        if not _UTT_ID.match(key):
            scan_.reject(f"{path}:{n}", "bad_record", f"line {n} does not start with an utterance id", split)
            continue
        try:
            out[key] = text.decode("utf-8")
        except UnicodeDecodeError:
            out[key] = SourceReject("bad_transcript_encoding", f"{path.name} line {n} is not UTF-8")
    return out


def _read_speakers(src: Path) -> dict[str, str]:
    """Speaker -> "f"/"m" from ``SPEAKERS.TXT`` (``ID | SEX | SUBSET | MINUTES | NAME``)."""
    for folder in (src, src.parent):
        path = listdir_ci(folder).get("speakers.txt")
        if path is None:
            continue
        sexes = {}
        for line in path.read_bytes().decode("utf-8", "replace").splitlines():
            fields = [f.strip() for f in line.split("|")]
            if len(fields) >= 2 and not line.startswith(";") and fields[1].lower() in ("f", "m"):
                sexes[fields[0]] = fields[1].lower()
        return sexes
    return {}
