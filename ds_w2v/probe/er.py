"""SUPERB emotion recognition (ER): frozen upstream, weighted sum of its layers, a linear
projection to 256, mean pooling over the real frames, a linear classifier; accuracy on the test
split over the corpus's label set.

SUPERB's ER (IEMOCAP, four classes, s3prl ``downstream/emotion``) has this head (projector 256,
mean pooling, linear). Its lr 1e-4 is for 30,000 steps; a probe here runs a few hundred, so
:data:`LR` is 1e-3. The dev split, when given, chooses the epoch (highest dev accuracy); the test
split is scored once. Chance is 1 / classes; ``majority_acc`` is the test accuracy of always
answering the most frequent train label.
"""
from __future__ import annotations

from collections import Counter
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .downstream import DownstreamData, NormalizedLayerSum, fit, frame_mask, predict, weighted_layer_names
from .features import LayerFeatures
from .utterances import ProbeUtterance, require_labels

PROJECTOR_DIM = 256  # SUPERB ER's projector
EPOCHS = 20
LR = 1e-3
BATCH_UTTERANCES = 8


class MeanPoolClassifier(nn.Module):
    def __init__(self, num_layers: int, dim: int, num_labels: int, projector_dim: int = PROJECTOR_DIM):
        super().__init__()
        self.layers = NormalizedLayerSum(num_layers)
        self.projector = nn.Linear(dim, projector_dim)
        self.classifier = nn.Linear(projector_dim, num_labels)

    def forward(self, states: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h = self.projector(self.layers(states))  # [B, T, P]
        mask = frame_mask(lengths, h.shape[1])[:, :, None].to(h.dtype)
        pooled = (h * mask).sum(1) / lengths[:, None].to(h.dtype)  # padding never enters the mean
        return self.classifier(pooled)  # [B, num_labels]


def _loss(logits: torch.Tensor, lengths: torch.Tensor, targets: list[int]) -> torch.Tensor:
    return F.cross_entropy(logits.float(), torch.tensor(targets, device=logits.device))


def _accuracy(head: nn.Module, data: DownstreamData, device: torch.device) -> float:
    preds = [int(y.argmax()) for y in predict(head, data, BATCH_UTTERANCES, device)]
    return sum(p == t for p, t in zip(preds, data.targets)) / len(preds)


def emotion_recognition_probe(
    train: LayerFeatures,
    train_utterances: Sequence[ProbeUtterance],
    test: LayerFeatures,
    test_utterances: Sequence[ProbeUtterance],
    labels: Sequence[str],
    dev: LayerFeatures | None = None,
    dev_utterances: Sequence[ProbeUtterance] | None = None,
    *,
    epochs: int = EPOCHS,
    lr: float = LR,
    batch_size: int = BATCH_UTTERANCES,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> dict:
    """SUPERB ER on frozen features: ``{"acc", "dev_acc", "best_epoch", "layer_weights", ...}``."""
    for where, utts in (("train", train_utterances), ("test", test_utterances), ("dev", dev_utterances or [])):
        require_labels(utts, labels, f"{where} utterances")
    device = torch.device(device)
    ids = {label: i for i, label in enumerate(labels)}

    def data(features, utterances):
        return DownstreamData(features, [ids[u.label] for u in utterances])

    train_data, test_data = data(train, train_utterances), data(test, test_utterances)
    dev_data = data(dev, dev_utterances) if dev is not None else None
    names = weighted_layer_names(train)
    dim = train.layers[names[0]].shape[1]
    head, info = fit(lambda: MeanPoolClassifier(len(names), dim, len(labels)), _loss,
                     lambda h, d: _accuracy(h, d, device), train_data, dev_data, higher_is_better=True,
                     epochs=epochs, lr=lr, batch_size=batch_size, seed=seed, device=device)
    majority = Counter(train_data.targets).most_common(1)[0][0]
    return {"acc": _accuracy(head, test_data, device), "dev_acc": info["dev_score"], "best_epoch": info["best_epoch"],
            "chance": 1.0 / len(labels),
            "majority_acc": sum(t == majority for t in test_data.targets) / len(test_data.targets),
            "labels": list(labels), "layer_weights": dict(zip(names, head.layers.layer_weights())),
            "train_loss": info["train_loss"], "num_train_utterances": len(train_utterances),
            "num_test_utterances": len(test_utterances), "epochs": epochs, "lr": lr, "seed": seed}
