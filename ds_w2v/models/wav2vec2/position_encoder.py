"""Convolutional relative positional embedding (paper §4.2; Mohamed et al. 2019).

A grouped 1-D convolution over time (kernel 128 frames = 2.56 s, 16 groups) with weight
normalisation, GELU, added to the transformer input.

Weight normalisation is written out here (``weight = g * v / ||v||`` with the norm over every
axis but the kernel axis, i.e. ``torch.nn.utils.weight_norm(dim=2)``) instead of using
torch's hook/parametrization. Under DeepSpeed ZeRO-3 parameters are partitioned as soon as
a module is built, and torch's weight-norm machinery then computes ``g`` from an empty shard
or recomputes the weight outside the gather (DeepSpeed issue #1045). Here ``g`` and ``v`` are
plain parameters of this module, so ZeRO-3 gathers them before ``forward`` like any other.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ConvPositionalEmbedding(nn.Module):
    def __init__(self, dim: int, kernel: int, groups: int):
        super().__init__()
        self.dim, self.kernel, self.groups = dim, kernel, groups
        # initialised by init.init_weights: v ~ N(0, 4 / (kernel * dim)), g = ||v||, bias 0
        self.weight_v = nn.Parameter(torch.empty(dim, dim // groups, kernel))
        self.weight_g = nn.Parameter(torch.ones(1, 1, kernel))
        self.bias = nn.Parameter(torch.zeros(dim))

    @staticmethod
    def _v_norm(v: torch.Tensor) -> torch.Tensor:
        return v.float().pow(2).sum(dim=(0, 1), keepdim=True).sqrt()

    def weight(self) -> torch.Tensor:
        return self.weight_v * (self.weight_g / self._v_norm(self.weight_v)).to(self.weight_v.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, C] -> [B, T, C] positional signal (to be added to ``x``)."""
        y = F.conv1d(x.transpose(1, 2), self.weight().to(x.dtype), self.bias.to(x.dtype),
                     padding=self.kernel // 2, groups=self.groups)
        if self.kernel % 2 == 0:  # 'same' output length for an even kernel: drop the extra frame
            y = y[:, :, :-1]
        return F.gelu(y).transpose(1, 2)
