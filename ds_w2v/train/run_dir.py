"""One run directory seen by every rank.

Rank 0 writes ``model.json``, the metrics and the ``latest`` / ``best`` pointers into ``run_dir``;
every rank writes its own checkpoint shards there and reads all of them back to resume. With
several nodes and a node-local ``run_dir`` (each node's own ``/scratch/run``) every save
"succeeds" and the run fails only at its first resume or export, hours later, on shards that are
on another machine. ``check_shared_run_dir`` finds that at start-up, once the process group
exists: rank 0 writes a fresh random token into the directory, every rank reads it back.
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import time
from pathlib import Path

import torch

MARKER = ".shared_run_dir_check"
FIX = "put run_dir on a filesystem every node mounts (NFS, Lustre, ...) — see docs/multinode.md"
# NFS may cache "no such file" for a name looked up before rank 0 created it (negative lookup
# cache); a miss is retried, listing the directory first (which revalidates it), for this long
MISS_RETRY_S = 3.0


def check_shared_run_dir(run_dir: Path, rank: int, world_size: int) -> None:
    """Call on every rank right after the process group starts. ValueError, the same one line on
    every rank, if some rank does not read the token rank 0 wrote into ``run_dir``."""
    if world_size == 1:
        return
    import torch.distributed as dist

    run_dir = Path(run_dir)
    marker = run_dir / MARKER
    host = socket.gethostname()
    sent: list = [None, host]  # [token, rank 0's host]
    problem = None
    if rank == 0:
        token = secrets.token_hex(16)  # fresh: a marker some earlier run left on a node's own disk differs
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            tmp = run_dir / f"{MARKER}.tmp"
            tmp.write_text(json.dumps({"token": token, "host": host}))
            tmp.replace(marker)
            sent[0] = token
        except OSError as e:
            problem = f"cannot write {marker} ({e.strerror or e})"
    # rank 0 sends after its write, so a rank that receives the token can already read the file
    dist.broadcast_object_list(sent, src=0)
    token, host0 = sent
    if problem is None:
        problem = _read_problem(marker, token, host0)

    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    first = torch.tensor([rank if problem else world_size], dtype=torch.int64, device=device)
    dist.all_reduce(first, op=dist.ReduceOp.MIN)  # the first failing rank; world_size: none
    first_bad = int(first.item())
    report = [str(run_dir), host, problem]
    if first_bad < world_size:
        dist.broadcast_object_list(report, src=first_bad)
    if rank == 0:  # every rank read the marker before the all-reduce
        with contextlib.suppress(OSError):
            marker.unlink(missing_ok=True)
    if first_bad < world_size:
        bad_dir, bad_host, bad_problem = report
        raise ValueError(f"run_dir {bad_dir} is not one directory shared by every rank: rank {first_bad} "
                         f"(host {bad_host}) {bad_problem}; {FIX}")


def _read_problem(marker: Path, token: str | None, host0: str) -> str | None:
    """What is wrong with this rank's view of rank 0's marker, or None."""
    deadline = time.monotonic() + MISS_RETRY_S
    while True:
        try:
            found = json.loads(marker.read_text()).get("token")
            break
        except FileNotFoundError:
            if time.monotonic() > deadline:
                return f"finds no {marker.name} there, which rank 0 (host {host0}) wrote"
            with contextlib.suppress(OSError):
                os.listdir(marker.parent)
            time.sleep(0.2)
        except (OSError, ValueError, AttributeError) as e:
            return f"cannot read {marker.name} there ({type(e).__name__}: {e})"
    if found != token:
        return f"reads another token from {marker.name} than rank 0 (host {host0}) wrote there"
    return None
