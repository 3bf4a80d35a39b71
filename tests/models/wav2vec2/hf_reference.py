"""Inputs for the parity tests against HF transformers (a test-only dependency; importing this
skips a module without it). The HF twin of a model is ``interop_hf.hf_twin``."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")


def deterministic_gumbel(logits, tau=1.0, hard=False, eps=1e-10, dim=-1):
    """Noise-free straight-through 'Gumbel' sample: the same in both implementations."""
    soft = (logits / tau).softmax(dim)
    hard_ = torch.zeros_like(soft).scatter_(dim, soft.argmax(dim, keepdim=True), 1.0)
    return hard_ - soft.detach() + soft if hard else soft


def padded_batch(lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    x = torch.randn(len(lengths), int(lengths.max()), generator=g) * 0.1
    x = x * (torch.arange(x.shape[1])[None] < lengths[:, None])
    return x, lengths


def attention_mask(lengths, total):
    return (torch.arange(total)[None] < lengths[:, None]).long()


# the two block orders the parity tests cover (BASE: post-LN, group-norm conv; LARGE-like:
# pre-LN, layer-norm conv), dropout off so both implementations compute the same function
VARIANTS = {
    "postln_group": {"layer_norm_first": False},
    "preln_layer": {"layer_norm_first": True, "extractor_mode": "layer", "conv_bias": True, "normalize_audio": True},
}
NO_DROPOUT = dict(dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, dropout_input=0.0,
                  dropout_features=0.0, final_dropout=0.0, encoder_layerdrop=0.0, mask_channel_prob=0.0)
