"""A prepared directory + a split name -> shard URLs, durations, labels and vocabulary.

Reads ``dataset.json`` through :func:`ds_w2v.data.shard_format.read_index`; the streaming loader
needs the per-shard seconds to derive how many batches each rank yields per epoch.

Where the shards are read from (``docs/data_stream.md``, *Shards in object storage*): the index
stays on a local disk (``data.shards``), the tars may be anywhere WebDataset opens. A shard entry
of ``dataset.json`` that is a URL (``https://...``, ``pipe:...``) or an absolute path is used as
it is; a relative name is joined to the directory, or, given ``url_prefix``, put into it::

    read_split("data/ls960", "train")                             # data/ls960/train-000000.tar
    read_split("data/ls960", "train", "https://host/ls960/")      # https://host/ls960/train-000000.tar
    read_split("data/ls960", "train", "pipe:aws s3 cp s3://b/ls960/{shard} -")
                                                # -> pipe:aws s3 cp s3://b/ls960/train-000000.tar -
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ds_w2v.data.shard_format import INDEX_NAME, read_index

# The schemes WebDataset 1.0's gopen opens (its gopen_schemes, plus file:); s3:// and az:// are
# not among them: those go through a pipe: command. tests/data/test_index.py compares this
# list with the installed webdataset's, so that an upgrade cannot silently change it.
URL_SCHEMES = ("ais", "file", "ftps", "gs", "hf", "htgs", "http", "https", "pipe", "scp", "sftp")
SHARD = "{shard}"
"""Where a shard's name goes in a ``url_prefix`` template."""
SPLIT_NAME = re.compile(r"[A-Za-z0-9_-]+")
"""What a split name can be: ``prepare`` names splits through ``sources.base.safe_id`` (letters,
digits, ``_`` and ``-``: ``train``, ``test_noncore``, LibriSpeech's ``train-clean-100``)."""
# what may be pasted into a pipe: command (run by a shell): the names prepare writes
# ({split}-000000.tar), sub-directories, nothing a shell would expand or split
_SHELL_SAFE = re.compile(r"[A-Za-z0-9._+/-]+")
_PIPE_HINT = "e.g. pipe:aws s3 cp s3://bucket/ls960/{shard} -"


def url_scheme(url: str) -> str:
    """The scheme as WebDataset's gopen reads it (``urlparse``); ``""`` for a local path."""
    scheme = urlparse(url).scheme
    return "" if len(scheme) == 1 else scheme  # "C:\\..." is a drive letter, not a scheme


def _scheme_problem(url: str) -> str | None:
    scheme = url_scheme(url)
    if scheme and scheme not in URL_SCHEMES:
        return (f"webdataset cannot open {scheme}: URLs (it opens {', '.join(URL_SCHEMES)} and local paths); "
                f"read them through a pipe: command, {_PIPE_HINT}")
    return None


def url_prefix_problem(prefix: str) -> str | None:
    """Why ``prefix`` cannot be a shard URL prefix, or None. The rule: a template naming
    ``{shard}`` (any scheme WebDataset opens, or a local path), or a plain prefix ending in ``/``
    to which the shard's name is appended; a ``pipe:`` command must be a template (the command
    usually goes on after the name: ``... {shard} -``)."""
    problem = _scheme_problem(prefix)
    if problem:
        return problem
    if SHARD in prefix:
        return None
    if url_scheme(prefix) == "pipe":
        return f"a pipe: command must say where the shard's name goes with {SHARD}, {_PIPE_HINT}"
    if not prefix.endswith("/"):
        return (f"a plain prefix must end with '/' (the shard's name is appended: https://host/ls960/ + "
                f"train-000000.tar), or be a template naming {SHARD}")
    return None


def shard_url(name: str, shard_dir: str | Path, url_prefix: str | None = None) -> str:
    """The URL WebDataset opens for the shard ``name`` of ``dataset.json`` (module docstring)."""
    if url_scheme(name) or Path(name).is_absolute():
        return name
    if not url_prefix:
        return str(Path(shard_dir) / name)
    if SHARD in url_prefix:
        return url_prefix.replace(SHARD, name)  # not str.format: shell commands hold braces too
    return url_prefix + name


