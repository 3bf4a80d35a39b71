"""The linear phone probe: it must learn what is linearly there, and only that."""
from __future__ import annotations

import numpy as np
import torch

from ds_w2v.probe.features import LayerFeatures
from ds_w2v.probe.frames import IGNORE
from ds_w2v.probe.linear import linear_probe_features, train_linear_probe
from ds_w2v.probe.utterances import ProbeUtterance


def _labelled(rng, n, num_classes, dim, signal):
    """Frames whose features are noise + signal * (a random direction per class)."""
    y = rng.integers(0, num_classes, n)
    directions = rng.standard_normal((num_classes, dim))
    return (rng.standard_normal((n, dim)) + signal * directions[y]).astype(np.float32), y


def test_learns_a_linearly_encoded_label_and_not_noise():
    rng = np.random.default_rng(0)
    x, y = _labelled(rng, 4000, 10, 32, signal=3.0)
    acc = train_linear_probe(x[:3000], y[:3000], x[3000:], y[3000:], 10, epochs=10, seed=0)
    assert acc > 0.97
    noise = rng.standard_normal((4000, 32)).astype(np.float32)
    acc = train_linear_probe(noise[:3000], y[:3000], noise[3000:], y[3000:], 10, epochs=10, seed=0)
    assert acc < 0.2  # chance is 0.1


def test_ignored_frames_neither_train_nor_count():
    rng = np.random.default_rng(1)
    x, y = _labelled(rng, 2000, 4, 16, signal=3.0)
    y_eval = y[1000:].copy()
    y_eval[::2] = IGNORE  # half the eval frames unlabelled: accuracy is over the other half
    wrong = x[1000:].copy()
    wrong[::2] = -wrong[::2]  # ... whose features are garbage
    train_y = y[:1000].copy()
    train_y[:500] = IGNORE
    acc = train_linear_probe(x[:1000], train_y, wrong, y_eval, 4, epochs=10, seed=0)
    assert acc > 0.95


def test_deterministic_and_leaves_the_global_rng_alone():
    rng = np.random.default_rng(2)
    x, y = _labelled(rng, 1500, 5, 16, signal=0.7)  # a hard one: the order of minibatches matters
    state = torch.get_rng_state()
    a = train_linear_probe(x[:1000], y[:1000], x[1000:], y[1000:], 5, epochs=3, seed=3)
    b = train_linear_probe(x[:1000], y[:1000], x[1000:], y[1000:], 5, epochs=3, seed=3)
    assert a == b and torch.equal(state, torch.get_rng_state())


PHONES = ["aa", "iy", "s", "sil"]


def _fake(n_utts, frames, rng, directions):
    """Utterances of one phone each (span over the whole audio), and LayerFeatures with a
    'good' layer encoding the phone (noise + its direction) and a 'noise' layer."""
    phones = PHONES
    utts, good, noise = [], [], []
    for i in range(n_utts):
        p = phones[i % len(phones)]
        samples = (frames - 1) * 320 + 400
        utts.append(ProbeUtterance(f"u{i}", np.zeros(samples, np.int16), [p], [(0, samples)]))
        good.append(rng.standard_normal((frames, 8)) + directions[p])
        noise.append(rng.standard_normal((frames, 8)))
    offsets = np.arange(n_utts + 1) * frames
    layers = {"good": np.concatenate(good).astype(np.float32), "noise": np.concatenate(noise).astype(np.float32)}
    return utts, LayerFeatures([u.id for u in utts], offsets, layers, 320, 400)


def test_per_layer_result_names_the_layer_that_knows():
    rng = np.random.default_rng(4)
    directions = {p: 3.0 * rng.standard_normal(8) for p in PHONES}
    train_utts, train = _fake(40, 20, rng, directions)
    test_utts, test = _fake(20, 20, rng, directions)
    r = linear_probe_features(train, train_utts, test, test_utts, epochs=5)
    assert set(r["layers"]) == {"good", "noise"} and r["best_layer"] == "good"
    assert r["layers"]["good"] > 0.95 and r["layers"]["noise"] < 0.45  # four phones, equally frequent
    assert r["num_train_frames"] == 800 and r["num_eval_frames"] == 400
    assert r["majority_acc"] == 0.25
