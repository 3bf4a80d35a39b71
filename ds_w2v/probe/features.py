"""Every layer's frame features of a frozen model, computed once per split.

The layers, by name (HF transformers' ``hidden_states`` order after the conv features):

* ``conv``: the conv feature encoder's output after its LayerNorm -- the feature projection's
  input and the quantizer's (C = 512 for BASE, 128 for tiny);
* ``layer0``: the transformer's input (projected features + positional conv, and the first
  LayerNorm in post-LN models);
* ``layer1`` .. ``layerN``: each block's output (pre-LN models: before the final LayerNorm,
  which only ``last_hidden_state`` gets).

All share the conv encoder's frame grid (one frame every ``total_stride`` samples, 20 ms), so
frame ``t`` of every layer has one phone label (:mod:`ds_w2v.probe.frames`).

The model runs in eval mode (no masking, no dropout, every block: LayerDrop is off) without
autograd, on length-sorted batches of at most ``batch_s`` padded audio-seconds in which no row is
padded by more than ``max_padding`` (``ds_w2v.inference.plan_batches``, the batching of ``ds-w2v
transcribe``); padded frames are cut off by the backbone's frame lengths. The group-norm conv
encoder (BASE, tiny) normalises its first layer over time *including* padding, so a padded row's
features move slightly; ``batch_s`` and ``max_padding`` are part of the cache key for that reason.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..data.shard_format import SAMPLE_RATE
from ..inference import MAX_PADDING, plan_batches
from ..models.wav2vec2 import Wav2Vec2Task
from ..models.wav2vec2.model import check_inputs
from .utterances import ProbeUtterance

DEFAULT_BATCH_S = 60.0  # padded audio-seconds per forward (inference's default: ~1 GB peak for BASE on CPU)
CONV = "conv"


def layer_names(model: Wav2Vec2Task) -> list[str]:
    """``conv``, ``layer0`` (transformer input), ``layer1`` .. ``layerN`` (block outputs)."""
    return [CONV] + [f"layer{i}" for i in range(model.config.encoder_layers + 1)]


@dataclass
class LayerFeatures:
    """Frame features of a list of utterances, every layer one float32 [total_frames, D] matrix
    (utterance ``i``'s frames are rows ``offsets[i]:offsets[i + 1]``); read from the cache the
    matrices are memory-mapped, so a probe holds only the layer it works on in memory."""

    ids: list[str]
    offsets: np.ndarray
    """int64 [num_utterances + 1]."""
    layers: dict[str, np.ndarray]
    stride: int
    """Samples between frames (320 = 20 ms)."""
    receptive_field: int
    """Samples one frame sees (400 = 25 ms)."""

    @property
    def names(self) -> list[str]:
        return list(self.layers)

    @property
    def frame_lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def num_frames(self) -> int:
        return int(self.offsets[-1])

    def utterance(self, i: int, layer: str) -> np.ndarray:
        """[T_i, D] of utterance ``i`` in ``layer``."""
        return self.layers[layer][self.offsets[i]:self.offsets[i + 1]]


@torch.no_grad()
def extract_features(
    model: Wav2Vec2Task,
    utterances: Sequence[ProbeUtterance],
    *,
    batch_s: float = DEFAULT_BATCH_S,
    max_padding: float = MAX_PADDING,
) -> LayerFeatures:
    """Every layer's features of ``utterances`` (in their order), on the model's own device and
    dtype; the model's train/eval mode is restored afterwards (the trainer probes mid-run)."""
    if not utterances:
        raise ValueError("no utterances to extract features from")
    names = layer_names(model)
    p = next(model.parameters())
    device, dtype = p.device, (p.dtype if p.is_floating_point() else torch.float32)
    per_utt: list[list[np.ndarray] | None] = [None] * len(utterances)
    was_training = model.training
    model.eval()
    try:
        batches = plan_batches([u.num_samples for u in utterances], round(batch_s * SAMPLE_RATE), max_padding)
        for batch in batches:
            pcms = [utterances[i].pcm for i in batch]
            for i, feats in zip(batch, _forward(model, pcms, device, dtype, len(names))):
                per_utt[i] = feats
    finally:
        model.train(was_training)
    frames = [feats[0].shape[0] for feats in per_utt]
    offsets = np.concatenate([[0], np.cumsum(frames)]).astype(np.int64)
    layers = {name: np.concatenate([feats[k] for feats in per_utt]) for k, name in enumerate(names)}
    cfg = model.config
    return LayerFeatures([u.id for u in utterances], offsets, layers, cfg.total_stride, cfg.receptive_field)


def _forward(model: Wav2Vec2Task, pcms: list[np.ndarray], device: torch.device, dtype: torch.dtype,
             num_layers: int) -> list[list[np.ndarray]]:
    """One zero-padded batch through the backbone; per row, its [T, D] float32 array per layer."""
    lengths = torch.tensor([len(x) for x in pcms], dtype=torch.long)
    audio = torch.zeros(len(pcms), int(lengths.max()), dtype=torch.float32)
    for row, pcm in zip(audio, pcms):
        row[: len(pcm)] = torch.from_numpy(np.asarray(pcm, dtype=np.int16).astype(np.float32))
    audio.mul_(1.0 / 32768.0)  # int16 -> [-1, 1), as the training batches (data/batching.py)
    audio, lengths = audio.to(device=device, dtype=dtype), lengths.to(device)
    lengths = check_inputs(audio, lengths, model.config.receptive_field)
    out = model.wav2vec2(audio, lengths, mask_time=False, return_all_layers=True)
    states = [out.features, *out.hidden_states]
    if len(states) != num_layers:  # LayerDrop cannot skip in eval mode; a foreign backbone might
        raise RuntimeError(f"the backbone returned {len(states)} layers, expected {num_layers}")
    rows = []
    for b, n in enumerate(out.frame_lengths.tolist()):
        rows.append([s[b, :n].float().cpu().numpy() for s in states])
    return rows
