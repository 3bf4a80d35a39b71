"""Upstream specs and fingerprints."""
from __future__ import annotations

import pytest

from ds_w2v.models.wav2vec2 import load_model
from ds_w2v.probe.upstream import load_upstream, model_fingerprint


def test_random_init_is_seeded_and_fingerprints_follow_the_weights(tiny_model_file):
    a, b, c = (load_upstream("random:tiny", seed=s) for s in (1, 1, 2))
    assert not a.training and a.task == "pretrain"
    assert model_fingerprint(a) == model_fingerprint(b) != model_fingerprint(c)
    # a model file: the same fingerprint as the model it was saved from, whatever the path
    loaded = load_upstream(str(tiny_model_file))
    assert model_fingerprint(loaded) == model_fingerprint(load_model(tiny_model_file))
    # random:MODEL: that architecture, other weights
    fresh = load_upstream(f"random:{tiny_model_file}", seed=1)
    assert fresh.config == loaded.config and model_fingerprint(fresh) != model_fingerprint(loaded)


def test_bad_specs_say_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such model file or folder"):
        load_upstream(str(tmp_path / "missing.pt"))
    with pytest.raises(FileNotFoundError, match="neither a preset"):
        load_upstream("random:huge")
