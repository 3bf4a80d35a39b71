"""Convolutional feature encoder: raw 16 kHz waveform -> one 512-d frame every 20 ms.

Paper §2 / §4.2: seven 1-D convolutions, 512 channels, kernels (10,3,3,3,3,2,2) and strides
(5,2,2,2,2,2,2), GELU. Two normalisation schemes, as fairseq's ``extractor_mode``:

* ``group`` (BASE): GroupNorm with one group per channel after layer 0 only (normalises each
  channel over time), no conv bias;
* ``layer`` (LARGE): LayerNorm over channels after every layer, conv bias.

Norms run in fp32 whatever the autocast dtype: the statistics of a 12,800-frame layer-0
activation overflow bf16's 8-bit mantissa (fairseq's Fp32GroupNorm / Fp32LayerNorm).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import Wav2Vec2Config


class GradMultiply(torch.autograd.Function):
    """Identity forward; backward scales the gradient by ``scale`` (feature_grad_mult)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float) -> torch.Tensor:  # type: ignore[override]
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return grad * ctx.scale, None


class Fp32GroupNorm(nn.GroupNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.group_norm(x.float(), self.num_groups, self.weight.float(), self.bias.float(), self.eps)
        return y.to(x.dtype)


class Fp32LayerNorm(nn.LayerNorm):
    """LayerNorm over the channel axis of a [B, C, T] tensor, computed in fp32."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x.float().transpose(1, 2), self.normalized_shape, self.weight.float(), self.bias.float(), self.eps)
        return y.transpose(1, 2).to(x.dtype)


class ConvLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int, bias: bool, norm: nn.Module | None):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel, stride=stride, bias=bias)
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x)
        return F.gelu(x)


class FeatureEncoder(nn.Module):
    """[B, T] waveform -> [B, T', C] features (before the feature projection's LayerNorm)."""

    def __init__(self, config: Wav2Vec2Config):
        super().__init__()
        self.config = config
        layers = []
        in_ch = 1
        for i, (ch, k, s) in enumerate(config.conv_layers):
            if config.extractor_mode == "layer":
                norm: nn.Module | None = Fp32LayerNorm(ch, eps=1e-5)
            elif i == 0:
                norm = Fp32GroupNorm(ch, ch, eps=1e-5)
            else:
                norm = None
            layers.append(ConvLayer(in_ch, ch, k, s, config.conv_bias, norm))
            in_ch = ch
        self.conv_layers = nn.ModuleList(layers)
        self.grad_mult = config.feature_grad_mult

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames produced from ``lengths`` samples: L <- floor((L - k) / s) + 1 per layer."""
        for _, k, s in self.config.conv_layers:
            lengths = torch.div(lengths - k, s, rounding_mode="floor") + 1
        return lengths

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        x = waveform.unsqueeze(1)  # [B, 1, T]
        if self.grad_mult == 0.0 or not torch.is_grad_enabled():
            with torch.no_grad():  # frozen: no activations kept for backward
                for layer in self.conv_layers:
                    x = layer(x)
        else:
            for layer in self.conv_layers:
                x = layer(x)
            if self.grad_mult != 1.0:
                x = GradMultiply.apply(x, self.grad_mult)
        return x.transpose(1, 2)  # [B, T', C]
