"""Readers of corpora in their real on-disk layouts, one module each, behind one call.

``scan_source(fmt, src, **options)`` returns a :class:`~ds_w2v.data.sources.base.SourceScan`:
utterances to decode and records of what was refused. Readers look at names and text only;
audio is decoded by the ``prepare`` workers.
"""
from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any, Callable

from ds_w2v.data.sources.base import REASONS, Reject, SourceScan, Utterance

# format -> (module, function)
SOURCES: dict[str, tuple[str, str]] = {
    "timit": ("ds_w2v.data.sources.timit", "scan"),
    "ravdess": ("ds_w2v.data.sources.ravdess", "scan"),
    "librispeech": ("ds_w2v.data.sources.librispeech", "scan"),
    "fairseq": ("ds_w2v.data.sources.fairseq", "scan"),
    "csv": ("ds_w2v.data.sources.tabular", "scan_csv"),
    "jsonl": ("ds_w2v.data.sources.tabular", "scan_jsonl"),
    "dir": ("ds_w2v.data.sources.directory", "scan"),
}

__all__ = ["REASONS", "Reject", "SOURCES", "SourceScan", "Utterance", "scan_source", "source_options"]


def _reader(fmt: str) -> Callable[..., SourceScan]:
    if fmt not in SOURCES:
        raise ValueError(f"unknown corpus format {fmt!r}; known: {', '.join(SOURCES)}")
    module, name = SOURCES[fmt]
    return getattr(importlib.import_module(module), name)


def source_options(fmt: str) -> dict[str, Any]:
    """The options a format's reader takes, with their defaults."""
    params = list(inspect.signature(_reader(fmt)).parameters.values())[1:]
    return {p.name: p.default for p in params}


def scan_source(fmt: str, src: str | Path, **options: Any) -> SourceScan:
    """Read the corpus at ``src`` laid out as ``fmt``; unknown options are an error."""
    known = source_options(fmt)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"option(s) {unknown} do not apply to format {fmt!r} (its options: {sorted(known) or 'none'})")
    src = Path(src)
    if not src.exists():
        raise FileNotFoundError(f"{src}: no such file or directory")
    return _reader(fmt)(src, **options)
