"""CTC decoders: greedy (the default, no dependency) and beam search with an n-gram LM.

    decoder = build_decoder(DecodingConfig(decoder="beam", lm="lm.arpa", lm_weight=1.5), model.vocab)
    texts = decoder.decode(out.logits, out.frame_lengths)       # one string per utterance

The beam search is flashlight-text's (the ``lm`` extra: ``pip install .[lm]``), the decoder of
wav2letter and of fairseq's wav2vec 2.0 LM results, with KenLM's query side in its wheel (no
compiler). It was chosen over pyctcdecode + kenlm by measurement (BENCHMARKS.md, *Beam search
with an n-gram LM*). A hypothesis scores

    sum of the frames' ln p(token)  +  lm_weight x log10 P_LM(words)  +  word_score x #words

(KenLM gives log10; fairseq's ``--lm-weight`` / ``--word-score`` mean the same). Which search
runs is decided by the LM file itself, so an ARPA file cannot be paired with the wrong mode:

* a **word** LM (``ds-w2v build-lm``'s default): flashlight's lexicon decoder. The lexicon is the
  LM's own vocabulary spelled in the model's characters, a trie the search walks character by
  character, so only the LM's words can come out (an out-of-vocabulary word is lost: the price of
  a word LM with a character model). Words are spelled without the ``|`` delimiter, which the
  CTC targets hold only *between* words: ``|`` is the decoder's silence token, optional between
  words and never needed after the last;
* a **character** LM (``build-lm --unit char``: its words are the model's characters and ``|``):
  flashlight's lexicon-free decoder, which scores every character with the LM and can write any
  word; ``word_score`` is then its score per ``|``, i.e. per word boundary.

The LM must be an ARPA file: its 1-grams are the lexicon (a binary KenLM file has no readable
word list).
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence

import torch

from ..text import BLANK_ID, SPECIAL_TOKENS, UNK, WORD_DELIM, CharVocab
from .arpa import read_order, read_vocabulary
from .ngram import BOS, EOS

log = logging.getLogger("ds_w2v.lm")

DECODERS = ("greedy", "beam")
# flashlight-text's wheels build KenLM with KENLM_MAX_ORDER=6: a longer model fails to load
MAX_LM_ORDER = 6
INSTALL_HINT = "pip install .[lm]"  # the extra that brings flashlight-text (setup.py)


@dataclass
class DecodingConfig:
    """How CTC output becomes text: ``ds-w2v transcribe --decoder ...``, the CTC task's dev/test
    scoring (``decoding.*`` in a recipe or on the command line) and ``ds-w2v evaluate``."""

    decoder: str = "greedy"
    """``greedy``: per-frame argmax, repeats collapsed, blanks dropped (no LM, no dependency);
    ``beam``: beam search with the n-gram LM ``lm`` (flashlight-text, ``pip install .[lm]``)."""
    lm: str | None = None
    """ARPA n-gram file (``ds-w2v build-lm``, or KenLM's ``lmplz``): a word LM (lexicon search)
    or a character LM (lexicon-free search); required by ``beam``."""
    beam: int = 50
    """Hypotheses kept per frame (fairseq's ``--beam``; 500 in the wav2vec 2.0 paper's LM rows,
    at ~10x the time)."""
    lm_weight: float = 2.0
    """Weight of the LM's log10 probability against the acoustic ln probabilities. 2 is what the
    demo's dev split chose for tiny with a word 4-gram (BENCHMARKS.md) and the value of wav2vec
    2.0's example 4-gram command (fairseq ``--lm-weight 2``). Tune it on dev (``ds-w2v evaluate
    ... --tune-lm``), never on test."""
    word_score: float = 0.0
    """Added per word written (per ``|`` with a character LM): > 0 favours more words. 0 is the
    demo's dev choice beside ``lm_weight`` 2 (wav2vec 2.0's example uses -1, fairseq
    ``--word-score``). Tuned with ``lm_weight``."""
    beam_threshold: float = 25.0
    """Hypotheses scoring this much below the frame's best are pruned (ln units; fairseq's 25)."""

    def validate(self, name: Callable[[str], str] = lambda key: f"config key decoding.{key}") -> None:
        """One ValueError naming the key as ``name(field)`` writes it (a command line's option);
        for ``beam``, that the LM file is there and that flashlight-text is installed, so a run
        refuses before any process starts."""
        def bad(key: str, msg: str):
            raise ValueError(f"{name(key)}: {msg}")

        if self.decoder not in DECODERS:
            bad("decoder", f"{self.decoder!r} is not one of {', '.join(DECODERS)}")
        if self.beam < 1:
            bad("beam", f"must be >= 1, got {self.beam}")
        if not self.beam_threshold > 0:
            bad("beam_threshold", f"must be > 0, got {self.beam_threshold}")
        for key in ("lm_weight", "word_score"):
            if not math.isfinite(getattr(self, key)):
                bad(key, f"must be a finite number, got {getattr(self, key)}")
        if self.decoder == "beam":
            if not self.lm:
                bad("lm", "decoder beam needs an ARPA language model (ds-w2v build-lm TEXT --out lm.arpa)")
            if not Path(self.lm).is_file():
                bad("lm", f"{self.lm}: no such file")
            flashlight_text()


def flashlight_text():
    """flashlight-text's decoder module, ``Dictionary`` and ``KenLM``, or one line saying how to
    install them."""
    try:
        from flashlight.lib.text import decoder
        from flashlight.lib.text.decoder.kenlm import KenLM
        from flashlight.lib.text.dictionary import Dictionary
    except ImportError as e:
        raise ValueError(f"beam search decoding needs flashlight-text, which is not installed ({e}): "
                         f"{INSTALL_HINT}") from None
    return decoder, Dictionary, KenLM


class CTCDecoder(Protocol):
    def decode(self, logits: torch.Tensor, frame_lengths: torch.Tensor) -> list[str]:
        """One text per row of ``logits`` [B, T, V] (its first ``frame_lengths[b]`` frames)."""

    def describe(self) -> dict:
        """The settings, as a results file records what a WER was measured with."""


class GreedyDecoder:
    """Per-frame argmax, repeats collapsed, blanks dropped: what the CTC head's ``decode`` does."""

    def __init__(self, vocab: CharVocab):
        self.vocab = vocab

    def decode(self, logits: torch.Tensor, frame_lengths: torch.Tensor) -> list[str]:
        ids = logits.argmax(-1).cpu()
        return [self.vocab.decode_ctc(ids[b, : int(n)].tolist()) for b, n in enumerate(frame_lengths.cpu())]

    def describe(self) -> dict:
        return {"decoder": "greedy"}


def log_probs(logits: torch.Tensor) -> torch.Tensor:
    """float32 CPU ln-probabilities [B, T, V]: what the beam search reads through a pointer."""
    return torch.log_softmax(logits.detach().float(), dim=-1).cpu().contiguous()


class BeamDecoder:
    """Beam search over a CTC model's characters with an n-gram LM (module docstring).

    Loading the LM and building the lexicon trie happen once; :meth:`with_weights` makes a
    decoder with other ``lm_weight`` / ``word_score`` sharing them (tuning on dev)."""

    def __init__(self, vocab: CharVocab, lm: str | os.PathLike, *, beam: int = 50, lm_weight: float = 2.0,
                 word_score: float = 0.0, beam_threshold: float = 25.0):
        fl_decoder, Dictionary, KenLM = flashlight_text()
        if any(len(t) > 1 for t in vocab.tokens[len(SPECIAL_TOKENS):]):
            raise ValueError("beam search with an n-gram LM needs a character vocabulary; this model writes "
                             "multi-character symbols (phones): decode it greedily")
        self.vocab = vocab
        self.lm_path = os.fspath(lm)
        self.beam, self.beam_threshold = beam, beam_threshold
        self.lm_weight, self.word_score = lm_weight, word_score
        self._fl = fl_decoder
        self._tokens = Dictionary()
        for t in vocab.tokens:  # index = the model's id
            self._tokens.add_entry(t)
        order = read_order(self.lm_path)
        if order > MAX_LM_ORDER:
            raise ValueError(f"{self.lm_path}: a {order}-gram model; flashlight-text's KenLM reads orders up to "
                             f"{MAX_LM_ORDER} (build-lm --order {MAX_LM_ORDER})")
        words = [w for w in read_vocabulary(self.lm_path) if w not in (BOS, EOS, UNK)]
        self.token_lm = WORD_DELIM in words  # a character LM (build-lm --unit char) writes "|" as a word
        if self.token_lm:
            self._words = None
            self._trie = None
            self._lm = KenLM(self.lm_path, self._tokens)
            unknown = sorted(set(words) - set(vocab.tokens))
            if unknown:
                log.warning("%s: %d LM symbols are not model characters (%s...): they are never written",
                            self.lm_path, len(unknown), " ".join(unknown[:5]))
        else:
            self._build_lexicon(words, Dictionary, KenLM)
        self._decoder = self._make()

    def _build_lexicon(self, words: list[str], Dictionary, KenLM) -> None:
        index = {t: i for i, t in enumerate(self.vocab.tokens)}
        # the LM's words are normalised (lower case); a model whose letters are upper case (a fairseq
        # LibriSpeech model) spells them with its own
        spelled = [(w, [index.get(c, index.get(c.upper())) for c in w]) for w in words]
        lexicon = [(w, ids) for w, ids in spelled if ids and None not in ids]
        dropped = [w for w, ids in spelled if not ids or None in ids]
        if dropped:
            log.warning("%s: %d of %d LM words hold characters the model cannot write (%s...): left out of "
                        "the lexicon", self.lm_path, len(dropped), len(words), " ".join(dropped[:5]))
        if not lexicon:
            raise ValueError(f"{self.lm_path}: none of the LM's {len(words)} words can be spelled with the model's "
                             "characters (another language or alphabet?)")
        self._words = Dictionary()
        for w, _ in lexicon:
            self._words.add_entry(w)
        self._words.add_entry(UNK)
        self._words.set_default_index(self._words.get_index(UNK))
        self._lm = KenLM(self.lm_path, self._words)
        # the trie's nodes carry the best unigram score below them (smearing), so a partial word is
        # scored by the best word it can still become: the search's look-ahead. start(True): no
        # context, so the score is the word's unigram log10 p, not its p after <s>
        self._trie = self._fl.Trie(len(self.vocab), self.vocab.word_delim_id)
        start = self._lm.start(True)
        for w, ids in lexicon:
            i = self._words.get_index(w)
            _, unigram = self._lm.score(start, i)
            self._trie.insert(ids, i, unigram)
        self._trie.smear(self._fl.SmearingMode.MAX)
        log.info("%s: lexicon of %d words", self.lm_path, len(lexicon))

    def _make(self):
        fl = self._fl
        num_tokens = len(self.vocab)  # beam_size_token: every token may extend a hypothesis
        if self.token_lm:
            options = fl.LexiconFreeDecoderOptions(self.beam, num_tokens, self.beam_threshold, self.lm_weight,
                                                   self.word_score, False, fl.CriterionType.CTC)
            return fl.LexiconFreeDecoder(options, self._lm, self.vocab.word_delim_id, BLANK_ID, [])
        # unk_score -inf: no out-of-lexicon word; sil_score 0: "|" between words costs nothing extra
        options = fl.LexiconDecoderOptions(self.beam, num_tokens, self.beam_threshold, self.lm_weight,
                                           self.word_score, -math.inf, 0.0, False, fl.CriterionType.CTC)
        return fl.LexiconDecoder(options, self._trie, self._lm, self.vocab.word_delim_id, BLANK_ID,
                                 self._words.get_index(UNK), [], False)

    def with_weights(self, lm_weight: float, word_score: float) -> "BeamDecoder":
        """A decoder with these weights, sharing this one's LM and lexicon (no reload)."""
        other = object.__new__(BeamDecoder)
        other.__dict__.update(self.__dict__)
        other.lm_weight, other.word_score = lm_weight, word_score
        other._decoder = other._make()
        return other

    def decode(self, logits: torch.Tensor, frame_lengths: torch.Tensor) -> list[str]:
        emissions = log_probs(logits)
        return [self.decode_one(emissions[b, : int(n)]) for b, n in enumerate(frame_lengths.cpu())]

    def decode_one(self, emissions: torch.Tensor) -> str:
        """The best hypothesis for one utterance's ln-probabilities [T, V] (float32, CPU)."""
        emissions = emissions.contiguous()
        t, v = emissions.shape
        if t == 0:
            return ""
        best = self._decoder.decode(emissions.data_ptr(), t, v)[0]
        if self.token_lm:
            return self.vocab.decode_ctc(_frame_tokens(best.tokens))
        return " ".join(self._words.get_entry(i) for i in best.words if i >= 0)

    def describe(self) -> dict:
        """The settings, for results files: what a WER was measured with."""
        return {"decoder": "beam", "lm": self.lm_path, "lm_kind": "char" if self.token_lm else "word",
                "beam": self.beam, "lm_weight": self.lm_weight, "word_score": self.word_score,
                "beam_threshold": self.beam_threshold}


def _frame_tokens(tokens: Sequence[int]) -> list[int]:
    # flashlight pads the frame-level token path with -1 (start and end markers)
    return [int(i) for i in tokens if i >= 0]


def build_decoder(config: DecodingConfig, vocab: CharVocab) -> CTCDecoder:
    """The decoder ``config`` names, for a model with ``vocab``."""
    config.validate()
    if config.decoder == "greedy":
        return GreedyDecoder(vocab)
    return BeamDecoder(vocab, config.lm, beam=config.beam, lm_weight=config.lm_weight, word_score=config.word_score,
                       beam_threshold=config.beam_threshold)


__all__ = ["DECODERS", "DecodingConfig", "CTCDecoder", "GreedyDecoder", "BeamDecoder", "build_decoder",
           "flashlight_text", "log_probs"]
