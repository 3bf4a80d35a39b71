"""launch/*.sh find the project's environment themselves: a new user who never activated .venv
(README's two commands made it) runs `bash launch/pretrain.sh ...` and gets the venv's python,
not `exec: deepspeed: not found` or the system python without ds_w2v."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_launch_script_runs_without_an_activated_environment(small_timit_shards, tmp_path):
    venv = Path(sys.executable).parents[1]  # the environment this suite runs in
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", str(tmp_path)), "VENV": str(venv),
           "DS_ACCELERATOR": "cpu"}
    proc = subprocess.run(["bash", str(ROOT / "launch" / "pretrain.sh"), "--recipe", "pretrain_tiny",
                           f"data.shards={small_timit_shards}", "--dry-run"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "deepspeed   " in proc.stdout and "ZeRO stage 2" in proc.stdout
    assert "runs/pretrain_tiny" in proc.stdout  # the recipe's own run directory
