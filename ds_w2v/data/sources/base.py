"""What every corpus reader produces, and the helpers they share.

A reader (``scan``) only looks at names and text files; it never decodes audio. It returns a
:class:`SourceScan`: the utterances it found (audio path, split, id, speaker, normalised text,
phones and their timings, label, meta) and :class:`Reject` records for what it had to refuse (a transcript that is
missing, not UTF-8 or empty, a name outside the corpus convention, a label outside the set).
Audio problems are found later, by the worker that decodes the file (``ds_w2v.data.audio``).
"""
from __future__ import annotations

import errno
import hashlib
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from ds_w2v.text import normalize_text

# reason -> what it means; audio reasons are in ds_w2v.data.audio.REASONS
REASONS = {
    "missing_transcript": "no transcript for an audio file of a corpus that needs one",
    "bad_transcript_encoding": "the transcript (or its manifest line) is not valid UTF-8",
    "empty_transcript": "the transcript is empty after normalisation",
    "bad_phones": "a TIMIT .PHN file that cannot be parsed or holds an unknown phone",
    "bad_label": "a class label outside the label set (RAVDESS emotion code, --labels)",
    "bad_name": "a file name outside the corpus naming convention",
    "bad_record": "a manifest/CSV/JSONL line that cannot be parsed",
    "duplicate_id": "a second utterance with an id (shard key) already taken",
    "duplicate_file": "the same file reached twice (through symbolic links, or listed twice)",
}


@dataclass
class Utterance:
    """One audio file to decode and write, with everything known about it from names and text."""

    audio: str  # absolute path of the audio file
    split: str
    id: str
    speaker: str | None = None
    text: str | None = None  # normalised (ds_w2v.text.normalize_text)
    phones: list[str] | None = None
    phone_spans: list[tuple[int, int]] | None = None
    """``[start, end)`` of each of ``phones``, in samples at the audio file's *own* rate (a
    reader never opens the audio); ``prepare`` scales them to 16 kHz with the audio."""
    label: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Reject:
    """A file (or manifest line) that does not reach a shard, and why."""

    path: str
    reason: str
    detail: str = ""
    split: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SourceScan:
    utterances: list[Utterance] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    labels: list[str] | None = None  # the class set, sorted; None for corpora without labels
    excluded: dict[str, int] = field(default_factory=dict)  # left out by design (TIMIT SA ...)

    def reject(self, path: str | os.PathLike, reason: str, detail: str = "", split: str | None = None) -> None:
        self.rejects.append(Reject(os.fspath(path), reason, detail, split))

    def exclude(self, what: str, count: int = 1) -> None:
        self.excluded[what] = self.excluded.get(what, 0) + count


class SourceReject(Exception):
    """Raised by a reader's helpers for one file; the reader turns it into a :class:`Reject`."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


# -- text ----------------------------------------------------------------------------------------
def read_utf8(path: str | os.PathLike) -> str:
    """Text of a transcript file; ``bad_transcript_encoding`` when it is not UTF-8."""
    try:
        return Path(path).read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SourceReject("bad_transcript_encoding", f"not UTF-8 ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise SourceReject("missing_transcript", f"cannot read {path}: {e.strerror}") from None


def clean_text(raw: "str | SourceReject | None") -> str:
    """Normalised transcript; ``missing_transcript`` / ``empty_transcript`` when there is none,
    and the reader's own reject when reading the transcript already failed (bad encoding)."""
    if isinstance(raw, SourceReject):
        raise raw
    if raw is None:
        raise SourceReject("missing_transcript", "no transcript")
    text = normalize_text(raw)
    if not text:
        raise SourceReject("empty_transcript", f"transcript {raw.strip()[:40]!r} is empty once normalised")
    return text


# -- ids and splits ------------------------------------------------------------------------------
_KEY_SEPARATORS = re.compile(r"[/\\.\s]+")
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]+")
MAX_KEY_CHARS = 90  # USTAR tar names are <= 100 bytes: key + "." + the longest extension ("flac")


