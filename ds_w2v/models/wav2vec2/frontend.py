"""Feature projection (LayerNorm -> Linear -> dropout) and frame-level length arithmetic."""
from __future__ import annotations

import torch
from torch import nn

from .config import Wav2Vec2Config


class FeatureProjection(nn.Module):
    """Projects conv features (C = 512) to the transformer width; also returns the normalised
    features, which are the quantizer's input (paper §2: the quantizer sees the encoder output)."""

    def __init__(self, config: Wav2Vec2Config):
        super().__init__()
        self.layer_norm = nn.LayerNorm(config.conv_dim, eps=config.layer_norm_eps)
        self.projection = nn.Linear(config.conv_dim, config.encoder_embed_dim)
        self.dropout = nn.Dropout(config.dropout_input)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        normed = self.layer_norm(features)
        return self.dropout(self.projection(normed)), normed


def lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """Bool [B, max_len]: True where a frame (or sample) holds real audio, False on padding."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]
