"""Transformer context network (paper §2): self-attention blocks over the projected frames.

* post-LN blocks with a LayerNorm before the first block (BASE), or pre-LN blocks with a
  final LayerNorm (LARGE: ``layer_norm_first``);
* attention through ``F.scaled_dot_product_attention`` (flash / memory-efficient kernels where
  available) with one fused QKV projection, and a key-padding mask only when the batch is
  actually padded (an all-valid batch takes the unmasked, fastest kernel);
* LayerDrop (Fan et al. 2019) whose skip decisions come from a generator seeded by
  (seed, update): identical on every rank for a given update, as ZeRO-3's collective parameter
  gathers and gradient reductions require, and reproducible on resume.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from .config import Wav2Vec2Config
from .position_encoder import ConvPositionalEmbedding


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.qkv_proj = nn.Linear(dim, 3 * dim)  # [q; k; v] rows, one GEMM
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        b, t, d = x.shape
        qkv = self.qkv_proj(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(
            qkv[0], qkv[1], qkv[2], attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out_proj(y.transpose(1, 2).reshape(b, t, d))


class FeedForward(nn.Module):
    def __init__(self, dim: int, ffn_dim: int, activation_dropout: float, dropout: float):
        super().__init__()
        self.fc1 = nn.Linear(dim, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, dim)
        self.activation_dropout = nn.Dropout(activation_dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc2(self.activation_dropout(F.gelu(self.fc1(x)))))


class TransformerLayer(nn.Module):
    def __init__(self, config: Wav2Vec2Config):
        super().__init__()
        d = config.encoder_embed_dim
        self.layer_norm_first = config.layer_norm_first
        self.self_attn = SelfAttention(d, config.encoder_attention_heads, config.attention_dropout)
        self.dropout = nn.Dropout(config.dropout)
        self.self_attn_layer_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.ffn = FeedForward(d, config.encoder_ffn_embed_dim, config.activation_dropout, config.dropout)
        self.final_layer_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None) -> torch.Tensor:
        if self.layer_norm_first:
            x = x + self.dropout(self.self_attn(self.self_attn_layer_norm(x), attn_mask))
            return x + self.ffn(self.final_layer_norm(x))
        x = self.self_attn_layer_norm(x + self.dropout(self.self_attn(x, attn_mask)))
        return self.final_layer_norm(x + self.ffn(x))


class TransformerEncoder(nn.Module):
    def __init__(self, config: Wav2Vec2Config):
        super().__init__()
        d = config.encoder_embed_dim
        self.layer_norm_first = config.layer_norm_first
        self.layerdrop = config.encoder_layerdrop
        self.pos_conv = ConvPositionalEmbedding(d, config.conv_pos, config.conv_pos_groups)
        self.layer_norm = nn.LayerNorm(d, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(TransformerLayer(config) for _ in range(config.encoder_layers))
        self.layerdrop_seed = 0
        # indices of layers whose activations are recomputed in backward (activation checkpointing)
        self.checkpoint_layers: set[int] = set()

    def layers_to_run(self, update: int) -> list[int]:
        """Layer indices kept by LayerDrop at ``update`` (all of them outside training)."""
        n = len(self.layers)
        if not self.training or self.layerdrop <= 0:
            return list(range(n))
        gen = torch.Generator().manual_seed(self.layerdrop_seed * 1_000_003 + update)
        return [i for i, p in enumerate(torch.rand(n, generator=gen).tolist()) if p >= self.layerdrop]

    def forward(
        self,
        x: torch.Tensor,
        frame_mask: torch.Tensor | None,
        update: int = 0,
        return_all_layers: bool = False,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x [B, T, D]; frame_mask bool [B, T] (True = real frame) or None when nothing is padded.

        Returns the last hidden state and, if asked, the input to the first block followed by
        every block's raw output (HF transformers 5's ``hidden_states``).
        """
        attn_mask = None
        if frame_mask is not None:
            x = x.masked_fill(~frame_mask[:, :, None], 0.0)  # padding must not leak through pos_conv
            attn_mask = frame_mask[:, None, None, :]  # [B, 1, 1, T] key-padding mask
        x = x + self.pos_conv(x)
        if not self.layer_norm_first:
            x = self.layer_norm(x)
        x = self.dropout(x)
        states = [x] if return_all_layers else []
        for i in self.layers_to_run(update):
            layer = self.layers[i]
            if i in self.checkpoint_layers and self.training and torch.is_grad_enabled():
                x = checkpoint(layer, x, attn_mask, use_reentrant=False)
            else:
                x = layer(x, attn_mask)
            if return_all_layers:
                states.append(x)
        if self.layer_norm_first:
            x = self.layer_norm(x)  # the final LN feeds last_hidden_state only, as in HF transformers 5
        return x, states
