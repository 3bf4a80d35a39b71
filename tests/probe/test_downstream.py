"""SUPERB PR and ER heads on frozen features: they learn what the features carry, the layer
weights find the layer that carries it, and the dev split chooses the epoch."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from ds_w2v.data.sources.timit import PHONES_39
from ds_w2v.probe.downstream import NormalizedLayerSum
from ds_w2v.probe.er import emotion_recognition_probe
from ds_w2v.probe.features import LayerFeatures
from ds_w2v.probe.pr import greedy_phones, phone_error_rate, phone_recognition_probe
from ds_w2v.probe.utterances import ProbeUtterance

DIM = 16


def _features(per_utt_signal, rng, noise_layer=True):
    """LayerFeatures from per-utterance [T, DIM] signal arrays: conv (noise, another width),
    layer0 (noise), layer1 (the signal + noise)."""
    frames = [len(s) for s in per_utt_signal]
    offsets = np.concatenate([[0], np.cumsum(frames)]).astype(np.int64)
    total = int(offsets[-1])
    layers = {"conv": rng.standard_normal((total, 4)).astype(np.float32),
              "layer0": rng.standard_normal((total, DIM)).astype(np.float32),
              "layer1": (np.concatenate(per_utt_signal) + 0.3 * rng.standard_normal((total, DIM))).astype(np.float32)}
    return LayerFeatures([f"u{i}" for i in range(len(frames))], offsets, layers, 320, 400)


def _phone_corpus(n, rng, directions):
    utts, signal = [], []
    for i in range(n):
        seq = list(rng.choice(8, size=6, replace=False))  # no phone twice in a row
        phones = [PHONES_39[j] for j in seq]
        utts.append(ProbeUtterance(f"u{i}", np.zeros(16000, np.int16), phones))
        signal.append(np.repeat(directions[seq], 5, axis=0))  # 5 frames a phone
    return utts, _features(signal, rng)


def test_phone_recognition_learns_the_phones_from_the_layer_that_has_them():
    rng = np.random.default_rng(0)
    directions = 2.0 * rng.standard_normal((8, DIM))
    train_utts, train = _phone_corpus(48, rng, directions)
    dev_utts, dev = _phone_corpus(8, rng, directions)
    test_utts, test = _phone_corpus(16, rng, directions)
    state = torch.get_rng_state()
    r = phone_recognition_probe(train, train_utts, test, test_utts, dev, dev_utts, epochs=15, seed=0)
    assert torch.equal(state, torch.get_rng_state())
    assert r["per"] < 0.3 and r["dev_per"] < 0.3  # untrained, every frame is blank or wrong: PER ~1
    assert set(r["layer_weights"]) == {"layer0", "layer1"}  # conv features are not in the sum
    assert r["layer_weights"]["layer1"] > r["layer_weights"]["layer0"]
    assert 1 <= r["best_epoch"] <= 15
    runs = [phone_recognition_probe(train, train_utts, test, test_utts, epochs=2, seed=5) for _ in range(2)]
    assert runs[0]["per"] == runs[1]["per"] and runs[0]["layer_weights"] == runs[1]["layer_weights"]
    assert runs[0]["dev_per"] is None and runs[0]["best_epoch"] == 2  # no dev split: the last epoch


def _emotion_corpus(n, rng, directions, labels, informative=True):
    utts, signal = [], []
    for i in range(n):
        k = i % len(labels)
        frames = int(rng.integers(20, 40))
        utts.append(ProbeUtterance(f"u{i}", np.zeros(16000, np.int16), label=labels[k]))
        x = np.repeat(directions[k][None], frames, axis=0) if informative else np.zeros((frames, DIM))
        signal.append(x + rng.standard_normal((frames, DIM)))
    return utts, _features(signal, rng)


@pytest.mark.parametrize("informative", [True, False])
def test_emotion_recognition_accuracy_is_high_on_signal_and_chance_on_noise(informative):
    rng = np.random.default_rng(1)
    labels = ["angry", "calm", "happy", "sad"]
    directions = 1.5 * rng.standard_normal((4, DIM))
    train_utts, train = _emotion_corpus(64, rng, directions, labels, informative)
    test_utts, test = _emotion_corpus(32, rng, directions, labels, informative)
    dev_utts, dev = _emotion_corpus(16, rng, directions, labels, informative)
    r = emotion_recognition_probe(train, train_utts, test, test_utts, labels, dev, dev_utts, epochs=10, seed=0)
    assert r["chance"] == 0.25 and r["labels"] == labels and r["num_test_utterances"] == 32
    if informative:
        assert r["acc"] > 0.95 and r["layer_weights"]["layer1"] > r["layer_weights"]["layer0"]
    else:
        assert r["acc"] < 0.6  # 32 test clips of 4 balanced classes: chance 0.25


def test_greedy_decoding_and_per():
    blank, aa, b = 0, PHONES_39.index("aa") + 1, PHONES_39.index("b") + 1
    logits = torch.nn.functional.one_hot(torch.tensor([blank, aa, aa, blank, aa, b, b]), 40).float()
    assert greedy_phones(logits) == ["aa", "aa", "b"]
    assert phone_error_rate([["aa", "b"], []], [["aa", "aa", "b"], ["sil"]]) == 2 / 4


def test_weighted_sum_normalises_each_layer():
    s = NormalizedLayerSum(2)
    x = torch.randn(2, 3, 5, 8)
    scaled = torch.stack([x[0] * 100.0, x[1]])  # a layer 100x larger weighs the same
    torch.testing.assert_close(s(scaled), s(x), atol=1e-4, rtol=1e-4)  # LayerNorm eps 1e-5 aside
    assert s.layer_weights() == [0.5, 0.5]
