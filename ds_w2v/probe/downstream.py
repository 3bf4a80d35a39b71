"""What SUPERB's downstream tasks share (Yang et al. 2021, "SUPERB: Speech processing Universal
PERformance Benchmark", §3): the upstream frozen, its layers mixed by a learned softmax-weighted
sum, a small head on top, trained on the train split, the head kept from the epoch with the best
dev score, scored once on the test split.

Each layer goes through a LayerNorm without parameters before the weighted sum (s3prl's
featurizer ``normalize`` option): pre-LN blocks' outputs grow with depth, and without it the
weights would mostly measure scale. The sum is over ``layer0`` .. ``layerN`` (the transformer
input and every block's output, HF's ``hidden_states`` -- as SUPERB and the classification
head's ``use_weighted_layer_sum``, ``models.wav2vec2.heads.LayerWeightedSum``, which this is
with the normalisation added and the layers arriving stacked in one [L, B, T, D] tensor); the
conv features have another width and are left out.

Heads are built under ``torch.random.fork_rng`` with ``seed`` and batches are drawn from a
seeded generator, so a probe is reproducible and leaves the global RNGs as it found them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .features import CONV, LayerFeatures


def weighted_layer_names(features: LayerFeatures) -> list[str]:
    """The layers the weighted sum mixes: every one but the conv features."""
    return [n for n in features.names if n != CONV]


class NormalizedLayerSum(nn.Module):
    """softmax(w)-weighted sum of parameter-free LayerNorm-ed layers: [L, B, T, D] -> [B, T, D]."""

    def __init__(self, num_layers: int):
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(num_layers))  # uniform to start, as LayerWeightedSum

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        if states.shape[0] != self.weights.numel():
            raise ValueError(f"{states.shape[0]} layers, the weighted sum has {self.weights.numel()}")
        normed = F.layer_norm(states, states.shape[-1:])
        return torch.einsum("l,lbtd->btd", torch.softmax(self.weights, dim=-1), normed)

    def layer_weights(self) -> list[float]:
        return torch.softmax(self.weights.detach(), dim=-1).tolist()


@dataclass
class DownstreamData:
    """Frozen features of a split and one target per utterance (a phone-id list, a class id)."""

    features: LayerFeatures
    targets: list[Any]

    def __post_init__(self) -> None:
        if len(self.targets) != len(self.features.ids):
            raise ValueError(f"{len(self.targets)} targets for {len(self.features.ids)} utterances")

    def batch(self, idx: Sequence[int], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The weighted layers, zero-padded, as one [L, B, T, D] tensor, and the frame lengths [B]."""
        lengths = self.features.frame_lengths[list(idx)]
        names = weighted_layer_names(self.features)
        dim = self.features.layers[names[0]].shape[1]
        x = np.zeros((len(names), len(idx), int(lengths.max()), dim), dtype=np.float32)
        for k, name in enumerate(names):
            for row, i in enumerate(idx):
                x[k, row, : lengths[row]] = self.features.utterance(i, name)
        return torch.from_numpy(x).to(device), torch.as_tensor(lengths, device=device)


def frame_mask(lengths: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Bool [B, T]: True on real frames."""
    return torch.arange(num_frames, device=lengths.device)[None, :] < lengths[:, None]


@torch.no_grad()
def predict(head: nn.Module, data: DownstreamData, batch_size: int, device: torch.device) -> list[torch.Tensor]:
    """The head's output per utterance (on the CPU, padding cut off for frame outputs)."""
    head.eval()
    out: list[torch.Tensor] = []
    for start in range(0, len(data.targets), batch_size):
        idx = list(range(start, min(start + batch_size, len(data.targets))))
        states, lengths = data.batch(idx, device)
        y = head(states, lengths).float().cpu()
        for row, n in enumerate(lengths.tolist()):
            out.append(y[row, :n] if y.dim() == 3 else y[row])
    return out


def fit(
    build_head: Callable[[], nn.Module],
    loss_fn: Callable[[torch.Tensor, torch.Tensor, list[Any]], torch.Tensor],
    score_fn: Callable[[nn.Module, DownstreamData], float],
    train: DownstreamData,
    dev: DownstreamData | None,
    *,
    higher_is_better: bool,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    device: torch.device,
) -> tuple[nn.Module, dict]:
    """Train the head (Adam, ``epochs`` passes of ``batch_size`` utterances); with ``dev``, keep
    the epoch whose dev score is best, else the last. Returns (head, {best_epoch, dev_score, ...})."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        head = build_head().to(device)
    optimizer = torch.optim.Adam(head.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    best_state, best_epoch, best_score = None, epochs, None
    losses = []
    for epoch in range(1, epochs + 1):
        head.train()
        total, count = 0.0, 0
        for idx in torch.randperm(len(train.targets), generator=generator).split(batch_size):
            idx = idx.tolist()
            states, lengths = train.batch(idx, device)
            loss = loss_fn(head(states, lengths), lengths, [train.targets[i] for i in idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, count = total + float(loss.detach()) * len(idx), count + len(idx)
        losses.append(total / count)
        if dev is not None:
            score = score_fn(head, dev)
            better = best_score is None or (score > best_score if higher_is_better else score < best_score)
            if better and math.isfinite(score):
                best_state = {k: v.detach().clone() for k, v in head.state_dict().items()}
                best_epoch, best_score = epoch, score
    if best_state is not None:
        head.load_state_dict(best_state)
    head.eval()
    return head, {"best_epoch": best_epoch, "dev_score": best_score, "train_loss": [round(x, 4) for x in losses]}
