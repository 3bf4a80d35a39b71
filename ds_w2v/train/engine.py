"""``deepspeed.initialize`` over a model: the DeepSpeed engine and its optimizer."""
from __future__ import annotations

from typing import Any

import torch

from .config import OptimConfig


def build_engine(model: torch.nn.Module, ds_config: dict[str, Any], optim: OptimConfig, device: torch.device):
    """``deepspeed.initialize`` over the model's trainable parameters: (engine, optimizer).

    A DeepSpeed config without an ``"optimizer"`` block (the CPU ones) gets torch's fused AdamW
    with the recipe's hyper-parameters; GPU configs name DeepSpeed's FusedAdam / CPUAdam instead.
    ``build_ds_config`` makes ``ds_config``; ``init_distributed`` must have run."""
    import deepspeed

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = None
    if "optimizer" not in ds_config:
        optimizer = torch.optim.AdamW(params, lr=optim.lr, betas=optim.betas, eps=optim.eps,
                                      weight_decay=optim.weight_decay, fused=device.type in ("cpu", "cuda"))
    engine, optimizer, _, _ = deepspeed.initialize(
        model=model, model_parameters=params, optimizer=optimizer, config=ds_config, dist_init_required=False
    )
    return engine, optimizer
