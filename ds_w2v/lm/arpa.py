"""The ARPA back-off n-gram format: writing an :class:`~ds_w2v.lm.ngram.NgramLM` or
:class:`~ds_w2v.lm.ngram.NgramArrays`, reading one back.

    \\data\\
    ngram 1=5
    ngram 2=7

    \\1-grams:
    -0.69897\\ta\\t-0.30103        log10 p(a), word, log10 backoff (absent: 0, weight 1)
    ...
    \\2-grams:
    -0.30103\\ta b
    \\end\\

The layout KenLM, SRILM and every CTC beam decoder read (flashlight-text's KenLM wrapper here).
Reading is for the decoder's lexicon (:func:`read_vocabulary`: the unigrams, streamed, so a
multi-GB ``lmplz`` file costs one pass over its first section) and for tests (:func:`read_arpa`).
"""
from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Iterator

import numpy as np

from .ngram import NgramArrays, NgramLM

_COUNT_LINE = re.compile(r"ngram (\d+)\s*=\s*(\d+)$")
_SECTION = re.compile(r"\\(\d+)-grams:$")


def _number(x: float) -> str:
    # 7 significant digits: KenLM stores float32 (~7.2 digits), so nothing is lost to it
    return f"{x:.7g}"


def write_arpa(lm: NgramLM | NgramArrays, path: str | os.PathLike) -> Path:
    """Write ``lm`` to ``path`` (n-grams sorted, for a reproducible file), atomically: a reader
    never sees half a file under the final name."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write("\\data\\\n")
        sizes = [len(g) for g in lm.grams] if isinstance(lm, NgramArrays) else [len(p) for p in lm.log10_p]
        for k, n in enumerate(sizes, start=1):
            f.write(f"ngram {k}={n}\n")
        for k in range(1, lm.order + 1):
            f.write(f"\n\\{k}-grams:\n")
            if isinstance(lm, NgramArrays):
                _write_order(f, lm, k)
                continue
            backoffs = lm.log10_backoff[k - 1] if k < lm.order else {}
            for gram in sorted(lm.log10_p[k - 1]):
                line = f"{_number(lm.log10_p[k - 1][gram])}\t{' '.join(gram)}"
                if gram in backoffs:
                    line += f"\t{_number(backoffs[gram])}"
                f.write(line + "\n")
        f.write("\n\\end\\\n")
    os.replace(tmp, path)
    return path


# lines formatted and written per block: the text of a whole order at once would cost ~80 bytes per
# n-gram of memory (a million 4-grams: 80 MB) on top of the arrays
_BLOCK = 65536


def _write_order(f, lm: NgramArrays, k: int) -> None:
    """The k-grams of an array model, already in ARPA's sorted order."""
    names = np.array(lm.vocab, dtype=object)
    grams, log10_p = lm.grams[k - 1], lm.log10_p[k - 1]
    backoff = lm.log10_backoff[k - 1] if k < lm.order else None
    for start in range(0, len(grams), _BLOCK):
        block = slice(start, start + _BLOCK)
        words = names[grams[block]]
        text = map(" ".join, words.tolist()) if k > 1 else words[:, 0].tolist()
        probs = map(_number, log10_p[block].tolist())
        if backoff is None:
            f.write("".join(f"{p}\t{t}\n" for p, t in zip(probs, text)))
        else:
            f.write("".join(f"{p}\t{t}\n" if b != b else f"{p}\t{t}\t{_number(b)}\n"  # b != b: NaN, no history
                            for p, t, b in zip(probs, text, backoff[block].tolist())))


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                yield number, line.strip()
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not an ARPA text file (not UTF-8: a binary KenLM model? the decoder needs "
                         "the ARPA file, whose words make its lexicon)") from None


def _header(path: Path, lines: Iterator[tuple[int, str]]) -> dict[int, int]:
    """The ``\\data\\`` section's ``{order: count}``; ``lines`` is left at the first section."""
    for number, line in lines:
        if not line:
            continue
        if line != "\\data\\":
            raise ValueError(f"{path}:{number}: not an ARPA file (expected \\data\\, got {line[:40]!r})")
        break
    else:
        raise ValueError(f"{path}: empty file, not an ARPA language model")
    counts: dict[int, int] = {}
    for number, line in lines:
        if not line:
            if counts:
                return counts
            continue
        m = _COUNT_LINE.match(line)
        if not m:
            raise ValueError(f"{path}:{number}: bad ARPA header line {line[:40]!r} (expected 'ngram K=COUNT')")
        counts[int(m.group(1))] = int(m.group(2))
    raise ValueError(f"{path}: the ARPA file ends inside its \\data\\ header")


def _entries(path: Path, lines: Iterator[tuple[int, str]], counts: dict[int, int]
             ) -> Iterator[tuple[int, tuple[str, ...], float, float | None]]:
    """(order, n-gram, log10 p, log10 backoff or None) of every entry, section by section."""
    order = 0
    seen = 0
    for number, line in lines:
        if not line:
            continue
        m = _SECTION.match(line)
        if m or line == "\\end\\":
            if order and seen != counts.get(order):
                raise ValueError(f"{path}:{number}: the {order}-grams section has {seen} entries, the header "
                                 f"says {counts.get(order)}")
            if line == "\\end\\":
                return
            order, seen = int(m.group(1)), 0
            if order not in counts:
                raise ValueError(f"{path}:{number}: section {line} not announced in the \\data\\ header")
            continue
        fields = line.split()
        if not order or len(fields) not in (order + 1, order + 2):
            raise ValueError(f"{path}:{number}: bad {order}-gram entry {line[:60]!r}")
        try:
            p = float(fields[0])
            backoff = float(fields[order + 1]) if len(fields) == order + 2 else None
        except ValueError:
            raise ValueError(f"{path}:{number}: bad number in {line[:60]!r}") from None
        seen += 1
        yield order, tuple(fields[1:order + 1]), p, backoff
    raise ValueError(f"{path}: the ARPA file ends without \\end\\ (truncated?)")


def read_order(path: str | os.PathLike) -> int:
    """The model's order, from the ``\\data\\`` header alone."""
    path = Path(path)
    return max(_header(path, _lines(path)))


def read_vocabulary(path: str | os.PathLike) -> list[str]:
    """The unigrams of an ARPA file, in file order; reads no further than the 1-grams."""
    path = Path(path)
    lines = _lines(path)
    counts = _header(path, lines)
    words: list[str] = []
    for order, gram, _, _ in _entries(path, lines, counts):
        if order != 1:
            break
        words.append(gram[0])
    if not words:
        raise ValueError(f"{path}: the ARPA file has no 1-grams")
    return words


def read_arpa(path: str | os.PathLike) -> NgramLM:
    """The whole model (small files: tests, inspection)."""
    path = Path(path)
    lines = _lines(path)
    counts = _header(path, lines)
    top = max(counts)
    if sorted(counts) != list(range(1, top + 1)):
        raise ValueError(f"{path}: the header's orders {sorted(counts)} are not 1..{top}")
    log10_p: list[dict] = [{} for _ in range(top)]
    log10_backoff: list[dict] = [{} for _ in range(top - 1)]
    for order, gram, p, backoff in _entries(path, lines, counts):
        log10_p[order - 1][gram] = p
        if backoff is not None and order < top and backoff != 0.0 and math.isfinite(backoff):
            log10_backoff[order - 1][gram] = backoff
    return NgramLM(top, log10_p, log10_backoff)
