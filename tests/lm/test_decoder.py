"""Beam search with an n-gram LM (``ds_w2v/lm/decoder.py``) on emission matrices built by hand,
and the one-line refusals (no flashlight-text, no LM file, a phone model)."""
from __future__ import annotations

import sys

import pytest
import torch

from ds_w2v import cli
from ds_w2v.lm.arpa import write_arpa
from ds_w2v.lm.corpus import sentence_tokens
from ds_w2v.lm.decoder import DecodingConfig, GreedyDecoder, build_decoder
from ds_w2v.lm.ngram import build_ngram_lm
from ds_w2v.text import PAD, CharVocab

VOCAB = CharVocab.build(["abcdefghijklmnopqrstuvwxyz"])
# "cut" is a word of the LM, but never after "the": the LM, not the lexicon, must choose "cat"
TEXTS = ["the cat sat"] * 5 + ["a cut bled"] * 5 + ["the dog ran"] * 3


def emissions(frames: list[dict[str, float]]) -> torch.Tensor:
    """ln-probabilities [1, T, V]: each frame's named tokens get their probability, the blank the
    rest (minus a 1e-3 floor on every other token)."""
    rows = []
    for frame in frames:
        p = torch.full((len(VOCAB),), 1e-3)
        for token, q in frame.items():
            p[VOCAB.tokens.index(token)] = q
        p[0] += max(0.0, 1.0 - float(p.sum()))
        rows.append(p / p.sum())
    return torch.stack(rows).log()[None]


def spoken(text: str, ambiguous: dict[str, dict[str, float]]) -> torch.Tensor:
    """One confident frame per character of ``text`` ("|" between words), a blank frame after
    each; the frame of character position i is ``ambiguous[str(i)]`` when given."""
    frames = []
    for i, c in enumerate(text.replace(" ", "|")):
        frames.append(ambiguous.get(str(i), {c: 0.95}))
        frames.append({PAD: 0.95})
    return emissions(frames)


# "the cat sat" where the acoustics prefer u over a in "cat" (0.5 vs 0.4): greedy writes "cut"
CAT_HEARD_AS_CUT = spoken("the cat sat", {"5": {"u": 0.5, "a": 0.4}})


@pytest.fixture(scope="module")
def lms(tmp_path_factory):
    pytest.importorskip("flashlight.lib.text.decoder")
    root = tmp_path_factory.mktemp("lm")
    word = write_arpa(build_ngram_lm([sentence_tokens(t, "word") for t in TEXTS], 3), root / "word.arpa")
    char = write_arpa(build_ngram_lm([sentence_tokens(t, "char") for t in TEXTS], 6), root / "char.arpa")
    return {"word": word, "char": char}


def decode(lm, emission, **weights):
    decoder = build_decoder(DecodingConfig(decoder="beam", lm=str(lm), **weights), VOCAB)
    return decoder.decode(emission, torch.tensor([emission.shape[1]]))[0]


@pytest.mark.parametrize("kind", ["word", "char"])
def test_the_lm_fixes_what_greedy_gets_wrong(kind, lms):
    lengths = torch.tensor([CAT_HEARD_AS_CUT.shape[1]])
    assert GreedyDecoder(VOCAB).decode(CAT_HEARD_AS_CUT, lengths) == ["the cut sat"]
    # without the LM the search agrees with the acoustics ("cut" is in the lexicon) ...
    assert decode(lms[kind], CAT_HEARD_AS_CUT, lm_weight=0.0, word_score=0.0) == "the cut sat"
    # ... with it, "the cat sat" wins
    assert decode(lms[kind], CAT_HEARD_AS_CUT, lm_weight=2.0, word_score=0.0) == "the cat sat"


def test_clear_acoustics_are_kept_and_with_weights_shares_the_lm(lms):
    clear = spoken("a cut bled", {})
    decoder = build_decoder(DecodingConfig(decoder="beam", lm=str(lms["word"]), lm_weight=0.0, word_score=0.0), VOCAB)
    heavy = decoder.with_weights(2.0, 0.0)
    assert heavy._lm is decoder._lm and heavy._trie is decoder._trie  # no reload
    one = torch.tensor([clear.shape[1]])
    assert decoder.decode(clear, one) == heavy.decode(clear, one) == ["a cut bled"]
    cut = torch.tensor([CAT_HEARD_AS_CUT.shape[1]])
    assert decoder.decode(CAT_HEARD_AS_CUT, cut) == ["the cut sat"]
    assert heavy.decode(CAT_HEARD_AS_CUT, cut) == ["the cat sat"]
    assert heavy.describe() == {"decoder": "beam", "lm": str(lms["word"]), "lm_kind": "word", "beam": 50,
                                "lm_weight": 2.0, "word_score": 0.0, "beam_threshold": 25.0}


def test_word_lm_writes_only_its_words_and_char_lm_any(lms):
    # "the bat sat": "bat" is no word of the LM
    bat = spoken("the bat sat", {})
    words = decode(lms["word"], bat, lm_weight=0.5, word_score=0.0).split()
    assert words and set(words) <= {w for t in TEXTS for w in t.split()}
    assert decode(lms["char"], bat, lm_weight=0.5, word_score=0.0) == "the bat sat"


