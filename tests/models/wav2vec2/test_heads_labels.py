"""A classification head's labels are class names: a list copied with an Ellipsis in it (the
docs' ``labels=["neutral", "calm", ...]``), a bare string, an empty or a repeated name is refused
in one line rather than built into a head with a class called ``Ellipsis``."""
import pytest

import ds_w2v


@pytest.mark.parametrize("labels, match", [
    (["neutral", "calm", ...], r"labels must be a list of non-empty strings .*Ellipsis"),
    ("neutral,calm", r"labels must be a list of non-empty strings"),
    (["neutral", ""], r"labels must be a list of non-empty strings"),
    (["a", "b", "a"], r"labels name a class twice: \['a', 'b', 'a'\]"),
    (["only"], r"at least 2 labels"),
])
def test_bad_labels_are_refused_in_one_line(labels, match):
    with pytest.raises(ValueError, match=match):
        ds_w2v.build_model("tiny", task="cls", labels=labels)


def test_good_labels_build():
    assert ds_w2v.build_model("tiny", task="cls", labels=["neutral", "calm"]).labels == ["neutral", "calm"]
