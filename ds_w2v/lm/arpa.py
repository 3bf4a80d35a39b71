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
        if isinstance(lm, NgramArrays):
            _write_arrays(f, lm)
        else:
            _write_dicts(f, lm)
        f.write("\n\\end\\\n")
    os.replace(tmp, path)
    return path


def _write_dicts(f, lm: NgramLM) -> None:
    for k in range(1, lm.order + 1):
        f.write(f"\n\\{k}-grams:\n")
        backoffs = lm.log10_backoff[k - 1] if k < lm.order else {}
        for gram in sorted(lm.log10_p[k - 1]):
            line = f"{_number(lm.log10_p[k - 1][gram])}\t{' '.join(gram)}"
            if gram in backoffs:
                line += f"\t{_number(backoffs[gram])}"
            f.write(line + "\n")


# lines formatted and written per block of n-grams: the text of a whole order at once would cost
# ~80 bytes per n-gram (the KJV Bible's 570k 4-grams and 400k 3-grams: ~80 MB, a third of lmplz's
# whole footprint)
_BLOCK = 65536


def _texts(lm: NgramArrays, k: int, lo: int, hi: int) -> list[str]:
    """The words of k-grams ``lo..hi-1`` as text. Sorted k-grams have non-decreasing prefixes, so
    a block's prefixes are one contiguous range of (k-1)-grams, made the same way."""
    if k == 1:
        return lm.vocab[lo:hi]
    prefix = lm.prefix[k - 1][lo:hi]
    first = int(prefix[0])
    heads = _texts(lm, k - 1, first, int(prefix[-1]) + 1)
    last = map(lm.vocab.__getitem__, lm.grams[k - 1][lo:hi, -1].tolist())
    return list(map(" ".join, zip(map(heads.__getitem__, (prefix - first).tolist()), last)))


def _write_arrays(f, lm: NgramArrays) -> None:
    """The sections of an array model, its n-grams already in ARPA's sorted order. Every n-gram
    below the top order gets a back-off (0 where it is no history), as lmplz writes them."""
    for k in range(1, lm.order + 1):
        f.write(f"\n\\{k}-grams:\n")
        # one %-format a line, mapped in C: str.format per number was a third of the writing time
        line = "%.7g\t%s\t%.7g\n" if k < lm.order else "%.7g\t%s\n"
        n = len(lm.grams[k - 1])
        for lo in range(0, n, _BLOCK):
            hi = min(lo + _BLOCK, n)
            columns = [lm.log10_p[k - 1][lo:hi].tolist(), _texts(lm, k, lo, hi)]
            if k < lm.order:
                columns.append(lm.log10_backoff[k - 1][lo:hi].tolist())
            f.write("".join(map(line.__mod__, zip(*columns))))


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
