"""Transcript normalisation and the character vocabulary of the CTC head.

One normaliser for every corpus, so that a vocabulary built from TIMIT and one built from
LibriSpeech agree on what a "character" is:

1. Unicode NFKC (full-width and compatibility forms fold to their plain letters);
2. ``str.lower`` (Unicode-aware: ``É`` -> ``é``, ``Σ`` -> ``σ``);
3. typographic apostrophes (U+2018, U+2019, U+02BC, U+2032, backtick) -> ``'``;
4. every character that is not a letter, a combining mark, a digit or ``'`` becomes a space
   (tested by Unicode category, never by a character range: the study's ``[\\,?.!-;:\\"]``
   silently deleted digits and apostrophes through the range ``!-;``);
5. apostrophes that do not sit between two word characters are dropped (``'quoted'`` ->
   ``quoted``, ``don't`` stays), and runs of white space collapse to one space.

The vocabulary follows the convention of fairseq and HF ``Wav2Vec2CTCTokenizer``: id 0 is
``<pad>`` and doubles as the CTC blank, then ``<s>``, ``</s>``, ``<unk>``, the word delimiter
``|``, then the characters in sorted code-point order. Built from the same texts it is the same,
whatever their order: it is saved with the shards and with the model.

A vocabulary may hold symbols longer than one character (TIMIT's phones, ``sh``, ``iy``: the
phone-CTC task's): decoding then writes its symbols separated by spaces, one phone a word
(``sil sh iy hh ae d``). A character vocabulary (``build``) never holds such a symbol, so the
tokens alone say which, in a model file and in an HF ``vocab.json`` alike.
"""
from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

PAD, BOS, EOS, UNK, WORD_DELIM = "<pad>", "<s>", "</s>", "<unk>", "|"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK, WORD_DELIM)
BLANK_ID = 0  # CTC blank == <pad>

_APOSTROPHES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u02bc": "'", "\u2032": "'", "`": "'"})
_SPACES = re.compile(r"\s+")
# an apostrophe not flanked by word characters on both sides (\w is Unicode-aware in Python 3)
_LOOSE_APOSTROPHE = re.compile(r"(?<!\w)'|'(?!\w)")


def _keep(ch: str) -> bool:
    if ch == "'":
        return True
    cat = unicodedata.category(ch)
    return cat[0] in ("L", "M") or cat == "Nd"


def normalize_text(text: str) -> str:
    """Return the normalised transcript (see the module docstring for the rules)."""
    text = unicodedata.normalize("NFKC", text).lower().translate(_APOSTROPHES)
    text = "".join(ch if _keep(ch) else " " for ch in text)
    text = _LOOSE_APOSTROPHE.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


@dataclass
class CharVocab:
    """Character vocabulary for CTC: ``tokens[i]`` is the symbol of id ``i``."""

    tokens: list[str] = field(default_factory=lambda: list(SPECIAL_TOKENS))

    def __post_init__(self) -> None:
        if tuple(self.tokens[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise ValueError(f"vocabulary must start with {SPECIAL_TOKENS}, got {self.tokens[:5]}")
        if len(set(self.tokens)) != len(self.tokens):
            raise ValueError("vocabulary has duplicate tokens")
        self._index = {t: i for i, t in enumerate(self.tokens)}
        # what stands between two decoded symbols: nothing between characters, a space between phones
        self._separator = " " if any(len(t) > 1 for t in self.tokens[len(SPECIAL_TOKENS):]) else ""

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def build(cls, texts: Iterable[str], normalized: bool = False) -> "CharVocab":
        """Vocabulary of every character in ``texts`` (normalised first unless ``normalized``)."""
        chars: set[str] = set()
        for t in texts:
            chars.update((t if normalized else normalize_text(t)).replace(" ", ""))
        chars -= set(SPECIAL_TOKENS)
        return cls(list(SPECIAL_TOKENS) + sorted(chars))

    @classmethod
    def from_dict(cls, mapping: dict[str, int]) -> "CharVocab":
        """From a ``{token: id}`` mapping (HF ``vocab.json``), ids dense from 0."""
        tokens = [t for t, _ in sorted(mapping.items(), key=lambda kv: kv[1])]
        if [mapping[t] for t in tokens] != list(range(len(tokens))):
            raise ValueError("vocabulary ids must be 0..N-1 without gaps")
        return cls(tokens)

    def to_dict(self) -> dict[str, int]:
        return dict(self._index)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "CharVocab":
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError) as e:
            raise ValueError(f"{path}: not a vocabulary file ({e})") from None

    # -- use ----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.tokens)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharVocab) and self.tokens == other.tokens

    @property
    def unk_id(self) -> int:
        return self._index[UNK]

    @property
    def word_delim_id(self) -> int:
        return self._index[WORD_DELIM]

    def encode(self, text: str, normalized: bool = False) -> list[int]:
        """Ids of a transcript, ``|`` between words; unknown characters map to ``<unk>``."""
        text = text if normalized else normalize_text(text)
        return [self._index.get(c, self.unk_id) for c in text.replace(" ", WORD_DELIM)]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of a label sequence (no CTC collapsing): specials dropped, ``|`` -> space;
        the symbols of a phone vocabulary separated by spaces (module docstring)."""
        out = []
        for i in ids:
            t = self.tokens[int(i)]
            if t == WORD_DELIM:
                out.append(" ")
            elif t not in SPECIAL_TOKENS:
                out.append(t)
        return _SPACES.sub(" ", self._separator.join(out)).strip()

    def decode_ctc(self, ids: Sequence[int]) -> str:
        """Greedy CTC decoding of frame-wise argmax ids: collapse repeats, drop blanks."""
        collapsed = []
        prev = None
        for i in ids:
            i = int(i)
            if i != prev and i != BLANK_ID:
                collapsed.append(i)
            prev = i
        return self.decode(collapsed)


def edit_errors(refs: Sequence[str], hyps: Sequence[str], measure: Callable) -> tuple[float, float]:
    """(edits, reference units) summed over the pairs that have a reference: ``measure`` is
    jiwer's ``process_words`` (units: words) or ``process_characters`` (characters). Summed, not
    averaged per utterance: an error rate is the corpus's edits over the corpus's reference units."""
    edits = units = 0.0
    for ref, hyp in zip(refs, hyps):
        if not ref:
            continue
        m = measure(ref, hyp)
        edits += m.substitutions + m.deletions + m.insertions
        units += m.substitutions + m.deletions + m.hits
    return edits, units
