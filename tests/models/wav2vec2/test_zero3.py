"""The model under DeepSpeed ZeRO-3 (parameters partitioned at construction) computes what the
plain model computes, positional-conv weight norm included (DeepSpeed issue #1045)."""
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("deepspeed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_zero3_partitioned_model_matches_plain_model():
    env = {**os.environ, "RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "DS_ACCELERATOR": "cpu"}
    script = Path(__file__).with_name("zero3_check.py")
    proc = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["partitioned"], "ZeRO-3 did not partition the positional conv (test would prove nothing)"
    assert result["max_abs_diff"] < 1e-5
    assert math.isfinite(result["loss"])
