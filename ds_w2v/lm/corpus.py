"""The text an n-gram LM is counted from: plain text files or a prepared corpus's transcripts.

Every line goes through :func:`ds_w2v.text.normalize_text`, the normaliser of the CTC targets,
so the LM's words are written exactly as the model writes them (``Don't!`` -> ``don't``).
Two units:

* ``word``: a sentence is its words, the LM predicts words (the lexicon beam search);
* ``char``: a sentence is its characters with ``|`` between words (``ab cd`` -> ``a b | c d``),
  the CTC targets' own token sequence: the LM predicts characters and word boundaries (the
  lexicon-free beam search, which can write words the LM never saw).
"""
from __future__ import annotations

import json
import os
import tarfile
from pathlib import Path
from typing import Iterable, Iterator

from ..text import _APOSTROPHES, _LOOSE_APOSTROPHE, _SPACES, WORD_DELIM, _keep, normalize_text

UNITS = ("word", "char")

# normalize_text's steps 1-4 for an ASCII line as one str.translate: NFKC leaves ASCII as it is,
# then lower case, the backtick apostrophe, and every character _keep refuses -> a space. The
# per-character generator of normalize_text costs ~0.3 us a character (the 4 MB KJV Bible: ~1.2
# CPU-s, as much as the whole n-gram estimate); this table does the same in C.
_ASCII_TABLE = str.maketrans({
    c: (t if _keep(t) else " ")
    for c, t in ((chr(i), chr(i).lower().translate(_APOSTROPHES)) for i in range(128))})


def normalize_line(line: str) -> str:
    """:func:`ds_w2v.text.normalize_text`, the same string, faster for an ASCII line."""
    if not line.isascii():
        return normalize_text(line)
    text = _LOOSE_APOSTROPHE.sub(" ", line.translate(_ASCII_TABLE))
    return _SPACES.sub(" ", text).strip()


def sentence_tokens(text: str, unit: str) -> list[str]:
    """The LM tokens of one normalised sentence."""
    if unit == "word":
        return text.split()
    if unit == "char":
        return list(text.replace(" ", WORD_DELIM))
    raise ValueError(f"unit {unit!r} is not one of {', '.join(UNITS)}")


def _text_file(path: Path) -> Iterator[str]:
    try:
        with open(path, encoding="utf-8") as f:
            yield from f
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e.reason}: {e.object[e.start:e.start + 4]!r})") from None


def _prepared(directory: Path, split: str) -> Iterator[str]:
    """The transcripts of ``split`` in a prepared directory, shard by shard (local shards only)."""
    from ..data.index import read_split

    index = read_split(directory, split)
    for url in index.urls:
        if not Path(url).is_file():
            raise ValueError(f"{directory}: shard {url} of split {split!r} is not a local file (build-lm reads "
                             "local shards)")
        try:
            with tarfile.open(url) as tar:
                for member in tar:
                    if member.name.endswith(".json"):
                        text = json.loads(tar.extractfile(member).read()).get("text")
                        if isinstance(text, str):  # an unlabelled utterance has none: no sentence
                            yield text
        except (tarfile.TarError, OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{url}: unreadable shard ({e})") from None


def read_sentences(sources: Iterable[str | os.PathLike], split: str = "train") -> Iterator[str]:
    """Normalised sentences of every source in turn: a text file (one sentence a line) or a
    directory made by ``ds-w2v prepare`` (the transcripts of its ``split``). An empty line (or one
    with nothing left once normalised) is an empty sentence, counted ``<s> </s>``: what lmplz
    makes of an empty line, so both tools count the same text the same way."""
    for source in sources:
        path = Path(source)
        if path.is_dir():
            if not (path / "dataset.json").is_file():
                raise ValueError(f"{path}: a directory, but not a prepared corpus (no dataset.json)")
            lines = _prepared(path, split)
        elif path.is_file():
            lines = _text_file(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or directory")
        yield from map(normalize_line, lines)
