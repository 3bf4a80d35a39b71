"""Two processes through the ``deepspeed`` launcher (CPU, gloo): ZeRO-2 and ZeRO-3 runs end
with identical parameters on both ranks (and the same number of updates); a hang fails."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("deepspeed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("ds_config,stage", [("cpu.json", 2), ("cpu_zero3.json", 3)])
def test_two_ranks_end_identical(timit_shards, tmp_path, ds_config, stage):
    launcher = shutil.which("deepspeed", path=str(Path(sys.executable).parent)) or shutil.which("deepspeed")
    script = Path(__file__).with_name("dist_check.py")
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "PYTHONUNBUFFERED": "1"}
    cmd = [launcher, "--num_gpus", "2", "--master_port", str(_free_port()), str(script),
           "--shards", str(timit_shards), "--out", str(tmp_path), "--ds", ds_config]
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=420)
    except subprocess.TimeoutExpired as e:  # fail, never hang CI
        pytest.fail(f"2-rank run did not finish in 420 s: {(e.stdout or b'')[-2000:]!r}")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    info = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert info[0]["world"] == info[1]["world"] == 2
    assert info[0]["updates"] == info[1]["updates"] == 3
    assert info[0]["batches"] == info[1]["batches"]
    a, b = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert a.keys() == b.keys() and len(a) > 50
    for name in a:
        assert torch.equal(a[name], b[name]), name
    from ds_w2v import build_model

    torch.manual_seed(1)
    init = dict(build_model("tiny", "pretrain", encoder_layerdrop=0.1).named_parameters())
    moved = [n for n in a if not torch.equal(a[n], init[n].detach())]
    assert len(moved) > len(a) // 2  # the updates did change the parameters
    meta = json.loads((tmp_path / "run" / "model.json").read_text())
    assert meta["task"] == "pretrain"
