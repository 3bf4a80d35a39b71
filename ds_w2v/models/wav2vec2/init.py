"""Weight initialisation, safe under DeepSpeed ZeRO-3.

Under ``deepspeed.zero.Init`` every module's parameters are partitioned as soon as its own
``__init__`` returns, so a whole-model initialisation pass afterwards sees empty shards. Each
module's parameters are therefore gathered (``GatheredParameters(modifier_rank=0)``: rank 0
initialises, the result is broadcast) around its initialisation; without ZeRO-3 nothing is
gathered.

The scheme is fairseq's: ``init_bert_params`` for linear layers (N(0, 0.02), zero bias),
Kaiming-normal conv encoder, the positional conv's own rule, the quantizer's N(0, 1) logit
projection and U(0, 1) codebook, U(0, 1) mask embedding.
"""
from __future__ import annotations

import contextlib
import math

import torch
from torch import nn


def gathered(params: list[nn.Parameter]):
    """Context in which ZeRO-3-partitioned ``params`` are whole (modifications from rank 0 kept)."""
    if any(hasattr(p, "ds_id") for p in params):
        import deepspeed

        return deepspeed.zero.GatheredParameters(params, modifier_rank=0)
    return contextlib.nullcontext()


@torch.no_grad()
def init_weights(model: nn.Module) -> None:
    from .position_encoder import ConvPositionalEmbedding
    from .quantizer import GumbelQuantizer

    special_linear = {id(m.weight_proj) for m in model.modules() if isinstance(m, GumbelQuantizer)}
    for module in model.modules():
        params = list(module.parameters(recurse=False))
        if not params:
            continue
        with gathered(params):
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, mean=0.0, std=1.0 if id(module) in special_linear else 0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, (nn.LayerNorm, nn.GroupNorm)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Conv1d):  # feature encoder convolutions
                nn.init.kaiming_normal_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, ConvPositionalEmbedding):
                std = math.sqrt(4.0 / (module.kernel * module.dim))  # fairseq
                nn.init.normal_(module.weight_v, mean=0.0, std=std)
                module.weight_g.copy_(module._v_norm(module.weight_v))  # start with weight == v
                nn.init.zeros_(module.bias)
            elif isinstance(module, GumbelQuantizer):
                nn.init.uniform_(module.codevectors)
            elif hasattr(module, "mask_emb"):
                nn.init.uniform_(module.mask_emb)
            elif type(module).__name__ == "LayerWeightedSum":
                nn.init.constant_(module.weights, 1.0 / module.weights.numel())
