"""The text build-lm counts (``ds_w2v/lm/corpus.py``): every line a sentence as lmplz reads it,
normalised exactly as the CTC targets are."""
from __future__ import annotations

import random

from ds_w2v.lm.corpus import normalize_line, read_sentences
from ds_w2v.text import normalize_text


def test_every_line_is_a_sentence_an_empty_one_too(tmp_path):
    # lmplz counts an empty line as <s> </s>; a line with nothing left once normalised is one too
    path = tmp_path / "text.txt"
    path.write_text("Hello, World!\n\n  --  \nDon't `stop'\nÉcole\n", encoding="utf-8")
    assert list(read_sentences([path])) == ["hello world", "", "", "don't stop", "école"]


def test_the_ascii_fast_path_is_normalize_text():
    """normalize_line's one-table translate for ASCII must equal the per-character normaliser:
    every ASCII character (controls, quotes, backticks, punctuation) in random mixes with
    apostrophe-heavy words, and non-ASCII lines (taking normalize_text itself)."""
    rng = random.Random(0)
    ascii_chars = [chr(i) for i in range(128)]
    lines = ["", "  ", "'", "''a''", "rock 'n' roll", "x`y", "A\tB\r\n", "ﬁne Straße ＡＢ"]
    for _ in range(5000):
        lines.append("".join(rng.choice(ascii_chars) if rng.random() < 0.3 else rng.choice("aB1' `-")
                             for _ in range(rng.randint(0, 40))))
    for line in lines:
        assert normalize_line(line) == normalize_text(line), repr(line)


def test_build_lm_counts_empty_lines_and_says_so(tmp_path, capsys):
    from ds_w2v import cli
    from ds_w2v.lm.arpa import read_arpa

    text = tmp_path / "text.txt"
    text.write_text("a b\n\nb a\n")
    assert cli.main(["build-lm", str(text), "--order", "2", "--out", str(tmp_path / "lm.arpa")]) == 0
    out = capsys.readouterr().out
    assert "from 2 sentences, 4 words" in out and "and 1 empty line (<s> </s>" in out
    assert ("<s>", "</s>") in read_arpa(tmp_path / "lm.arpa").log10_p[1]
    # nothing but empty lines: no model, one line naming the file
    text.write_text("\n\n")
    assert cli.main(["build-lm", str(text), "--out", str(tmp_path / "x.arpa")]) == 1
    assert str(text) in capsys.readouterr().err
