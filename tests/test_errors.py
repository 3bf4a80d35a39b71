"""One-line reasons (ds_w2v/errors.py): the first line whole, never cut mid-word."""
from ds_w2v.errors import reason


def test_the_first_line_is_kept_whole():
    long = "a full sentence " * 30  # 480 characters: over the old 200-character cut
    assert reason(ValueError(long + "\nsecond line")) == f"ValueError: {long.strip()}"
    assert reason(OSError()) == "OSError"
    assert reason("\n  text first  \nmore") == "text first"


def test_a_very_long_line_is_cut_at_a_word_and_says_so():
    out = reason(RuntimeError("word " * 400), max_chars=100)
    assert out.endswith(" [... cut]") and out.startswith("RuntimeError: word word")
    assert "wor [" not in out and len(out) < 130
