"""One rank of test_run_dir.py's 2-process check (a module of its own: torch.multiprocessing's
spawned children import the function they run by module name)."""
from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path


def check_rank(rank: int, world_size: int, port: int, run_dirs: list[str], out: str) -> None:
    import torch.distributed as dist

    from ds_w2v.train.run_dir import check_shared_run_dir

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size, timeout=timedelta(seconds=30))
    try:
        check_shared_run_dir(Path(run_dirs[rank]), rank, world_size)
        result = "ok"
    except ValueError as e:
        result = f"ValueError: {e}"
    finally:
        dist.destroy_process_group()
    (Path(out) / f"rank{rank}.txt").write_text(result)