def safe_id(*parts: str) -> str:
    """An id usable as a WebDataset key: ``parts`` joined by ``_``, only [A-Za-z0-9_-] in it.

    WebDataset splits key from extension at the first dot, so path separators, dots and spaces
    become ``-``. Anything else outside the set (non-ASCII letters, punctuation) would make
    different names collide, so such a key, and an over-long one, keeps its head and gets a hash
    of the whole name appended.
    """
    raw = "_".join(parts)
    key = _KEY_SEPARATORS.sub("-", raw)
    clean = _KEY_UNSAFE.sub("-", key).strip("-")
    if clean != key or len(clean) > MAX_KEY_CHARS:
        digest = hashlib.sha1(raw.encode("utf-8", "surrogateescape")).hexdigest()[:12]
        head = clean[: MAX_KEY_CHARS - 20].strip("-")
        clean = f"{head}-{digest}" if head else digest
    return clean


def hash_pick(items: Iterable[str], fraction: float, seed: int | str = 0) -> set[str]:
    """A deterministic ``fraction`` of ``items`` (at least one when fraction > 0 and there are 2+).

    Items are ranked by SHA-1 of ``seed:item``, so the choice depends on nothing but the names
    and the seed: not on the file system order, the Python hash seed or the worker count.
    """
    items = sorted(set(items))
    if fraction <= 0 or not items:
        return set()
    if not 0 < fraction < 1:
        raise ValueError(f"a held-out fraction must be in [0, 1), got {fraction}")
    count = round(fraction * len(items))
    if count == 0 and len(items) > 1:
        count = 1
    ranked = sorted(items, key=lambda s: hashlib.sha1(f"{seed}:{s}".encode()).hexdigest())
    return set(ranked[:count])


# -- the file system -----------------------------------------------------------------------------
def listdir_ci(path: Path) -> dict[str, Path]:
    """Entries of a directory by lower-case name (TIMIT copies exist in upper and lower case)."""
    try:
        return {e.name.lower(): Path(e.path) for e in sorted(os.scandir(path), key=lambda e: e.name)}
    except OSError:
        return {}


def is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # ELOOP and friends
        return False


def walk_files(root: Path, wanted: Callable[[str], bool], scan: SourceScan) -> list[Path]:
    """Every path under ``root`` whose name passes ``wanted``, in sorted order.

    Directory links are followed once: a link back into its own ancestors is rejected as
    ``symlink_loop``, a directory reached a second time through another link is not listed again.
    Hidden names (``.x``) are skipped, audio-named ones counted as excluded ``hidden_file``.
    A path is returned when its *name* is wanted, whatever it is: a directory named ``x.wav``, a
    dangling link or a looping file link is refused by the audio decoder with its reason.
    """
    found: list[Path] = []
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[str] = set()

    def visit(directory: Path, ancestors: frozenset[tuple[int, int]]) -> None:
        try:
            st = os.stat(directory)
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as e:
            scan.reject(directory, "symlink_loop" if e.errno == errno.ELOOP else "unreadable", f"cannot list: {e.strerror}")
            return
        ident = (st.st_dev, st.st_ino)
        if ident in ancestors:
            scan.reject(directory, "symlink_loop", "directory link back into its own ancestors")
            return
        if ident in seen_dirs:
            return
        seen_dirs.add(ident)
        for entry in entries:
            path = Path(entry.path)
            if entry.name.startswith("."):  # hidden, e.g. macOS "._x.wav" resource forks from zips
                if wanted(entry.name):
                    scan.exclude("hidden_file")
                continue
            try:
                entry_is_dir = entry.is_dir()
            except OSError:
                entry_is_dir = False
            if wanted(entry.name):
                if entry_is_dir:
                    found.append(path)  # the decoder refuses it as not_a_file
                else:
                    try:
                        real = os.path.realpath(path, strict=True)
                    except OSError:
                        real = None  # dangling or looping link: the decoder says which
                    if real is not None and real in seen_files:
                        scan.reject(path, "duplicate_file", f"same file as {real}")
                        continue
                    if real is not None:
                        seen_files.add(real)
                    found.append(path)
            if entry_is_dir:
                visit(path, ancestors | {ident})

    visit(root, frozenset())
    return found
