"""CPC's linear phone classification probe (van den Oord et al. 2018, "Representation Learning
with Contrastive Predictive Coding", §3.1): a linear classifier from a frozen model's frame
features to phone classes, here the 39 folded TIMIT phones with frame labels from the ``.PHN``
alignments (:mod:`ds_w2v.probe.frames`), one classifier per layer, trained on the train split's
frames and scored by frame accuracy on the test split's.

The recipe is fixed, nothing is chosen on any split, so no dev split is read and the test frames
are scored once per layer: features standardised with the train frames' mean and variance (a
linear classifier can absorb any affine map, but Adam on raw pre-LN residual features, whose
scale grows with depth, would need a learning rate per layer), weights and bias from zero (the
loss is convex: no initialisation to draw), Adam at :data:`LR` over :data:`EPOCHS` passes of
minibatches of :data:`BATCH_FRAMES` frames in an order drawn from a generator seeded by
``seed``. The global RNGs are never touched: the trainer can probe mid-run and stay bit-exact on
resume. ``best_layer`` is the layer with the highest test accuracy -- a report, not a choice
anything else depends on.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..data.sources.timit import PHONES_39
from ..models.wav2vec2 import Wav2Vec2Task
from .cache import cached_features
from .features import DEFAULT_BATCH_S, LayerFeatures
from .frames import IGNORE, frame_phone_labels
from .utterances import ProbeUtterance, require_phone_spans

EPOCHS = 20
LR = 2e-3
BATCH_FRAMES = 1024  # frames per Adam step: ~20 s of audio at 50 frames/s
EVAL_CHUNK = 65_536  # frames scored per matmul


def frame_labels(features: LayerFeatures, utterances: Sequence[ProbeUtterance]) -> np.ndarray:
    """int64 [total_frames]: each frame's phone id (0..38) or IGNORE, utterance after utterance."""
    if features.ids != [u.id for u in utterances]:
        raise ValueError("features and utterances are not the same utterances in the same order")
    return np.concatenate([
        frame_phone_labels(u.phones, u.phone_spans, int(n), features.stride, features.receptive_field)
        for u, n in zip(utterances, features.frame_lengths)
    ])


def train_linear_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    eval_x: np.ndarray,
    eval_y: np.ndarray,
    num_classes: int,
    *,
    epochs: int = EPOCHS,
    lr: float = LR,
    batch_frames: int = BATCH_FRAMES,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> float:
    """Frame accuracy on (eval_x, eval_y) of a linear classifier trained on (train_x, train_y).

    x: [N, D] features; y: int64 [N] class ids in ``0 .. num_classes - 1`` or IGNORE (left out).
    """
    keep, keep_eval = train_y != IGNORE, eval_y != IGNORE
    if not keep.any() or not keep_eval.any():
        raise ValueError("no labelled frame to train on or to score")
    device = torch.device(device)
    x = torch.as_tensor(np.asarray(train_x[keep], dtype=np.float32), device=device)
    y = torch.as_tensor(train_y[keep], device=device)
    mean = x.mean(0)
    std = x.std(0, unbiased=False).clamp_min(1e-5)
    x = (x - mean) / std
    weight = torch.zeros(x.shape[1], num_classes, device=device, requires_grad=True)
    bias = torch.zeros(num_classes, device=device, requires_grad=True)
    optimizer = torch.optim.Adam([weight, bias], lr=lr)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=generator).to(device).split(batch_frames):
            loss = F.cross_entropy(x[idx] @ weight + bias, y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    del x
    correct = 0
    ex, ey = eval_x[keep_eval], eval_y[keep_eval]
    with torch.no_grad():
        for start in range(0, len(ey), EVAL_CHUNK):
            chunk = torch.as_tensor(np.asarray(ex[start:start + EVAL_CHUNK], dtype=np.float32), device=device)
            pred = (((chunk - mean) / std) @ weight + bias).argmax(-1)
            correct += int((pred.cpu() == torch.as_tensor(ey[start:start + EVAL_CHUNK])).sum())
    return correct / len(ey)


def linear_probe_features(
    train: LayerFeatures,
    train_utterances: Sequence[ProbeUtterance],
    eval_: LayerFeatures,
    eval_utterances: Sequence[ProbeUtterance],
    *,
    layers: Sequence[str] | None = None,
    epochs: int = EPOCHS,
    lr: float = LR,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> dict:
    """The linear phone probe of every layer (or ``layers``) on features already computed."""
    train_y, eval_y = frame_labels(train, train_utterances), frame_labels(eval_, eval_utterances)
    names = list(layers) if layers is not None else train.names
    unknown = [n for n in names if n not in train.layers]
    if unknown:
        raise ValueError(f"unknown layers {unknown}; the model has {train.names}")
    accs = {name: train_linear_probe(train.layers[name], train_y, eval_.layers[name], eval_y, len(PHONES_39),
                                     epochs=epochs, lr=lr, seed=seed, device=device) for name in names}
    best = max(accs, key=accs.get)
    labelled = train_y[train_y != IGNORE]
    majority = int(np.bincount(labelled, minlength=len(PHONES_39)).argmax())
    scored = eval_y[eval_y != IGNORE]
    return {"layers": accs, "best_layer": best, "best_acc": accs[best],
            "majority_acc": float((scored == majority).mean()), "majority_phone": PHONES_39[majority],
            "num_train_frames": int(len(labelled)), "num_eval_frames": int(len(scored)),
            "num_classes": len(PHONES_39), "epochs": epochs, "lr": lr, "seed": seed}


def linear_phone_probe(
    model: Wav2Vec2Task,
    train_utterances: Sequence[ProbeUtterance],
    eval_utterances: Sequence[ProbeUtterance],
    *,
    layers: Sequence[str] | None = None,
    epochs: int = EPOCHS,
    lr: float = LR,
    seed: int = 0,
    device: str | torch.device | None = None,
    cache_dir: str | None = None,
    batch_s: float = DEFAULT_BATCH_S,
) -> dict:
    """CPC's linear phone probe of a frozen, in-memory ``model`` (a task model, or a DeepSpeed
    engine's ``module``) on utterances from :func:`ds_w2v.probe.read_utterances`.

    Returns ``{"layers": {name: frame accuracy}, "best_layer", "best_acc", "majority_acc", ...}``
    (layer names: :func:`ds_w2v.probe.layer_names`). Features are computed on the model's device
    and dtype, with its mode restored afterwards; ``device`` is where the classifiers train
    (default: the model's). ``cache_dir`` None (the default, for a model that is still changing)
    stores nothing.
    """
    require_phone_spans(train_utterances, "train utterances")
    require_phone_spans(eval_utterances, "eval utterances")
    if device is None:
        device = next(model.parameters()).device
    train, _ = cached_features(model, train_utterances, cache_dir, name="train", batch_s=batch_s)
    eval_, _ = cached_features(model, eval_utterances, cache_dir, name="eval", batch_s=batch_s)
    return linear_probe_features(train, train_utterances, eval_, eval_utterances, layers=layers, epochs=epochs,
                                 lr=lr, seed=seed, device=device)
