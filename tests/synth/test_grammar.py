"""The sentence grammar: deterministic, distinct, TIMIT-like lengths, a real vocabulary."""
import re

from ds_w2v.synth import lexicon as lx
from ds_w2v.synth.grammar import MAX_WORDS, MIN_WORDS, SA_SENTENCES, distinct_sentences, words_of


def test_deterministic_in_seed():
    assert distinct_sentences(200, seed=3) == distinct_sentences(200, seed=3)
    assert distinct_sentences(200, seed=3) != distinct_sentences(200, seed=4)


def test_distinct_well_formed_and_varied():
    sentences = distinct_sentences(3000, seed=0)
    assert len(set(sentences)) == 3000
    assert not set(sentences) & set(SA_SENTENCES)
    for s in sentences:
        assert MIN_WORDS <= len(s.split()) <= MAX_WORDS, s
        assert s[0].isupper() and s[-1] in ".?!", s
        assert re.fullmatch(r"[A-Za-z ,'.?!]+", s), s
    vocab = {w for s in sentences for w in words_of(s)}
    assert len(vocab) > 1200  # a real vocabulary, not a handful of words
    assert len(lx.vocabulary()) > 1000


def test_exclude():
    first = distinct_sentences(50, seed=1)
    more = distinct_sentences(50, seed=1, exclude=set(first))
    assert not set(first) & set(more)


def test_inflection():
    assert [lx.plural(w) for w in ("box", "baby", "child", "knife", "bread", "dog")] == [
        "boxes", "babies", "children", "knives", "bread", "dogs"]
    assert [lx.past(w) for w in ("carry", "stop", "bake", "buy", "walk")] == [
        "carried", "stopped", "baked", "bought", "walked"]
    assert [lx.gerund(w) for w in ("make", "run", "see", "carry")] == ["making", "running", "seeing", "carrying"]
    assert lx.third_person("watch") == "watches" and lx.third_person("carry") == "carries"
    assert lx.article("apple") == "an" and lx.article("pear") == "a" and lx.article("hour") == "an"


def test_words_of_matches_timit_wrd_convention():
    assert words_of("Don't ask me, Anna!") == ["don't", "ask", "me", "anna"]
