"""Counting n-grams and smoothing them with interpolated modified Kneser-Ney, as KenLM's ``lmplz``.

The estimate KenLM's ``lmplz`` and SRILM's ``-kndiscount -interpolate`` make (Chen & Goodman
1998, "An empirical study of smoothing techniques for language modeling", §3), written here
because no pip package builds an ARPA file without a C++ compiler (``kenlm`` on PyPI has only
the query side, and only as an sdist). ``lmplz -o N --discount_fallback`` writes the same file
(``tests/lm/assets/``: a real ``lmplz`` run, compared value by value). Counting is in numpy, in
memory: a few arrays of 8 bytes per token and per n-gram type and order, ~170 bytes a word at the
peak (the 790k-word KJV Bible at order 4: 130 MB and 1.5 CPU-s beyond the package's import, see
BENCHMARKS.md); for a web-scale corpus use ``lmplz`` and hand its ARPA file to the decoder.

Every sentence is padded ``<s> w1 ... wn </s>`` (an empty one is ``<s> </s>``, as lmplz counts an
empty line); n-grams never reach before ``<s>``. For an n-gram ``g`` of order ``k``:

* the count ``a(g)`` is the raw count at the highest order ``N``, and below it the *continuation*
  count: how many distinct words precede ``g`` in the corpus (Kneser & Ney 1995). An n-gram
  starting with ``<s>`` has nothing before it and keeps its raw count;
* three discounts per order from the count-of-counts ``n_r`` (how many k-grams have ``a = r``):
  ``Y = n1 / (n1 + 2 n2)``, ``D1 = 1 - 2Y n2/n1``, ``D2 = 2 - 3Y n3/n2``, ``D3+ = 3 - 4Y n4/n3``
  (Chen & Goodman eq. 26). KenLM's rule (``lm/builder/adjust_counts.cc``): they need
  ``n1, n2, n3 > 0`` (``n4 = 0`` gives ``D3+ = 3``) and each ``0 <= D_r <= r``; otherwise the order
  gets :data:`FALLBACK_DISCOUNTS`, logged;
* ``p(w | h) = (a(hw) - D(a(hw))) / sum_v a(hv) + gamma(h) p(w | h')`` with ``h'`` the history
  without its first word and ``gamma(h) = (D1 N1(h.) + D2 N2(h.) + D3+ N3+(h.)) / sum_v a(hv)``,
  ``N_r(h.)`` the number of words after ``h`` with ``a = r`` (``N3+``: at least 3). At order 1
  the lower distribution is uniform over the vocabulary: every word but ``<s>``, plus ``<unk>``,
  which so gets ``gamma() / |V|`` when the corpus never holds it.

Written in ARPA's backoff form, an n-gram seen in the corpus carries its interpolated
``log10 p`` and, as a history, ``log10 gamma``: an unseen ``hw`` is then ``gamma(h) p(w | h')``,
exactly the interpolated value (its own term being 0). ``<s>`` is never predicted; its log10 p is
written 0, as lmplz writes it (SRILM writes -99; no reader uses the value).

The arrays: words get ids in sorted string order, so sorting n-grams by their ids sorts them as
the ARPA file lists them; the k-gram starting at each token position gets an id from
``np.unique`` of ``(id of the (k-1)-gram there) * |V| + (the k-th word)``, which also sorts the
k-grams and gives each its prefix (history) and suffix (the (k-1)-gram one position on) by index.
"""
from __future__ import annotations

import logging
from array import array
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

log = logging.getLogger("ds_w2v.lm")

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
# log10 probability written for <s>, which is only ever a history: lmplz's 0 (SRILM's -99)
BOS_LOG10 = 0.0
# log10 of a probability or back-off weight of exactly 0 (only with a discount of 0: KenLM's
# range allows D_r = 0): ARPA's conventional "impossible"
ZERO_LOG10 = -99.0
# KenLM lmplz --discount_fallback's default D1, D2, D3+: for orders whose count-of-counts cannot
# give discounts (a tiny corpus has no n-gram seen exactly 2 or 3 times at the highest order)
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)

Ngram = tuple[str, ...]


