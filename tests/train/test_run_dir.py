"""check_shared_run_dir with 2 real processes (torch.multiprocessing, gloo): one shared run_dir
passes and leaves nothing behind; a run_dir that is not the same directory on every rank (a
different one per rank, as a node-local disk would be; or one holding a marker some earlier run
left) makes both ranks raise the same one-line ValueError. A hang fails (timeout)."""
from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path

import pytest
import torch.multiprocessing as mp

from ds_w2v.train.run_dir import MARKER, check_shared_run_dir

sys.path.insert(0, str(Path(__file__).parent))  # pytest runs with --import-mode=importlib
from run_dir_worker import check_rank  # noqa: E402

TIMEOUT_S = 90


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_ranks(run_dirs: list[Path], out: Path) -> list[str]:
    out.mkdir()
    ctx = mp.start_processes(check_rank, args=(2, _free_port(), [str(d) for d in run_dirs], str(out)), nprocs=2,
                             join=False, start_method="spawn")
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not ctx.join(timeout=1):
            if time.monotonic() > deadline:
                pytest.fail(f"check_shared_run_dir did not return on both ranks in {TIMEOUT_S} s")
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
    return [(out / f"rank{r}.txt").read_text() for r in (0, 1)]


def test_one_process_returns_at_once_without_a_process_group(tmp_path):
    check_shared_run_dir(tmp_path / "run", 0, 1)  # torch.distributed is not initialised here
    assert not (tmp_path / "run").exists()


def test_a_shared_run_dir_passes_and_leaves_no_marker(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "model.json").write_text("{}")
    assert _two_ranks([run, run], tmp_path / "out") == ["ok", "ok"]
    assert sorted(p.name for p in run.iterdir()) == ["model.json"]


def test_a_different_dir_per_rank_fails_on_both_ranks_with_one_line(tmp_path):
    a, b = tmp_path / "node0" / "run", tmp_path / "node1" / "run"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    got = _two_ranks([a, b], tmp_path / "out")
    assert got[0] == got[1]  # the same error on every rank
    msg = got[0]
    assert "\n" not in msg
    host = socket.gethostname()
    assert msg == (f"ValueError: run_dir {b} is not one directory shared by every rank: rank 1 (host {host}) "
                   f"finds no {MARKER} there, which rank 0 (host {host}) wrote; put run_dir on a filesystem every "
                   "node mounts (NFS, Lustre, ...) — see docs/multinode.md")
    assert not (a / MARKER).exists()  # rank 0 cleaned up after itself


def test_a_marker_left_by_another_run_does_not_pass(tmp_path):
    """A node's own disk at the same path, holding the marker of an earlier check: a different
    token, so it is caught although the file exists."""
    a, b = tmp_path / "node0" / "run", tmp_path / "node1" / "run"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    (b / MARKER).write_text(json.dumps({"token": "0" * 32, "host": "elsewhere"}))
    got = _two_ranks([a, b], tmp_path / "out")
    assert got[0] == got[1]
    assert got[0].startswith(f"ValueError: run_dir {b} is not one directory shared by every rank: rank 1 ")
    assert f"reads another token from {MARKER} than rank 0" in got[0]
