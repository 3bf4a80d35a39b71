"""Counting n-grams and smoothing them with interpolated modified Kneser-Ney.

The estimate KenLM's ``lmplz`` and SRILM's ``-kndiscount -interpolate`` make (Chen & Goodman
1998, "An empirical study of smoothing techniques for language modeling", §3), written here
because no pip package builds an ARPA file without a C++ compiler (``kenlm`` on PyPI has only
the query side, and only as an sdist). It is meant for transcript-sized corpora (all counts are
Python dicts: ~1 GB per 10M n-gram types); for a web-scale corpus use ``lmplz`` and hand its
ARPA file to the decoder.

Every sentence is padded ``<s> w1 ... wn </s>``; n-grams never reach before ``<s>``. For an
n-gram ``g`` of order ``k``:

* the count ``a(g)`` is the raw count at the highest order ``N``, and below it the *continuation*
  count: how many distinct words precede ``g`` in the corpus (Kneser & Ney 1995). An n-gram
  starting with ``<s>`` has nothing before it and keeps its raw count;
* three discounts per order from the count-of-counts ``n_r`` (how many k-grams have ``a = r``):
  ``Y = n1 / (n1 + 2 n2)``, ``D1 = 1 - 2Y n2/n1``, ``D2 = 2 - 3Y n3/n2``, ``D3+ = 3 - 4Y n4/n3``
  (Chen & Goodman eq. 26). A corpus too small for them (some ``n_r`` = 0, or a ``D_r`` outside
  ``(0, r)``) gets :data:`FALLBACK_DISCOUNTS` for that order, logged;
* ``p(w | h) = (a(hw) - D(a(hw))) / sum_v a(hv) + gamma(h) p(w | h')`` with ``h'`` the history
  without its first word and ``gamma(h) = (D1 N1(h.) + D2 N2(h.) + D3+ N3+(h.)) / sum_v a(hv)``,
  ``N_r(h.)`` the number of words after ``h`` with ``a = r`` (``N3+``: at least 3). At order 1
  the lower distribution is uniform over the vocabulary: every word but ``<s>``, plus ``<unk>``,
  which so gets ``gamma() / |V|``.

Written in ARPA's backoff form, an n-gram seen in the corpus carries its interpolated
``log10 p`` and, as a history, ``log10 gamma``: an unseen ``hw`` is then ``gamma(h) p(w | h')``,
exactly the interpolated value (its own term being 0). ``<s>`` is never predicted: ``-99``.
"""
from __future__ import annotations

import logging
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Sequence

log = logging.getLogger("ds_w2v.lm")

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
# log10 probability written for <s>, which is only ever a history (SRILM's and KenLM's -99)
NEVER_LOG10 = -99.0
# KenLM lmplz --discount_fallback's default D1, D2, D3+: for orders whose count-of-counts cannot
# give discounts (a small corpus has no n-gram seen exactly 3 or 4 times at the highest order)
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)

Ngram = tuple[str, ...]


@dataclass
class NgramLM:
    """A smoothed n-gram model in ARPA's backoff form."""

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


def pad(words: Sequence[str]) -> Ngram:
    return (BOS, *words, EOS)


def count_ngrams(sentences: Iterable[Sequence[str]], order: int) -> list[Counter]:
    """Raw counts of every k-gram (k = 1..order) of the padded sentences, ``counts[k - 1]``."""
    if order < 1:
        raise ValueError(f"order must be >= 1, got {order}")
    counts = [Counter() for _ in range(order)]
    for words in sentences:
        if any(w in (BOS, EOS) for w in words):
            raise ValueError(f"a sentence holds {BOS} or {EOS} as a word: {' '.join(words)!r}")
        padded = pad(words)
        for k in range(1, order + 1):
            c = counts[k - 1]
            for i in range(len(padded) - k + 1):
                c[padded[i:i + k]] += 1
    return counts


def kneser_ney_counts(raw: list[Counter]) -> list[Counter]:
    """The counts ``a`` smoothing uses: raw at the highest order, continuation counts below
    (distinct left neighbours), raw for n-grams starting with ``<s>`` (they have none)."""
    order = len(raw)
    adjusted = [Counter() for _ in range(order)]
    adjusted[-1] = Counter(raw[-1])
    for k in range(order - 1, 0, -1):  # k-grams from the distinct (k + 1)-grams ending in them
        a = adjusted[k - 1]
        for longer in raw[k]:
            a[longer[1:]] += 1
        for gram, n in raw[k - 1].items():
            if gram[0] == BOS:
                a[gram] = n
    return adjusted


