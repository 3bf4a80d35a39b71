"""Interpolated modified Kneser-Ney (``ds_w2v/lm/ngram.py``) against a worked example by hand, and
the ARPA file it writes (``ds_w2v/lm/arpa.py``) read back by KenLM (flashlight-text's loader)."""
from __future__ import annotations

import math
import random

import pytest

from ds_w2v.lm.arpa import read_arpa, read_vocabulary, write_arpa
from ds_w2v.lm.ngram import (BOS, EOS, FALLBACK_DISCOUNTS, UNK, build_ngram_lm, count_ngrams, estimate,
                             kneser_ney_counts, modified_discounts)

# The worked example: five sentences, order 2.
#   <s> a b </s> | <s> b a b </s> | <s> a </s> | <s> c a </s> | <s> a b </s>
CORPUS = [["a", "b"], ["b", "a", "b"], ["a"], ["c", "a"], ["a", "b"]]
# D1, D2, D3+ given, order 1 then order 2 (unequal, so a mix-up of orders or counts shows)
DISCOUNTS = [(0.5, 1.0, 1.5), (0.3, 0.8, 1.2)]

# Order 1 uses continuation counts, the number of distinct words before each word:
#   a: {<s>, b, c} = 3 (its raw count is 5)   b: {<s>, a} = 2   c: {<s>} = 1   </s>: {b, a} = 2
# sum 8; the uniform floor is over |V| = 5 (a, b, c, </s>, <unk>; never <s>).
#   gamma() = (D1 N1 + D2 N2 + D3+ N3+) / 8 = (0.5 x 1 + 1.0 x 2 + 1.5 x 1) / 8 = 0.5
P1 = {
    "a": (3 - 1.5) / 8 + 0.5 / 5,  # 0.2875
    "b": (2 - 1.0) / 8 + 0.5 / 5,  # 0.225
    "c": (1 - 0.5) / 8 + 0.5 / 5,  # 0.1625
    EOS: (2 - 1.0) / 8 + 0.5 / 5,  # 0.225
    UNK: 0.5 / 5,  # 0.1
}
# Order 2 (the highest) uses raw counts:
#   <s> a 3, <s> b 1, <s> c 1 | a b 3, a </s> 2 | b </s> 3, b a 1 | c a 1
GAMMA2 = {
    (BOS,): (0.3 * 2 + 1.2 * 1) / 5,  # N1 = 2 (b, c), N3+ = 1 (a), of 5: 0.36
    ("a",): (0.8 * 1 + 1.2 * 1) / 5,  # N2 = 1 (</s>), N3+ = 1 (b), of 5: 0.4
    ("b",): (0.3 * 1 + 1.2 * 1) / 4,  # N1 = 1 (a), N3+ = 1 (</s>), of 4: 0.375
    ("c",): (0.3 * 1) / 1,  # N1 = 1 (a), of 1: 0.3
}
P2 = {
    (BOS, "a"): (3 - 1.2) / 5 + 0.36 * P1["a"],  # 0.4635
    (BOS, "b"): (1 - 0.3) / 5 + 0.36 * P1["b"],  # 0.221
    (BOS, "c"): (1 - 0.3) / 5 + 0.36 * P1["c"],  # 0.1985
    ("a", "b"): (3 - 1.2) / 5 + 0.4 * P1["b"],  # 0.45
    ("a", EOS): (2 - 0.8) / 5 + 0.4 * P1[EOS],  # 0.33
    ("b", EOS): (3 - 1.2) / 4 + 0.375 * P1[EOS],  # 0.534375
    ("b", "a"): (1 - 0.3) / 4 + 0.375 * P1["a"],  # 0.2828125
    ("c", "a"): (1 - 0.3) / 1 + 0.3 * P1["a"],  # 0.78625
}


def worked_example():
    return estimate(count_ngrams(CORPUS, 2), DISCOUNTS)


def test_continuation_counts():
    raw = count_ngrams(CORPUS, 2)
    adjusted = kneser_ney_counts(raw)
    assert raw[0][("a",)] == 5 and adjusted[0][("a",)] == 3
    assert {g[0]: n for g, n in adjusted[0].items()} == {"a": 3, "b": 2, "c": 1, EOS: 2, BOS: 5}  # <s>: raw
    assert adjusted[1] == raw[1] and raw[1][(BOS, "a")] == 3 and sum(raw[1].values()) == 15


def test_worked_example_probabilities_and_backoffs():
    lm = worked_example()
    got_p1 = {g[0]: 10 ** p for g, p in lm.log10_p[0].items() if g != (BOS,)}
    assert got_p1 == pytest.approx(P1, rel=1e-12)
    assert sum(P1.values()) == pytest.approx(1.0)  # the example itself is a distribution
    assert lm.log10_p[0][(BOS,)] == -99.0  # never predicted
    assert {g: 10 ** p for g, p in lm.log10_p[1].items()} == pytest.approx(P2, rel=1e-12)
    assert {g: 10 ** b for g, b in lm.log10_backoff[0].items()} == pytest.approx(GAMMA2, rel=1e-12)
    # backing off: an unseen bigram is gamma(history) x p(word)
    assert 10 ** lm.log10_prob("c", ["a"]) == pytest.approx(0.4 * P1["c"])  # 0.065
    assert 10 ** lm.log10_prob("zebra", ["b"]) == pytest.approx(0.375 * P1[UNK])  # an unknown word is <unk>


