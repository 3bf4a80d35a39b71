"""One GPU, the real entry point: ``python -m ds_w2v.train pretrain --recipe pretrain_tiny`` in bf16
under ZeRO-2 (``zero2.json``, with ``data.prefetch=true``) and ZeRO-3 (``zero3.json``) on a tiny
synthetic TIMIT corpus: 2 updates, stop, rerun to 4: the second run resumes from update 2's
checkpoint and continues; every loss is finite. Also the device-side prefetch feed on CUDA: the
same batches as the loader's, already on the GPU.

On the CPU dry run (DS_W2V_GPU_TESTS_ON_CPU=1) the same runs use the CPU configs (cpu.json,
cpu_zero3.json), ``device=cpu``, bf16."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from ds_w2v.cli import main as cli
from ds_w2v.data.index import read_split
from ds_w2v.data.loader import StreamingLoader
from ds_w2v.data.prefetch import BatchFeed
from ds_w2v.data.stream import StreamConfig

pytestmark = pytest.mark.gpu

# ZeRO stage -> (GPU config, CPU config); both shipped in ds_configs/
DS_CONFIGS = {"zero2": ("zero2.json", "cpu.json"), "zero3": ("zero3.json", "cpu_zero3.json")}
RUN_TIMEOUT_S = 300  # a first run on a GPU may JIT-build DeepSpeed's FusedAdam (nvcc, ~1 min)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpu_timit")
    assert cli(["synth", "timit", "--out", str(root / "TIMIT"), "--speakers", "25", "--sentences-per-speaker", "3",
                "--workers", "2", "--overwrite"]) == 0
    assert cli(["prepare", "--format", "timit", str(root / "TIMIT"), "--out", str(root / "shards"), "--workers", "2",
                "--no-progress", "--overwrite"]) == 0
    return root / "shards"


def _env(device: torch.device) -> dict[str, str]:
    """This environment less the process-group variables an in-process trainer may have left, and
    DeepSpeed's accelerator as the device needs it (tests/conftest.py pins the CPU's for the suite)."""
    dist = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_SIZE", "CROSS_RANK", "CROSS_SIZE")
    env = {k: v for k, v in os.environ.items() if k not in dist and k != "DS_ACCELERATOR"}
    if device.type == "cpu":
        env["DS_ACCELERATOR"] = "cpu"
    return {**env, "PYTHONUNBUFFERED": "1"}


def _train(shards, run_dir, ds_config: str, device: torch.device, max_updates: int, *extra: str) -> str:
    cmd = [sys.executable, "-m", "ds_w2v.train", "pretrain", "--recipe", "pretrain_tiny", f"data.shards={shards}",
           f"run_dir={run_dir}", f"deepspeed_config={ds_config}", "precision=bf16", f"max_updates={max_updates}",
           "data.batch_s=12", "global_batch_s=24", "data.shuffle_buffer=16", "log_every=1", "save_every=2",
           "eval_every=1000", "data.dev_split=null", f"device={'cpu' if device.type == 'cpu' else 'auto'}", *extra]
    proc = subprocess.run(cmd, env=_env(device), capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stderr


@pytest.mark.parametrize("zero", DS_CONFIGS)
def test_bf16_run_stops_and_resumes(shards, tmp_path, device, zero):
    ds_config = DS_CONFIGS[zero][device.type == "cpu"]
    extra = ["data.prefetch=true"] if zero == "zero2" else []
    run = tmp_path / zero
    _train(shards, run, ds_config, device, 2, *extra)
    assert json.loads((run / "results.json").read_text())["updates"] == 2
    log = _train(shards, run, ds_config, device, 4, *extra)
    assert f"resumed {run} at update 2" in log

    result = json.loads((run / "results.json").read_text())
    assert result["updates"] == 4 and result["skipped_updates"] == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = {r["update"]: r["train/loss"] for r in rows if "train/loss" in r}
    assert sorted(losses) == [1, 2, 3, 4] and all(math.isfinite(v) for v in losses.values())
    # the checkpoint's files say which ZeRO stage wrote them: ZeRO-3 saves each rank's partition
    files = {p.name for p in (run / "checkpoints" / "update_00000004").iterdir()}
    assert any(name.endswith("zero_pp_rank_0_mp_rank_00_optim_states.pt") for name in files)
    assert ("zero_pp_rank_0_mp_rank_00_model_states.pt" if zero == "zero3" else "mp_rank_00_model_states.pt") in files


def test_prefetch_feed_puts_the_loaders_batches_on_the_device(shards, device):
    config = StreamConfig(kind="pretrain", batch_s=8.0, shuffle_buffer=16, seed=1, pin_memory=device.type == "cuda")
    index = read_split(shards, "train")
    plain = StreamingLoader.from_split(index, config, rank=0, world_size=1)
    feed = BatchFeed(StreamingLoader.from_split(index, config, rank=0, world_size=1), device, prefetch=True)
    n, want = len(plain) + 3, []  # past an epoch's end
    while len(want) < n:
        want.extend(plain)
    for i, host in enumerate(want[:n]):
        batch = next(feed)
        assert batch.audio.device.type == device.type and batch.lengths.device.type == device.type
        assert batch.ids == host.ids and torch.equal(batch.audio.cpu(), host.audio), i
        assert torch.equal(batch.lengths.cpu(), host.lengths)
    assert feed.state_dict()["epoch"] == n // len(plain) and feed.state_dict()["batches_in_epoch"] == n % len(plain)
