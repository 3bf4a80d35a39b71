"""``ds-w2v build-lm`` writes what KenLM's ``lmplz`` writes: against a real ``lmplz`` run
(``tests/lm/assets/lmplz_small/``, its README has the command and KenLM version) on a corpus where
the estimability rules of the discounts matter and with an empty line, value by value."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from ds_w2v import cli
from ds_w2v.lm.arpa import read_arpa
from ds_w2v.lm.ngram import BOS, EOS, count_ngrams, estimate

ASSET = Path(__file__).parent / "assets" / "lmplz_small"
# lmplz's stderr "Statistics" for this corpus: (D1, D2, D3+) per order, printed to 6 digits
LMPLZ_DISCOUNTS = [(0.546667, 0.649412, 1.59429), (0.792683, 1.09075, 2.5122), (0.932292, 0.924279, 3.0),
                   (0.5, 1.0, 1.5)]
# lmplz computes in float32 (~7 significant digits) and both write 7-8 digits: 1e-5 in log10 p
# is a relative 2.3e-5 in p, well above that rounding and far below any smoothing difference
# (the old rule: 0.83)
TOLERANCE = 1e-5


def perplexity(lm, lines: list[str]) -> float:
    total = count = 0
    for line in lines:
        history = [BOS]
        for word in line.split() + [EOS]:
            total += lm.log10_prob(word, history)
            history.append(word)
            count += 1
    return 10 ** (-total / count)


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    out = tmp_path_factory.mktemp("lm") / "build_lm.arpa"
    assert cli.main(["build-lm", str(ASSET / "corpus.txt"), "--order", "4", "--out", str(out)]) == 0
    return read_arpa(ASSET / "lmplz.arpa"), read_arpa(out)


def test_build_lm_writes_the_ngrams_and_values_lmplz_writes(both):
    kenlm, ours = both
    assert ours.order == kenlm.order == 4
    for k in range(4):
        assert set(ours.log10_p[k]) == set(kenlm.log10_p[k]), f"{k + 1}-grams differ"
        worst = max(abs(p - kenlm.log10_p[k][g]) for g, p in ours.log10_p[k].items())
        assert worst < TOLERANCE, f"{k + 1}-grams: max |dlog10 p| {worst:.3g}"
    for k in range(3):  # back-off weights; absent is 0 (lmplz writes 0 on n-grams that are no history)
        worst = max(abs(ours.log10_backoff[k].get(g, 0.0) - kenlm.log10_backoff[k].get(g, 0.0))
                    for g in kenlm.log10_p[k])
        assert worst < TOLERANCE, f"{k + 1}-gram back-offs: max |dlog10| {worst:.3g}"
    assert ours.log10_p[0][(BOS,)] == kenlm.log10_p[0][(BOS,)] == 0.0  # <s>: never predicted, written 0
    assert (BOS, EOS) in ours.log10_p[1]  # the empty line, counted <s> </s>


def test_discounts_follow_kenlm_estimability_rule():
    """The 3-grams have no adjusted count of 4: KenLM estimates D3+ = 3 there (n1, n2, n3 > 0,
    0 <= D <= r); the 4-grams have no count of 3: both fall back to (0.5, 1, 1.5)."""
    lines = (ASSET / "corpus.txt").read_text().splitlines()
    lm = estimate(count_ngrams([line.split() for line in lines], 4))
    for got, expected in zip(lm.discounts, LMPLZ_DISCOUNTS):
        assert got == pytest.approx(expected, rel=1e-5)


def test_same_perplexity_as_lmplz(both):
    kenlm, ours = both
    lines = (ASSET / "corpus.txt").read_text().splitlines()
    ppl_kenlm, ppl_ours = perplexity(kenlm, lines), perplexity(ours, lines)
    assert math.isfinite(ppl_ours) and ppl_ours == pytest.approx(ppl_kenlm, rel=1e-5)