def test_fallback_discounts_when_the_counts_cannot_give_them():
    # no n-gram of this corpus has a count of 4 (n4 = 0) at either order: KenLM's fallback
    lm = estimate(count_ngrams(CORPUS, 2))
    assert lm.discounts == [FALLBACK_DISCOUNTS, FALLBACK_DISCOUNTS]


def test_modified_discounts_from_count_of_counts():
    # n1 = 10, n2 = 5, n3 = 3, n4 = 2 (counts above 4 do not enter): Y = 10 / (10 + 2 x 5) = 0.5
    counts = [1] * 10 + [2] * 5 + [3] * 3 + [4] * 2 + [7, 9]
    d1, d2, d3 = modified_discounts(counts)
    assert d1 == pytest.approx(1 - 2 * 0.5 * 5 / 10)  # 0.5
    assert d2 == pytest.approx(2 - 3 * 0.5 * 3 / 5)  # 1.1
    assert d3 == pytest.approx(3 - 4 * 0.5 * 2 / 3)  # 1.667
    assert modified_discounts([1, 1, 2, 3]) is None  # n4 = 0
    with pytest.raises(ValueError, match="each D_r in"):
        estimate(count_ngrams(CORPUS, 2), [(0.5, 1.0, 1.5), (0.0, 1.0, 1.5)])


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_every_history_is_a_distribution(order, tmp_path):
    """After the ARPA round trip, p(. | h) sums to 1 over the vocabulary for every history the
    model knows and for unseen ones (by back-off): the smoothing leaks no mass and makes none."""
    rng = random.Random(order)
    words = "the cat sat on a mat dog ran".split()
    sentences = [[rng.choice(words[: rng.randint(2, 8)]) for _ in range(rng.randint(1, 9))] for _ in range(400)]
    lm = read_arpa(write_arpa(build_ngram_lm(sentences, order), tmp_path / "lm.arpa"))
    vocab = [w for w in lm.vocabulary if w != BOS]
    histories = [()] + [g for k in range(order - 1) for g in lm.log10_p[k] if g[-1] != EOS] + [("zzz",), (BOS, "zzz")]
    worst = max(abs(sum(10 ** lm.log10_prob(w, h) for w in vocab) - 1) for h in histories)
    assert worst < 1e-5  # 7 significant digits in the file


def test_arpa_round_trip_and_kenlm_reads_it(tmp_path):
    """KenLM (flashlight-text's loader, what the beam search uses) scores the worked example's
    file with the hand-computed probabilities, seen bigrams and backed-off ones alike."""
    kenlm = pytest.importorskip("flashlight.lib.text.decoder.kenlm")
    from flashlight.lib.text.dictionary import Dictionary

    path = write_arpa(worked_example(), tmp_path / "example.arpa")
    text = path.read_text()
    assert text.startswith("\\data\\\nngram 1=6\nngram 2=8\n") and text.endswith("\\end\\\n")
    again = read_arpa(path)
    assert {g: 10 ** p for g, p in again.log10_p[1].items()} == pytest.approx(P2, rel=1e-6)
    assert set(read_vocabulary(path)) == {BOS, EOS, UNK, "a", "b", "c"}

    words = Dictionary()
    for w in ("a", "b", "c", "zebra"):
        words.add_entry(w)
    lm = kenlm.KenLM(str(path), words)

    def score(sentence):
        state, total = lm.start(False), 0.0
        for w in sentence:
            state, s = lm.score(state, words.get_index(w))
            total += s
        return total + lm.finish(state)[1]  # log10

    assert score(["a", "b"]) == pytest.approx(math.log10(P2[BOS, "a"] * P2["a", "b"] * P2["b", EOS]), abs=1e-5)
    # c b: p(b | c) unseen -> gamma(c) p(b); zebra: out of the vocabulary -> gamma(a) p(<unk>)
    assert score(["c", "b"]) == pytest.approx(math.log10(P2[BOS, "c"] * 0.3 * P1["b"] * P2["b", EOS]), abs=1e-5)
    assert score(["a", "zebra"]) == pytest.approx(
        math.log10(P2[BOS, "a"] * GAMMA2["a",] * P1[UNK] * P1[EOS]), abs=1e-5)


@pytest.mark.parametrize("text, says", [
    ("", "empty file"),
    ("\\data\\\nngram 1=2\n\n\\1-grams:\n-1\ta\n\n\\end\\\n", "the 1-grams section has 1 entries"),
    ("\\data\\\nngram 1=1\n\n\\1-grams:\n-1\ta\n", "ends without \\\\end\\\\"),
    ("hello\n", "not an ARPA file"),
    (b"ggml\x00\xff\xfe binary", "not UTF-8"),
])
def test_bad_arpa_is_one_line_naming_the_file(text, says, tmp_path):
    path = tmp_path / "bad.arpa"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ValueError, match=says) as e:
        read_arpa(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
