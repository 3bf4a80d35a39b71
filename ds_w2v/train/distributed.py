"""The process group: rank and world from the launcher's environment, DeepSpeed's
``init_distributed`` (nccl on GPU, gloo on CPU), and the few small collectives the trainer and
the evaluator need (one tensor each, on the device the backend wants)."""
from __future__ import annotations

import os
import socket
from typing import Any

import torch


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def world_from_env() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) as the launcher (deepspeed, torchrun) set them, or one process."""
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))


def run_device(device_key: str = "auto", local_rank: int = 0) -> torch.device:
    """The device a run's rank uses: its GPU when torch sees one and the config's ``device`` is
    ``auto``, else the CPU (``device=cpu``; tests and debugging with a GPU visible)."""
    if device_key != "cpu" and torch.cuda.is_available():
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def init_distributed(device: torch.device, local_rank: int = 0) -> None:
    """DeepSpeed's process group (nccl on GPU, gloo on CPU); without a launcher, as one process."""
    use_cuda = device.type == "cuda"
    if not use_cuda:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    alone = "WORLD_SIZE" not in os.environ or os.environ["WORLD_SIZE"] == "1"
    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    os.environ.setdefault("LOCAL_RANK", str(local_rank))
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(_free_port()))
    import deepspeed
    import torch.distributed as dist

    from .op_record import recorded_failure

    if recorded_failure("ShareMemCommBuilder"):
        # DeepSpeed builds its shared-memory collectives op in every process at start-up (CPU); a
        # build that failed or was cut before is not tried again: gloo's collectives serve instead
        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    if use_cuda:
        torch.cuda.set_device(device)
    backend = "nccl" if use_cuda else "gloo"
    if alone and not dist.is_initialized():
        # one process needs no rendezvous: an in-memory store, not a TCP port (two runs started at
        # once, as the demo and the study start them, could be handed the same free port)
        dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
    deepspeed.init_distributed(dist_backend=backend)


_OPS = ("sum", "min", "max")


def collective_device(device: torch.device) -> torch.device:
    """Where a collective's tensor must live: the GPU for nccl, the CPU for gloo."""
    return device if device.type == "cuda" else torch.device("cpu")


def all_reduce(values: list[float], op: str = "sum", device: torch.device | None = None) -> list[float]:
    """``values`` reduced over all ranks (float64, one collective); as given in one process."""
    import torch.distributed as dist

    if op not in _OPS:
        raise ValueError(f"all_reduce: op {op!r} is not one of {_OPS}")
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=collective_device(device or torch.device("cpu")))
    reduce_all_(t, op)
    return t.tolist()


def reduce_all_(t: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """In-place all-reduce of a tensor already on the collective device; a no-op in one process."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t, op={"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN, "max": dist.ReduceOp.MAX}[op])
    return t


def param_digest(module: torch.nn.Module, zero3: bool = False) -> str:
    """sha256 of every parameter's name and bytes, in name order: equal digests mean bit-equal
    parameters. Under ZeRO-3 each parameter is gathered first (one module's at a time)."""
    import hashlib

    h = hashlib.sha256()
    for name, p in sorted(module.named_parameters(), key=lambda kv: kv[0]):
        if zero3:
            import deepspeed

            with deepspeed.zero.GatheredParameters([p]):
                data = p.detach().to("cpu", copy=True)
        else:
            data = p.detach().to("cpu")
        h.update(name.encode())
        h.update(data.reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` in one process. A collective."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def replica_digests(module: torch.nn.Module, zero3: bool = False) -> list[str]:
    """Every rank's :func:`param_digest`, in rank order (a collective: every rank calls it)."""
    return [str(d) for d in gather_objects(param_digest(module, zero3))]


def shutdown() -> None:
    """Leave the process group together, after a command succeeded on every rank: a barrier, then
    destroy it. A rank whose interpreter exits while another still holds a gloo connection to it
    can make that one abort at exit (seen: exit -6 of rank 1 after a clean evaluate)."""
    import torch.distributed as dist

    # one process holds no connection to another: keep its group, which DeepSpeed's cached groups
    # (deepspeed.utils.groups) still name, so that a later run in the same process (a notebook,
    # the tests) can use them
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()