@dataclass
class NgramLM:
    """A smoothed n-gram model in ARPA's backoff form, as dicts (tests, small models, read_arpa)."""

    order: int
    log10_p: list[dict[Ngram, float]]
    """``log10_p[k - 1][g]``: log10 p(last word of g | the words before it) for every k-gram seen."""
    log10_backoff: list[dict[Ngram, float]]
    """``log10_backoff[k - 1][h]``: log10 gamma(h) for every k-gram that is a history (k < order)."""
    discounts: list[tuple[float, float, float]] = field(default_factory=list)
    """(D1, D2, D3+) per order, lowest first."""

    @property
    def vocabulary(self) -> list[str]:
        """The unigrams (``<s>``, ``</s>`` and ``<unk>`` included), sorted."""
        return sorted(g[0] for g in self.log10_p[0])

    def log10_prob(self, word: str, history: Sequence[str] = ()) -> float:
        """log10 p(word | history) by ARPA's backoff rule (an unknown word is ``<unk>``): the
        longest seen n-gram's probability, times the backoff weights of the longer histories."""
        if (word,) not in self.log10_p[0]:
            word = UNK
        history = tuple(history)[-(self.order - 1):] if self.order > 1 else ()
        penalty = 0.0
        while True:
            gram = history + (word,)
            p = self.log10_p[len(gram) - 1].get(gram)
            if p is not None:
                return p + penalty
            penalty += self.log10_backoff[len(history) - 1].get(history, 0.0)
            history = history[1:]


@dataclass
class NgramCounts:
    """Raw counts of every k-gram (k = 1..order) of the padded sentences, as arrays.

    Order 1 lists the whole vocabulary (``<unk>`` always, with count 0 when the text has none);
    order k lists the k-grams seen, sorted as their words' strings sort (ARPA's order here)."""

    vocab: list[str]
    """The words, sorted; a word's id is its index."""
    grams: list[np.ndarray]
    """``grams[k - 1]``: (n_k, k) int32 word ids of the k-grams, lexicographically sorted."""
    raw: list[np.ndarray]
    """``raw[k - 1]``: (n_k,) int64 count of each k-gram."""
    prefix: list[np.ndarray]
    """``prefix[k - 1]``: index into order k - 1 of each k-gram's first k - 1 words (its history); order 1: 0."""
    suffix: list[np.ndarray]
    """``suffix[k - 1]``: index into order k - 1 of each k-gram's last k - 1 words; order 1: 0."""

    @property
    def order(self) -> int:
        return len(self.grams)

    def as_dicts(self) -> list[dict[Ngram, int]]:
        """``{k-gram: raw count}`` per order, for tests and inspection (n-grams seen only)."""
        return [{tuple(self.vocab[i] for i in g): int(n) for g, n in zip(grams.tolist(), raw.tolist()) if n}
                for grams, raw in zip(self.grams, self.raw)]


def _word_ids(sentences: Iterable[Sequence[str]]) -> tuple[list[str], np.ndarray]:
    """(the vocabulary, sorted; the padded token stream as int32 ids into it)."""
    # ids in first-seen order while reading (0 and 1 held for <s> and </s>, which are no word of a
    # sentence: they are not in ``ids``, so meeting one takes the checked path), sorted below
    ids: dict[str, int] = {UNK: 2}
    stream = array("i")  # 4 bytes a token
    lookup = ids.__getitem__
    for words in sentences:
        stream.append(0)
        start = len(stream)
        try:
            stream.extend(map(lookup, words))  # every word known: a C loop
        except KeyError:
            del stream[start:]
            for w in words:
                i = ids.get(w)
                if i is None:
                    if w in (BOS, EOS):
                        raise ValueError(f"a sentence holds {BOS} or {EOS} as a word: {' '.join(words)!r}") from None
                    i = ids[w] = len(ids) + 2
                stream.append(i)
        stream.append(1)
    first_seen = [BOS, EOS, *ids]
    order = sorted(range(len(first_seen)), key=first_seen.__getitem__)
    rank = np.empty(len(order), dtype=np.int32)
    rank[order] = np.arange(len(order), dtype=np.int32)
    return [first_seen[i] for i in order], rank[np.frombuffer(stream, dtype=np.int32)]