def modified_discounts(counts: Iterable[int]) -> tuple[float, float, float] | None:
    """(D1, D2, D3+) from the counts of one order (Chen & Goodman eq. 26), or None when the
    count-of-counts cannot give them: some ``n_r`` (r = 1..4) is 0, or a ``D_r`` falls outside
    ``(0, r)``."""
    n = Counter(c for c in counts if c <= 4)
    n1, n2, n3, n4 = (n[r] for r in (1, 2, 3, 4))
    if not (n1 and n2 and n3 and n4):
        return None
    y = n1 / (n1 + 2 * n2)
    d = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
    if not all(0 < dr < r for r, dr in zip((1, 2, 3), d)):
        return None
    return d


def estimate(raw: list[Counter], discounts: Sequence[tuple[float, float, float]] | None = None) -> NgramLM:
    """Interpolated modified Kneser-Ney from raw counts (:func:`count_ngrams`). ``discounts``:
    (D1, D2, D3+) per order to use instead of estimating them (tests, or a user's choice)."""
    order = len(raw)
    if not raw[0]:
        raise ValueError("no sentences: nothing to count")
    adjusted = kneser_ney_counts(raw)
    if discounts is None:
        discounts = []
        for k, a in enumerate(adjusted, start=1):
            d = modified_discounts(n for g, n in a.items() if g != (BOS,))
            if d is None:
                log.warning("order %d: too few n-grams to estimate the discounts from their count-of-counts; "
                            "using %s (KenLM's --discount_fallback)", k, FALLBACK_DISCOUNTS)
                d = FALLBACK_DISCOUNTS
            discounts.append(tuple(d))
    elif len(discounts) != order or not all(len(d) == 3 and all(0 < dr < r for r, dr in zip((1, 2, 3), d))
                                            for d in discounts):
        # a zero discount leaves no mass to back off with: an unseen word would get p = 0
        raise ValueError(f"discounts: need one (D1, D2, D3+) per order ({order}), each D_r in (0, r); got "
                         f"{[tuple(d) for d in discounts]}")

    # the vocabulary of the uniform distribution under order 1: what can be predicted
    vocab_size = len([g for g in adjusted[0] if g != (BOS,)]) + (0 if (UNK,) in adjusted[0] else 1)
    probs: list[dict[Ngram, float]] = []  # interpolated p (not log) per order
    gammas: list[dict[Ngram, float]] = []  # gamma(history) of order k's histories
    for k in range(1, order + 1):
        d1, d2, d3 = discounts[k - 1]
        by_history: dict[Ngram, list[tuple[Ngram, int]]] = defaultdict(list)
        for gram, a in adjusted[k - 1].items():
            if gram != (BOS,):
                by_history[gram[:-1]].append((gram, a))
        p_k: dict[Ngram, float] = {}
        gamma_k: dict[Ngram, float] = {}
        for history, grams in by_history.items():
            total = sum(a for _, a in grams)
            n_r = Counter(min(a, 3) for _, a in grams)
            gamma = (d1 * n_r[1] + d2 * n_r[2] + d3 * n_r[3]) / total
            gamma_k[history] = gamma
            for gram, a in grams:
                discounted = max(a - (d1 if a == 1 else d2 if a == 2 else d3), 0.0) / total
                lower = probs[k - 2][gram[1:]] if k > 1 else 1.0 / vocab_size
                p_k[gram] = discounted + gamma * lower
        if k == 1 and (UNK,) not in p_k:
            p_k[(UNK,)] = gamma_k[()] / vocab_size
        probs.append(p_k)
        gammas.append(gamma_k)

    log10_p = [{g: math.log10(p) for g, p in p_k.items()} for p_k in probs]
    log10_p[0][(BOS,)] = NEVER_LOG10
    # gamma of a k-gram history is the backoff weight written on that k-gram (order k + 1's gammas)
    log10_backoff = [{h: math.log10(g) for h, g in gammas[k].items() if g > 0} for k in range(1, order)]
    return NgramLM(order, log10_p, log10_backoff, [tuple(d) for d in discounts])


def build_ngram_lm(sentences: Iterable[Sequence[str]], order: int,
                   discounts: Sequence[tuple[float, float, float]] | None = None) -> NgramLM:
    """Count and smooth in one call: ``sentences`` are word lists (already normalised)."""
    return estimate(count_ngrams(sentences, order), discounts)
