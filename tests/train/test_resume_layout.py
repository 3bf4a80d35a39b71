"""Resume on another world size or ZeRO stage (a job rescheduled on fewer GPUs, or moved to
ZeRO-3): the weights, Adam moments and counters come back exactly (DeepSpeed's universal
checkpoint), the global batch is kept by changing the accumulation, and the rest of the epoch
reads only shards no rank had begun (``tests/data/test_regroup.py`` tests that mapping itself).

In one process: ZeRO-2 -> ZeRO-3 and ZeRO-2 -> ZeRO-1, state compared parameter by parameter.
Through the doors users take: 2 ranks (``torchrun``) -> 1 process (``ds-w2v``), and 2 ranks
ZeRO-2 -> 2 ranks ZeRO-3.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ds_w2v.cli import main as cli
from ds_w2v.train import checkpoint_universal as ckpt_universal
from ds_w2v.train import checkpoint_tags as ckpt_tags
from ds_w2v.train import checkpoint_export as ckpt_export
from ds_w2v.train.config import load_config
from ds_w2v.train.distributed import param_digest
from ds_w2v.train.trainer import Trainer

from .zero_configs import zero_stage_config

sys.path.insert(0, str(Path(__file__).parents[1] / "reliability"))  # pytest runs with --import-mode=importlib
from reliability_helpers import subprocess_env  # noqa: E402  (less an earlier in-process Trainer's variables)

pytest.importorskip("deepspeed")

BIN = Path(sys.executable).parent
FAST = ["precision=fp32", "data.batch_s=12", "log_every=1", "eval_every=1000", "save_every=1000",
        "data.shuffle_buffer=4", "model.overrides.encoder_layerdrop=0.0", "device=cpu"]


@pytest.fixture(scope="module")
def sharded(timit_shards, tmp_path_factory):
    """The session's synthetic TIMIT prepared again in shards of 3 utterances (14 train shards),
    so that two ranks hold different shards."""
    out = tmp_path_factory.mktemp("sharded") / "shards"
    assert cli(["prepare", "--format", "timit", str(timit_shards.parent / "TIMIT"), "--out", str(out),
                "--workers", "1", "--no-progress", "--max-shard-samples", "3"]) == 0
    return out


def _optimizer_state(engine) -> dict[str, list[torch.Tensor]]:
    from deepspeed.utils import safe_get_full_fp32_param, safe_get_full_optimizer_state

    return {n: [safe_get_full_fp32_param(p).clone(), safe_get_full_optimizer_state(p, "exp_avg").clone(),
                safe_get_full_optimizer_state(p, "exp_avg_sq").clone()]
            for n, p in engine.module.named_parameters() if p.requires_grad}



@pytest.mark.parametrize("stage", [3, 1])
def test_another_zero_stage_resumes_weights_and_moments_exactly(sharded, tmp_path, stage):
    run = tmp_path / "run"
    opts = [f"data.shards={sharded}", f"run_dir={run}", "global_batch_s=24", *FAST]
    first = Trainer(load_config("pretrain_tiny", [*opts, "max_updates=2", "deepspeed_config=cpu.json"]))
    first.train()
    want = _optimizer_state(first.engine)
    assert first.zero_stage == 2
    second = Trainer(load_config("pretrain_tiny", [*opts, "max_updates=3",
                                                   f"deepspeed_config={zero_stage_config(tmp_path, stage)}"]))
    assert second.update == 2 and second.zero_stage == stage
    got = _optimizer_state(second.engine)
    assert sorted(got) == sorted(want)
    for name in want:
        for kind, w, g in zip(("fp32", "exp_avg", "exp_avg_sq"), want[name], got[name]):
            assert torch.equal(w, g), f"{name} {kind}"
    assert not (ckpt_tags.ckpt_dir(run) / ckpt_tags.UNIVERSAL).exists()  # the conversion is removed once loaded
    result = second.train()
    assert result["updates"] == 3 and result["world"]["zero_stage"] == stage
    # its own save is in the new layout, and loads directly
    assert ckpt_universal.saved_layout(run, "update_00000003") == ckpt_universal.engine_layout(second.engine)


# -- through the doors users take, 2 processes ---------------------------------------------------
# 2 ranks: 6 s x 2 ranks x 2 = 24 audio-s per update. Small batches of a small corpus: a rank begins a
# shard for every few utterances it holds in its shuffle buffer and duration buckets, so that a save
# after 2 of its 8 batches leaves shards unbegun
ENTRY = [*FAST, "data.batch_s=6", "global_batch_s=24", "deepspeed_config=cpu.json"]


def _env() -> dict[str, str]:
    import os

    return subprocess_env(PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")


def _run(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=420)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{' '.join(cmd[:6])} ... did not finish in 420 s: {(e.stdout or b'')[-3000:]!r}")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{out[-5000:]}"
    return out


def _torchrun(*args: str) -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return _run([str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", str(port), "-m", "ds_w2v.train",
                 *args])


def _result(run: Path) -> dict:
    return json.loads((run / "results.json").read_text())


def _digest_of(run: Path, tag: str, tmp_path: Path) -> str:
    from ds_w2v import load_model

    return param_digest(load_model(ckpt_export.export(run, tmp_path / f"{run.name}-{tag}.pt", tag)))


@pytest.fixture(scope="module")
def two_rank_run(sharded, tmp_path_factory):
    """2 ranks, ZeRO-2, 1 update = 2 of the 8 batches of each rank's epoch: saved mid-epoch."""
    run = tmp_path_factory.mktemp("layout") / "two"
    _torchrun("pretrain", "--recipe", "pretrain_tiny", f"data.shards={sharded}", f"run_dir={run}", "max_updates=1",
              "save_every=1", *ENTRY)
    client = ckpt_tags.saved_state(run, "update_00000001")
    assert client["world"]["world_size"] == 2 and client["world"]["accumulation"] == 2
    assert client["data"]["batches_in_epoch"] == 2 and 0 < len(client["data"]["opened"]) < 14
    return run