def count_ngrams(sentences: Iterable[Sequence[str]], order: int) -> NgramCounts:
    """Raw counts of every k-gram (k = 1..order) of the padded sentences (word lists)."""
    if order < 1:
        raise ValueError(f"order must be >= 1, got {order}")
    vocab, stream = _word_ids(sentences)
    num_words = len(vocab)
    eos = np.flatnonzero(stream == vocab.index(EOS))
    # tokens from each position to its sentence's </s>: the k-gram at i exists iff room >= k - 1
    room = np.repeat(eos, np.diff(eos, prepend=-1)) - np.arange(len(stream))
    grams = [np.arange(num_words, dtype=np.int32)[:, None]]
    raw = [np.bincount(stream, minlength=num_words).astype(np.int64)]
    prefix = [np.zeros(num_words, dtype=np.int64)]
    suffix = [np.zeros(num_words, dtype=np.int64)]
    here = stream.astype(np.int64)  # id of the (k-1)-gram starting at each position (order 1: the word)
    for k in range(2, order + 1):
        if len(raw[-1]) * num_words >= 2 ** 63:
            raise ValueError(f"too many {k - 1}-grams ({len(raw[-1]):,}) x words ({num_words:,}) for 64-bit n-gram keys")
        at = np.flatnonzero(room >= k - 1)  # positions with a k-gram
        keys = here[at] * num_words + stream[at + k - 1]
        _, first, inverse, counts = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
        start = at[first]  # where each k-gram first occurs
        prefix.append(here[start])
        suffix.append(here[start + 1])
        grams.append(np.stack([stream[start + j] for j in range(k)], axis=1))
        raw.append(counts.astype(np.int64))
        here = np.full(len(stream), -1, dtype=np.int64)
        here[at] = inverse.reshape(-1)
    return NgramCounts(vocab, grams, raw, prefix, suffix)


def kneser_ney_counts(counts: NgramCounts) -> list[np.ndarray]:
    """The counts ``a`` smoothing uses, per order: raw at the highest order, continuation counts
    below (distinct left neighbours: (k + 1)-gram types ending in the k-gram), raw for n-grams
    starting with ``<s>`` (they have none)."""
    bos = counts.vocab.index(BOS)
    adjusted = [None] * counts.order
    adjusted[-1] = counts.raw[-1].copy()
    for k in range(counts.order - 1, 0, -1):
        a = np.bincount(counts.suffix[k], minlength=len(counts.raw[k - 1])).astype(np.int64)
        starts_bos = counts.grams[k - 1][:, 0] == bos
        a[starts_bos] = counts.raw[k - 1][starts_bos]
        adjusted[k - 1] = a
    return adjusted


def modified_discounts(counts: Iterable[int] | np.ndarray) -> tuple[float, float, float] | None:
    """(D1, D2, D3+) from the counts of one order (Chen & Goodman eq. 26), or None when the
    count-of-counts cannot give them, by KenLM's rule (``adjust_counts.cc``): some of ``n1, n2, n3``
    is 0, or a ``D_r`` falls outside ``[0, r]``. ``n4 = 0`` is allowed (``D3+ = 3``)."""
    counts = np.asarray(counts if isinstance(counts, np.ndarray) else list(counts), dtype=np.int64)
    n1, n2, n3, n4 = np.bincount(counts[(counts >= 1) & (counts <= 4)], minlength=5)[1:5].tolist()
    if not (n1 and n2 and n3):
        return None
    y = n1 / (n1 + 2 * n2)
    d = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
    if not all(0 <= dr <= r for r, dr in zip((1, 2, 3), d)):
        return None
    return d


@dataclass
class NgramArrays:
    """A smoothed model as arrays, aligned with :class:`NgramCounts`'s n-grams (``write_arpa``
    writes it without building a dict per n-gram)."""

    vocab: list[str]
    grams: list[np.ndarray]
    """``grams[k - 1]``: (n_k, k) word ids, ARPA order."""
    prefix: list[np.ndarray]
    """``prefix[k - 1]``: index into order k - 1 of each k-gram's first k - 1 words."""
    log10_p: list[np.ndarray]
    log10_backoff: list[np.ndarray]
    """``log10_backoff[k - 1]`` (k < order): log10 gamma of each k-gram as a history, 0 (weight 1,
    ARPA's absent value, what lmplz writes) where it is none."""
    discounts: list[tuple[float, float, float]]

    @property
    def order(self) -> int:
        return len(self.grams)

    def to_lm(self) -> NgramLM:
        def name(g):
            return tuple(self.vocab[i] for i in g)

        log10_p = [{name(g): p for g, p in zip(grams.tolist(), lp.tolist())}
                   for grams, lp in zip(self.grams, self.log10_p)]
        # 0 is no back-off (as read_arpa reads it): only the histories are listed
        backoff = [{name(g): b for g, b in zip(grams.tolist(), lb.tolist()) if b != 0.0}
                   for grams, lb in zip(self.grams, self.log10_backoff)]
        return NgramLM(self.order, log10_p, backoff, list(self.discounts))


