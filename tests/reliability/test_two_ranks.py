"""Two ranks through the ``deepspeed`` launcher (CPU, gloo, ZeRO-2) on a split of 3 shards of
2, 5 and 30 utterances (an odd count of very uneven shards), with a NaN loss on rank 1 alone at
one update attempt: no hang (the launch has a timeout), both ranks make the same number of
updates and micro-batches, both skip the same attempt, and they end with identical parameters."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # pytest runs with --import-mode=importlib
from reliability_helpers import metrics_rows, read_members, repack, subprocess_env  # noqa: E402

pytest.importorskip("deepspeed")
pytestmark = pytest.mark.slow

TIMEOUT_S = 300


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_uneven_shards_and_a_nan_on_one_rank(speech, tmp_path):
    shards = repack(speech["dir"], tmp_path / "shards", [2, 5, 30])
    shard_of = {key: i for i, shard in enumerate(shards) for key, _ in read_members(shard)}
    launcher = shutil.which("deepspeed", path=str(Path(sys.executable).parent)) or shutil.which("deepspeed")
    script = Path(__file__).with_name("two_rank_check.py")
    cmd = [launcher, "--num_gpus", "2", "--master_port", str(_free_port()), str(script), "--shards",
           str(tmp_path / "shards"), "--out", str(tmp_path), "--nan-rank", "1", "--nan-attempt", "1"]
    try:
        proc = subprocess.run(cmd, env=subprocess_env(), capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as e:  # a hang fails, never blocks CI
        pytest.fail(f"2-rank run did not finish in {TIMEOUT_S} s: {(e.stdout or b'')[-2000:]!r}")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    info = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [i["rank"] for i in info] == [0, 1] and {i["world"] for i in info} == {2}
    assert {i["zero_stage"] for i in info} == {2}
    # the same number of updates, micro-batches and stream position on both ranks
    assert info[0]["updates"] == info[1]["updates"] == 4
    assert info[0]["micro_batches"] == info[1]["micro_batches"] == 5 * 2  # 4 updates + 1 skipped, x 2
    # (the shards each rank has begun are its own: a checkpoint holds their union)
    assert [{k: v for k, v in i["stream"].items() if k != "opened"} for i in info[1:]] == \
        [{k: v for k, v in info[0]["stream"].items() if k != "opened"}]
    # each rank read its own shards: one rank the 2- and 30-utterance ones, the other the 5 (or a
    # permutation of that per pass), and so looped over far fewer utterances
    read = [{shard_of[k] for k in i["ids"]} for i in info]
    assert read[0] and read[1] and len(read[0] | read[1]) == 3
    # the NaN on rank 1 was skipped on both, and counted
    assert info[0]["skipped_steps"] == info[1]["skipped_steps"] == 1
    assert info[0]["result"]["skipped_updates"] == info[1]["result"]["skipped_updates"] == 1
    rows = metrics_rows(tmp_path / "run")
    assert [r["train/skipped_updates"] for r in rows if "train/skipped_updates" in r] == [1]
    assert [r["update"] for r in rows if "train/loss" in r] == [1, 2, 3, 4]
    a, b = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert a.keys() == b.keys() and len(a) > 50
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert all(bool(torch.isfinite(t).all()) for t in a.values())