def test_two_ranks_resume_on_one_process(two_rank_run, sharded, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(two_rank_run, run)
    saved = _digest_of(run, "update_00000001", tmp_path)
    base = ["pretrain", "--recipe", "pretrain_tiny", f"data.shards={sharded}", f"run_dir={run}", *ENTRY]
    # the weights as saved: a resume that trains no further ends with them
    out = _run([str(BIN / "ds-w2v"), *base, "max_updates=1"])
    assert "universal checkpoint" in out and _result(run)["replica_digests"] == [saved]
    # and training goes on, one process accumulating 4 micro-batches for the same 24 audio-s
    out = _run([str(BIN / "ds-w2v"), *base, "max_updates=3"])
    begun = ckpt_tags.saved_state(run, "update_00000001")["data"]["opened"]
    assert "world_size 2 -> 1" in out and "unread shard(s) of 14" in out and f"{14 - len(begun)} unread" in out
    assert "gradient accumulation 2 -> 4, global batch 24.0 -> 24 audio-s" in out
    result = _result(run)
    assert result["updates"] == 3 and result["world"] == {"world_size": 1, "zero_stage": 2, "accumulation": 4,
                                                          "global_batch_s": 24.0}
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["update"] for r in rows if "train/loss" in r] == [1, 2, 3]
    assert result["replica_digests"] == [_digest_of(run, "latest", tmp_path)]
    assert not (ckpt_tags.ckpt_dir(run) / ckpt_tags.UNIVERSAL).exists()


def test_two_ranks_zero2_resume_on_two_ranks_zero3_and_back_to_one(two_rank_run, sharded, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(two_rank_run, run)
    base = ["--recipe", "pretrain_tiny", f"data.shards={sharded}", f"run_dir={run}", *ENTRY]
    out = _torchrun("pretrain", *base, "max_updates=2", "deepspeed_config=cpu_zero3.json")
    assert "universal checkpoint" in out and "regrouped" not in out  # the same world: the exact position
    result = _result(run)
    assert result["updates"] == 2 and result["world"]["zero_stage"] == 3 and result["world"]["accumulation"] == 2
    digests = result["replica_digests"]
    assert len(digests) == 2 and digests[0] == digests[1] == _digest_of(run, "latest", tmp_path)
    # a ZeRO-3 checkpoint of 2 ranks into 1 process at ZeRO-2: the weights as saved
    _run([str(BIN / "ds-w2v"), "pretrain", *base, "max_updates=2"])
    assert _result(run)["replica_digests"] == [digests[0]] and _result(run)["world"]["zero_stage"] == 2