@dataclass(frozen=True)
class SplitIndex:
    """What the loader and the task heads need to know about one split."""

    split: str
    urls: tuple[str, ...]
    """Shard URLs, in index order (the loader shuffles them per epoch): local paths, unless the
    index names URLs or ``read_split`` was given a ``url_prefix``."""
    shard_seconds: tuple[float, ...]
    shard_num_samples: tuple[int, ...]
    num_samples: int
    hours: float
    audio_codec: str
    labels: tuple[str, ...] | None
    """Sorted class names (classification corpora), else None."""
    vocab: dict[str, int] | None
    """CTC character vocabulary ``{token: id}`` (transcribed corpora), else None."""
    names: tuple[str, ...] = ()
    """The shard entries as ``dataset.json`` names them, in the order of ``urls``."""

    @property
    def total_s(self) -> float:
        return sum(self.shard_seconds)

    @property
    def num_shards(self) -> int:
        return len(self.urls)


def read_split(shard_dir: str | Path, split: str, url_prefix: str | None = None) -> SplitIndex:
    """The :class:`SplitIndex` of ``split`` in a prepared directory; ``url_prefix`` says where
    its shards are read from (module docstring; None or ``""``: next to ``dataset.json``).

    Raises ``ValueError`` naming the known splits when ``split`` is not one of them, when the
    per-shard lists do not match the shard list, and for a shard URL or prefix WebDataset cannot
    open (:func:`url_prefix_problem`).
    """
    shard_dir = Path(shard_dir)
    if url_prefix:
        problem = url_prefix_problem(url_prefix)
        if problem:
            raise ValueError(f"shard URL prefix {url_prefix!r}: {problem}")
    index: dict[str, Any] = read_index(shard_dir)
    where = shard_dir / INDEX_NAME
    splits = index["splits"]
    if split not in splits:
        known = ", ".join(sorted(splits)) or "none"
        raise ValueError(f"{where}: no split {split!r}; known splits: {known}")
    entry = splits[split]
    names = list(entry["shards"])
    if not names:
        raise ValueError(f"{where}: split {split!r} has no shards")
    seconds = entry.get("shard_seconds")
    counts = entry.get("shard_num_samples")
    if seconds is None:  # an index without per-shard stats: spread the split's hours evenly
        seconds = [float(entry["hours"]) * 3600.0 / len(names)] * len(names)
    if counts is None:
        counts = [int(entry["num_samples"]) // len(names)] * len(names)
    if len(seconds) != len(names) or len(counts) != len(names):
        raise ValueError(
            f"{where}: split {split!r} lists {len(names)} shards but "
            f"{len(seconds)} shard_seconds and {len(counts)} shard_num_samples"
        )
    urls = []
    for name in names:
        problem = _scheme_problem(name)
        if problem:
            raise ValueError(f"{where}: split {split!r}, shard {name!r}: {problem}")
        url = shard_url(name, shard_dir, url_prefix)
        if url != name and url_scheme(url) == "pipe" and not _SHELL_SAFE.fullmatch(name):
            raise ValueError(f"{where}: split {split!r}, shard {name!r}: not pasted into the shell command of "
                             f"{url_prefix!r} (only letters, digits and ._+/- are)")
        urls.append(url)
    labels = index.get("labels")
    return SplitIndex(
        split=split,
        urls=tuple(urls),
        shard_seconds=tuple(float(s) for s in seconds),
        shard_num_samples=tuple(int(n) for n in counts),
        num_samples=int(entry["num_samples"]),
        hours=float(entry["hours"]),
        audio_codec=index["audio_codec"],
        labels=tuple(labels) if labels is not None else None,
        vocab=dict(index["vocab"]) if index.get("vocab") is not None else None,
        names=tuple(names),
    )
