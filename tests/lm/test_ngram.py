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
    counted = count_ngrams(CORPUS, 2)
    raw = counted.as_dicts()
    adjusted = {w: int(n) for w, n in zip(counted.vocab, kneser_ney_counts(counted)[0])}
    assert raw[0][("a",)] == 5 and adjusted["a"] == 3
    assert adjusted == {"a": 3, "b": 2, "c": 1, EOS: 2, BOS: 5, UNK: 0}  # <s>: raw; <unk> listed, unseen
    assert list(kneser_ney_counts(counted)[1]) == list(counted.raw[1])
    assert raw[1][(BOS, "a")] == 3 and sum(raw[1].values()) == 15
    # the arrays list n-grams as the ARPA file does: sorted by their words' strings
    assert list(raw[1]) == sorted(raw[1]) and counted.vocab == sorted(counted.vocab)


def test_an_empty_sentence_is_bos_eos_and_reserved_words_are_refused():
    raw = count_ngrams([["a"], [], []], 2).as_dicts()
    assert raw[1] == {(BOS, "a"): 1, ("a", EOS): 1, (BOS, EOS): 2} and raw[0][(BOS,)] == 3
    with pytest.raises(ValueError, match="holds <s> or </s>"):
        count_ngrams([["a"], ["b", EOS]], 2)


def test_worked_example_probabilities_and_backoffs():
    lm = worked_example()
    got_p1 = {g[0]: 10 ** p for g, p in lm.log10_p[0].items() if g != (BOS,)}
    assert got_p1 == pytest.approx(P1, rel=1e-12)
    assert sum(P1.values()) == pytest.approx(1.0)  # the example itself is a distribution
    assert lm.log10_p[0][(BOS,)] == 0.0  # never predicted; lmplz writes 0
    assert {g: 10 ** p for g, p in lm.log10_p[1].items()} == pytest.approx(P2, rel=1e-12)
    assert {g: 10 ** b for g, b in lm.log10_backoff[0].items()} == pytest.approx(GAMMA2, rel=1e-12)
    # backing off: an unseen bigram is gamma(history) x p(word)
    assert 10 ** lm.log10_prob("c", ["a"]) == pytest.approx(0.4 * P1["c"])  # 0.065
    assert 10 ** lm.log10_prob("zebra", ["b"]) == pytest.approx(0.375 * P1[UNK])  # an unknown word is <unk>


def test_fallback_discounts_when_the_counts_cannot_give_them():
    # order 1's continuation counts a 3, b 2, c 1, </s> 2: n1 1, n2 2, n3 1, n4 0 -> estimable by
    # KenLM's rule (n4 = 0 gives D3+ = 3): Y = 1/5, D1 = 1 - 2Y x 2, D2 = 2 - 3Y / 2.
    # order 2's raw counts 3, 1, 1, 3, 2, 3, 1, 1: n1 4, n2 1, n3 3, Y = 2/3, D2 = 2 - 3Y x 3 = -4 < 0
    # -> KenLM's fallback
    lm = estimate(count_ngrams(CORPUS, 2))
    assert lm.discounts == [pytest.approx((0.2, 1.7, 3.0)), FALLBACK_DISCOUNTS]


def test_modified_discounts_from_count_of_counts():
    # n1 = 10, n2 = 5, n3 = 3, n4 = 2 (counts above 4 do not enter): Y = 10 / (10 + 2 x 5) = 0.5
    counts = [1] * 10 + [2] * 5 + [3] * 3 + [4] * 2 + [7, 9]
    d1, d2, d3 = modified_discounts(counts)
    assert d1 == pytest.approx(1 - 2 * 0.5 * 5 / 10)  # 0.5
    assert d2 == pytest.approx(2 - 3 * 0.5 * 3 / 5)  # 1.1
    assert d3 == pytest.approx(3 - 4 * 0.5 * 2 / 3)  # 1.667
    with pytest.raises(ValueError, match="each D_r in"):
        estimate(count_ngrams(CORPUS, 2), [(0.5, 1.0, 1.5), (0.5, 2.5, 1.5)])


@pytest.mark.parametrize("counts, expected", [
    # KenLM's rule (lm/builder/adjust_counts.cc): n1, n2, n3 > 0 and each 0 <= D_r <= r
    ([1, 1, 2, 3], (0.5, 0.5, 3.0)),  # n4 = 0: Y = 0.5, D3+ = 3 - 0 = 3 (the old rule fell back here)
    ([1, 2, 3, 3, 4], (1 / 3, 0.0, 7 / 3)),  # Y = 1/3, D2 = 2 - 3Y x 2/1 = 0: in range, kept
    ([1, 2, 3, 3, 3], None),  # Y = 1/3, D2 = 2 - 3Y x 3/1 = -1 < 0: fallback
    ([1, 1, 2, 4, 4], None),  # n3 = 0: fallback
])
def test_kenlm_estimability_rule(counts, expected):
    got = modified_discounts(counts)
    assert got == (None if expected is None else pytest.approx(expected))


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


def test_array_and_dict_writers_write_the_same_model(tmp_path):
    """build-lm writes from arrays (blocks of n-grams, text built from prefixes); the dict writer
    is the plain one: read back, both files hold the same n-grams, values and back-offs."""
    import ds_w2v.lm.arpa as arpa
    from ds_w2v.lm.ngram import estimate_arrays

    rng = random.Random(5)
    sentences = [[rng.choice("abcdefg") for _ in range(rng.randint(0, 8))] for _ in range(300)]
    model = estimate_arrays(count_ngrams(sentences, 4))
    old_block, arpa._BLOCK = arpa._BLOCK, 7  # many blocks, each with prefixes spanning a range
    try:
        from_arrays = read_arpa(write_arpa(model, tmp_path / "arrays.arpa"))
    finally:
        arpa._BLOCK = old_block
    from_dicts = read_arpa(write_arpa(model.to_lm(), tmp_path / "dicts.arpa"))
    assert from_arrays.log10_p == from_dicts.log10_p and from_arrays.log10_backoff == from_dicts.log10_backoff
    assert len(from_arrays.log10_p[3]) > 50