def _check_discounts(discounts, order: int) -> list[tuple[float, float, float]]:
    ok = len(discounts) == order and all(
        len(d) == 3 and all(0 <= dr <= r for r, dr in zip((1, 2, 3), d)) and any(d) for d in discounts)
    if not ok:
        # KenLM's range; all three 0 leaves no mass to back off with: an unseen word would get p = 0
        raise ValueError(f"discounts: need one (D1, D2, D3+) per order ({order}), each D_r in [0, r] and not all "
                         f"0; got {[tuple(d) for d in discounts]}")
    return [tuple(float(x) for x in d) for d in discounts]


def _log10(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.where(x > 0, np.log10(np.maximum(x, np.finfo(np.float64).tiny)), ZERO_LOG10)


def estimate_arrays(counts: NgramCounts, discounts: Sequence[tuple[float, float, float]] | None = None
                    ) -> NgramArrays:
    """Interpolated modified Kneser-Ney from raw counts (:func:`count_ngrams`), as arrays.
    ``discounts``: (D1, D2, D3+) per order to use instead of estimating them (tests, or a user's
    choice)."""
    order = counts.order
    if len(counts.vocab) <= 3 and not counts.raw[0].sum():
        raise ValueError("no sentences: nothing to count")
    bos = counts.vocab.index(BOS)
    adjusted = kneser_ney_counts(counts)
    not_bos = np.arange(len(counts.vocab)) != bos  # order 1's predicted words
    if discounts is None:
        discounts = []
        for k, a in enumerate(adjusted, start=1):
            d = modified_discounts(a[not_bos] if k == 1 else a)
            if d is None:
                log.warning("order %d: too few n-grams to estimate the discounts from their count-of-counts; "
                            "using %s (KenLM's --discount_fallback)", k, FALLBACK_DISCOUNTS)
                d = FALLBACK_DISCOUNTS
            discounts.append(tuple(d))
    discounts = _check_discounts(discounts, order)

    # the uniform distribution under order 1 is over what can be predicted: every word but <s>
    # (<unk> included, seen or not)
    vocab_size = len(counts.vocab) - 1
    probs: list[np.ndarray] = []  # interpolated p (not log) per order
    gammas: list[np.ndarray] = []  # gamma of order k's histories, indexed by order k - 1's n-grams
    for k in range(1, order + 1):
        d = np.array((0.0, *discounts[k - 1]))  # D(a) = d[min(a, 3)]; a = 0 (unseen <unk>) loses nothing
        a = adjusted[k - 1].astype(np.float64)
        if k == 1:
            a[~not_bos] = 0.0
        history = counts.prefix[k - 1]
        num_histories = 1 if k == 1 else len(counts.raw[k - 2])
        capped = np.minimum(adjusted[k - 1], 3)
        if k == 1:
            capped = np.where(not_bos, capped, 0)
        total = np.bincount(history, weights=a, minlength=num_histories)
        mass = np.bincount(history, weights=d[capped], minlength=num_histories)  # D1 N1 + D2 N2 + D3+ N3+
        with np.errstate(invalid="ignore", divide="ignore"):
            gamma = np.where(total > 0, mass / np.where(total > 0, total, 1.0), np.nan)
        lower = probs[k - 2][counts.suffix[k - 1]] if k > 1 else 1.0 / vocab_size
        p = np.maximum(a - d[capped], 0.0) / total[history] + gamma[history] * lower
        if k == 1:
            p[bos] = 1.0  # never predicted: log10 0, lmplz's value
        probs.append(p)
        gammas.append(gamma)

    log10_p = [_log10(p) for p in probs]
    # gamma of a k-gram history is the back-off weight written on that k-gram (order k + 1's gammas)
    log10_backoff = [np.where(np.isnan(gammas[k]), 0.0, _log10(np.nan_to_num(gammas[k]))) for k in range(1, order)]
    return NgramArrays(counts.vocab, counts.grams, counts.prefix, log10_p, log10_backoff, discounts)


def estimate(counts: NgramCounts, discounts: Sequence[tuple[float, float, float]] | None = None) -> NgramLM:
    """:func:`estimate_arrays`, as dicts."""
    return estimate_arrays(counts, discounts).to_lm()


def build_ngram_lm(sentences: Iterable[Sequence[str]], order: int,
                   discounts: Sequence[tuple[float, float, float]] | None = None) -> NgramLM:
    """Count and smooth in one call: ``sentences`` are word lists (already normalised)."""
    return estimate(count_ngrams(sentences, order), discounts)
