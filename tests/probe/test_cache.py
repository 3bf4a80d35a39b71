"""The feature cache: a second probe of the same upstream reads it; anything that changes the
features is another entry."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ds_w2v.models.wav2vec2 import build_model
from ds_w2v.probe.cache import cached_features
from ds_w2v.probe.utterances import ProbeUtterance


class _CountForwards:
    def __init__(self, model):
        self.calls = 0
        model.wav2vec2.register_forward_hook(lambda *_: self._hit())

    def _hit(self):
        self.calls += 1


@pytest.fixture
def model():
    torch.manual_seed(0)
    return build_model("tiny", "pretrain")


def _utts(seed, n=3):
    rng = np.random.default_rng(seed)
    return [ProbeUtterance(f"u{i}", (3000 * rng.standard_normal(8000 + 800 * i)).astype(np.int16)) for i in range(n)]


def test_second_run_reads_the_cache(model, tmp_path):
    counter = _CountForwards(model)
    utts = _utts(0)
    first, hit = cached_features(model, utts, tmp_path, name="train")
    assert not hit and counter.calls > 0
    calls = counter.calls
    second, hit = cached_features(model, utts, tmp_path, name="train")
    assert hit and counter.calls == calls  # no forward pass
    assert second.ids == first.ids and second.names == first.names
    for name in first.names:
        np.testing.assert_array_equal(first.layers[name], second.layers[name])
    # the same model loaded again (another object, same weights) hits too
    torch.manual_seed(0)
    same = build_model("tiny", "pretrain")
    assert cached_features(same, utts, tmp_path, name="train")[1]
    assert len([p for p in tmp_path.iterdir()]) == 1 and not list(tmp_path.glob("*.tmp-*"))


def test_what_changes_the_features_is_another_entry(model, tmp_path):
    utts = _utts(0)
    cached_features(model, utts, tmp_path)
    assert not cached_features(model, utts[:2], tmp_path)[1]  # fewer utterances
    other = [ProbeUtterance(u.id, u.pcm.copy(), u.phones) for u in utts]
    other[1].pcm[100] ^= 1  # one sample of one utterance
    assert not cached_features(model, other, tmp_path)[1]
    assert not cached_features(model, utts, tmp_path, batch_s=0.5)[1]  # other batches: other padding
    with torch.no_grad():
        model.wav2vec2.encoder.layers[0].ffn.fc1.weight.add_(0.01)
    assert not cached_features(model, utts, tmp_path)[1]  # other weights
    with torch.no_grad():  # the quantizer touches no feature: still a hit
        model.quantizer.codevectors.add_(1.0)
    assert cached_features(model, utts, tmp_path)[1]


def test_no_cache_dir_computes_every_time(model):
    counter = _CountForwards(model)
    utts = _utts(1, n=1)
    for _ in range(2):
        assert cached_features(model, utts, None)[1] is False
    assert counter.calls == 2


def test_a_damaged_entry_is_recomputed(model, tmp_path):
    utts = _utts(2, n=2)
    cached_features(model, utts, tmp_path)
    (entry,) = tmp_path.iterdir()
    (entry / "layer2.npy").write_bytes(b"not an array")
    features, hit = cached_features(model, utts, tmp_path)
    assert not hit and features.layers["layer2"].shape == (features.num_frames, 256)
    assert cached_features(model, utts, tmp_path)[1]  # replaced by a whole entry