def test_a_batch_decodes_each_row_to_its_own_length(lms):
    a, b = spoken("the dog ran", {}), spoken("a cut bled", {})
    batch = torch.zeros(2, max(a.shape[1], b.shape[1]), len(VOCAB))
    batch[0, : a.shape[1]], batch[1, : b.shape[1]] = a[0], b[0]
    batch[1, b.shape[1]:, VOCAB.tokens.index("x")] = 50.0  # padding frames that would write x
    decoder = build_decoder(DecodingConfig(decoder="beam", lm=str(lms["char"]), lm_weight=1.0), VOCAB)
    assert decoder.decode(batch, torch.tensor([a.shape[1], b.shape[1]])) == ["the dog ran", "a cut bled"]


def test_without_flashlight_beam_is_one_line_naming_the_extra(monkeypatch, tmp_path, capsys):
    lm = tmp_path / "lm.arpa"
    write_arpa(build_ngram_lm([["a", "b"]], 2), lm)
    # every flashlight module "not importable" (None in sys.modules), also those already imported
    for name in ["flashlight", *(m for m in sys.modules if m.startswith("flashlight."))]:
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ValueError, match=r"flashlight-text, which is not installed .*: pip install \.\[lm\]"):
        build_decoder(DecodingConfig(decoder="beam", lm=str(lm)), VOCAB)
    # greedy needs nothing
    assert build_decoder(DecodingConfig(), VOCAB).decode(spoken("ab", {}), torch.tensor([4])) == ["ab"]
    # the command line: one line on stderr, exit 1, before any model is read
    assert cli.main(["transcribe", str(tmp_path / "no_model.pt"), str(tmp_path / "a.wav"), "--decoder", "beam",
                     "--lm", str(lm)]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.endswith("pip install .[lm]")
    # a recipe's decoding.* the same, when the config loads
    from ds_w2v.train.config import load_config

    with pytest.raises(ValueError, match=r"pip install \.\[lm\]"):
        load_config(None, ["data.shards=x", "task=ctc", "decoding.decoder=beam", f"decoding.lm={lm}"])


@pytest.mark.parametrize("overrides, says", [
    (["decoding.decoder=viterbi"], "config key decoding.decoder: 'viterbi' is not one of greedy, beam"),
    (["decoding.decoder=beam"], "config key decoding.lm: decoder beam needs an ARPA language model"),
    (["decoding.decoder=beam", "decoding.lm=missing.arpa"], "config key decoding.lm: missing.arpa: no such file"),
    (["decoding.beam=0"], "config key decoding.beam: must be >= 1"),
    (["decoding.lm_weight=.nan"], "config key decoding.lm_weight: must be a finite number"),
])
def test_bad_decoding_config_names_the_key(overrides, says):
    from ds_w2v.train.config import load_config

    with pytest.raises(ValueError, match="^" + says.replace(".", r"\.").replace("(", r"\(")):
        load_config(None, ["data.shards=x", "task=ctc", *overrides])


def test_transcribe_names_the_option(tmp_path, capsys):
    assert cli.main(["transcribe", str(tmp_path / "m.pt"), str(tmp_path / "a.wav"), "--decoder", "beam"]) == 1
    assert capsys.readouterr().err.strip() == ("ds-w2v transcribe: error: --lm: decoder beam needs an ARPA language "
                                               "model (ds-w2v build-lm TEXT --out lm.arpa)")
    # a decoding.KEY=value item is named as the trainer names it; another section is refused
    assert cli.main(["transcribe", str(tmp_path / "m.pt"), str(tmp_path / "a.wav"), "decoding.beam=0"]) == 1
    assert capsys.readouterr().err.strip() == "ds-w2v transcribe: error: config key decoding.beam: must be >= 1, got 0"
    assert cli.main(["transcribe", str(tmp_path / "m.pt"), str(tmp_path / "a.wav"), "decoding.beem=3"]) == 1
    assert "config key decoding.beem: unknown" in capsys.readouterr().err


def test_a_phone_model_is_refused(lms):
    from ds_w2v.train.tasks.phone_ctc import PHONE_VOCAB

    with pytest.raises(ValueError, match="needs a character vocabulary"):
        build_decoder(DecodingConfig(decoder="beam", lm=str(lms["word"])), PHONE_VOCAB)


def test_an_lm_longer_than_kenlm_reads_is_one_line(tmp_path):
    pytest.importorskip("flashlight.lib.text.decoder")
    from ds_w2v.lm.decoder import MAX_LM_ORDER

    lm = write_arpa(build_ngram_lm([sentence_tokens(t, "char") for t in TEXTS], MAX_LM_ORDER + 1), tmp_path / "c7.arpa")
    with pytest.raises(ValueError, match=f"a {MAX_LM_ORDER + 1}-gram model; flashlight-text's KenLM reads orders up to "
                                         f"{MAX_LM_ORDER}"):
        build_decoder(DecodingConfig(decoder="beam", lm=str(lm)), VOCAB)
