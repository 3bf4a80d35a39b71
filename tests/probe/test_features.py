"""Frozen features of a tiny model: every layer, the model's frame grid, the model left as found."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ds_w2v.models.wav2vec2 import build_model
from ds_w2v.probe.features import extract_features, layer_names
from ds_w2v.probe.utterances import ProbeUtterance, read_utterances


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("tiny", "pretrain")


def _utts(rng, seconds):
    return [ProbeUtterance(f"u{i}", (3000 * rng.standard_normal(int(s * 16000))).astype(np.int16))
            for i, s in enumerate(seconds)]


def test_every_layer_on_the_models_frame_grid(model):
    utts = _utts(np.random.default_rng(0), [1.0, 0.93, 0.61])
    model.train()  # as the trainer holds it mid-run
    f = extract_features(model, utts)
    assert model.training  # mode restored
    assert f.names == layer_names(model) == ["conv", "layer0", "layer1", "layer2", "layer3", "layer4"]
    assert f.ids == ["u0", "u1", "u2"] and (f.stride, f.receptive_field) == (320, 400)
    assert f.frame_lengths.tolist() == [model.config.num_frames(u.num_samples) for u in utts]
    assert f.layers["conv"].shape == (f.num_frames, 128) and f.layers["layer4"].shape == (f.num_frames, 256)
    # the layers are what the names say: tiny is pre-LN, so the last block's output through the
    # final LayerNorm is the model's last_hidden_state; layer0 is the transformer's input
    x = torch.from_numpy(utts[0].pcm.astype(np.float32) / 32768.0)[None]
    with torch.no_grad():
        model.eval()
        out = model.wav2vec2(x, torch.tensor([x.shape[1]]), mask_time=False)
        model.train()
        last = model.wav2vec2.encoder.layer_norm(torch.from_numpy(np.array(f.utterance(0, "layer4"))))
    torch.testing.assert_close(last, out.last_hidden_state[0], atol=1e-4, rtol=1e-4)
    conv = torch.from_numpy(np.array(f.utterance(0, "conv")))
    torch.testing.assert_close(conv, out.features[0], atol=1e-4, rtol=1e-4)
    assert not np.allclose(f.utterance(0, "layer0"), f.utterance(0, "layer1"))


def test_batched_like_alone_within_group_norm_padding_effects(model):
    """Length-sorted batches give each utterance its own frames (padding cut off), in input order."""
    utts = _utts(np.random.default_rng(1), [0.7, 1.0, 0.95, 0.72])
    together = extract_features(model, utts, batch_s=10.0)
    for i, u in enumerate(utts):
        alone = extract_features(model, [u])
        for name in ("conv", "layer4"):
            a, b = np.asarray(together.utterance(i, name)), alone.layers[name]
            assert a.shape == b.shape
            # group norm sees the padding of a batch (at most 15 % of a row): close, not equal
            assert np.abs(a - b).mean() < 0.05 * np.abs(b).mean()


def test_read_utterances_of_a_prepared_split(probe_timit):
    utts = read_utterances(probe_timit, "train", max_utterances=5)
    assert len(utts) == 5 and len({u.id for u in utts}) == 5
    for u in utts:
        assert u.pcm.dtype == np.int16 and u.phones and len(u.phone_spans) == len(u.phones)
        assert all(0 <= s <= e <= u.num_samples for s, e in u.phone_spans)
        assert not u.spans_missing
    assert [u.id for u in read_utterances(probe_timit, "train")][:5] == [u.id for u in utts]  # shard order
    with pytest.raises(ValueError, match="no split 'nope'; known splits: dev, test, train"):
        read_utterances(probe_timit, "nope")
