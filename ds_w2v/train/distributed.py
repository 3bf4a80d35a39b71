"""The process group: rank and world from the launcher's environment, DeepSpeed's
``init_distributed`` (nccl on GPU, gloo on CPU), and the few small collectives the trainer and
the evaluator need (one tensor each, on the device the backend wants)."""
from __future__ import annotations

import os
import socket

import torch


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def world_from_env() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) as the launcher (deepspeed, torchrun) set them, or one process."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def init_distributed(device: torch.device, local_rank: int = 0) -> None:
    """DeepSpeed's process group (nccl on GPU, gloo on CPU); without a launcher, as one process."""
    use_cuda = device.type == "cuda"
    if not use_cuda:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    os.environ.setdefault("LOCAL_RANK", str(local_rank))
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(_free_port()))
    import deepspeed

    if use_cuda:
        torch.cuda.set_device(device)
    deepspeed.init_distributed(dist_backend="nccl" if use_cuda else "gloo")
