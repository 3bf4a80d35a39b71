"""Training from shards that only a URL reaches (``data.shard_url_prefix``): the index stays in
``data.shards``, the tars are read through ``pipe:cat``; the losses are those of the same run
over local paths; an unreachable shard is one warning and a count, and the run goes on; an index
whose shards are all unreachable stops with one clear line instead of spinning."""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ds_w2v.cli import main as cli
from ds_w2v.train.config import load_config
from ds_w2v.train.trainer import Trainer

pytest.importorskip("deepspeed")

# tiny, fast, deterministic (as tests/train/test_trainer.py): 2 micro-batches of 12 audio-s per update
FAST = ["precision=fp32", "data.batch_s=12", "global_batch_s=24", "log_every=1", "eval_every=1000", "save_every=1000",
        "data.shuffle_buffer=16", "model.overrides.encoder_layerdrop=0.0", "device=cpu", "max_updates=3"]
TIMEOUT_S = 300  # the all-unreachable run: a spinning stream fails the test instead of blocking it


@pytest.fixture(scope="module")
def tars(timit_shards, tmp_path_factory) -> Path:
    """The synthetic TIMIT again, in shards of 10 utterances (train: 5 shards), so one can be lost."""
    out = tmp_path_factory.mktemp("urls") / "tars"
    assert cli(["prepare", "--format", "timit", str(timit_shards.parent / "TIMIT"), "--out", str(out),
                "--max-shard-samples", "10", "--workers", "2", "--no-progress", "--overwrite"]) == 0
    assert len(json.loads((out / "dataset.json").read_text())["splits"]["train"]["shards"]) >= 4
    return out


def _index_only(tars: Path, out: Path) -> Path:
    """A directory with the index and vocabulary of ``tars`` and no shard: only a URL reaches them."""
    out.mkdir()
    for name in ("dataset.json", "vocab.json"):
        shutil.copy(tars / name, out / name)
    return out


def _config(shards: Path, run_dir: Path, *extra: str):
    return load_config("pretrain_tiny", [f"data.shards={shards}", f"run_dir={run_dir}", *FAST, *extra])


def _rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _losses(run_dir: Path) -> dict[int, float]:
    return {r["update"]: r["train/loss"] for r in _rows(run_dir) if "train/loss" in r}


@pytest.mark.parametrize("prefix, why", [
    ("pipe:cat /data/ls960/", "must say where the shard's name goes"),
    ("https://host/ls960", "must end with '/'"),
    ("s3://bucket/ls960/", "webdataset cannot open s3: URLs"),
])
def test_a_bad_prefix_is_refused_when_the_config_loads(prefix, why):
    with pytest.raises(ValueError, match=rf"config key data.shard_url_prefix: '{prefix}': .*{why}"):
        load_config("pretrain_tiny", ["data.shards=/x", f"data.shard_url_prefix={prefix}"])


def test_training_through_pipe_urls_matches_local_paths(tars, tmp_path):
    local = Trainer(_config(tars, tmp_path / "local"))
    local.train()
    index = _index_only(tars, tmp_path / "index")
    piped = Trainer(_config(index, tmp_path / "pipe", f"data.shard_url_prefix=pipe:cat {tars}/{{shard}}"))
    assert all(u.startswith(f"pipe:cat {tars}/") for u in piped.train_index.urls + piped.dev_index.urls)
    result = piped.train()
    assert result["updates"] == 3
    # every batch came through the pipe (the index directory holds no tar) and nothing was lost
    assert piped.loader.stats.num_batches == 3 * piped.accum and not piped.loader.stats.skipped
    assert _losses(tmp_path / "pipe") == _losses(tmp_path / "local")  # bit-exact: same bytes, same order
    dev = [r["dev/loss"] for r in _rows(tmp_path / "pipe") if "dev/loss" in r]
    assert dev and dev == [r["dev/loss"] for r in _rows(tmp_path / "local") if "dev/loss" in r]


def test_an_unreachable_shard_is_one_warning_and_a_count(tars, tmp_path, caplog):
    index = json.loads((tars / "dataset.json").read_text())
    lost = index["splits"]["train"]["shards"][1]
    holes = tmp_path / "holes"  # every tar but one
    holes.mkdir()
    for tar in tars.glob("*.tar"):
        if tar.name != lost:
            (holes / tar.name).symlink_to(tar)
    config = _config(_index_only(tars, tmp_path / "index"), tmp_path / "run",
                     f"data.shard_url_prefix=pipe:cat {holes}/{{shard}}")
    with caplog.at_level(logging.WARNING, logger="ds_w2v.data.stream"):
        trainer = Trainer(config)
        result = trainer.train()
    assert result["updates"] == 3 and result["skipped_updates"] == 0
    url = f"pipe:cat {holes}/{lost}"
    assert trainer.loader.stats.unreachable_shards == {url}
    warnings = [r.getMessage() for r in caplog.records if r.name == "ds_w2v.data.stream"]
    assert len(warnings) == 1, warnings  # once, however many passes met it
    assert warnings[0].startswith(f"skipping unreachable shard {url} (unreachable_shard): "
                                  "the command exited with status 1 before the shard's first sample")
    rows = [r for r in _rows(tmp_path / "run") if "train/loss" in r]
    assert [r["update"] for r in rows] == [1, 2, 3]
    assert rows[-1]["data/skipped/unreachable_shard"] >= 1
    assert rows[-1]["data/num_corrupt"] == 0  # unreachable is not damage


@pytest.mark.parametrize("workers", [0, 2])
def test_all_shards_unreachable_stops_with_one_clear_line(tars, tmp_path, workers):
    """Through the console command, in a process of its own: a stream that spins would hang. With
    DataLoader workers the error comes back from a worker process, as the same exception."""
    index = _index_only(tars, tmp_path / "index")
    num_train = len(json.loads((index / "dataset.json").read_text())["splits"]["train"]["shards"])
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    cmd = [sys.executable, "-m", "ds_w2v", "pretrain", "--recipe", "pretrain_tiny", f"data.shards={index}",
           f"run_dir={tmp_path / 'run'}", *FAST, f"data.num_workers={workers}",
           f"data.shard_url_prefix=pipe:cat {tmp_path}/nowhere/{{shard}}"]
    try:
        proc = subprocess.run(cmd, env={**env, "DS_ACCELERATOR": "cpu"}, capture_output=True, text=True,
                              timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"an index of unreachable shards ran for {TIMEOUT_S} s instead of failing")
    assert proc.returncode == 1, proc.stderr[-3000:]
    # the one line (a DataLoader worker's `cat` may still write its own after it)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("ds-w2v pretrain: error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    last = errors[0]
    # with 2 workers, each reads half of the shards; either may fail first
    share = rf"({num_train // 2}|{num_train - num_train // 2})" if workers else str(num_train)
    assert re.match(r"ds-w2v pretrain: error: rank 0 worker \d: no usable utterance in a full pass: "
                    rf"none of its {share} shard\(s\) could be read \(unreachable_shard; the first, "
                    rf"pipe:cat {re.escape(str(tmp_path))}/nowhere/train-\d+\.tar: the command exited with status 1",
                    last), last
    assert "Traceback" not in proc.stderr


def test_one_rank_without_reachable_shards_stops_every_rank(tars, tmp_path):
    """2 ranks (torchrun): the shards rank 1 reads in epoch 0 are all unreachable, rank 0's are
    fine. Rank 1 cannot make a batch; rank 0 must not wait for it in a collective until a timeout:
    both stop at once, rank 1 with the reason, rank 0 saying it stops with it."""
    import socket

    from ds_w2v.data.stream import shard_order, slot_shards

    index = _index_only(tars, tmp_path / "index")
    names = json.loads((index / "dataset.json").read_text())["splits"]["train"]["shards"]
    seed = load_config("pretrain_tiny", ["data.shards=/x"]).seed
    rank1, _ = slot_shards(shard_order(names, seed, 0, 0), 1, 2, 0, 1)
    reachable = tmp_path / "reachable"
    reachable.mkdir()
    for name in set(names) - set(rank1):
        shutil.copy(tars / name, reachable / name)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    cmd = [str(Path(sys.executable).parent / "torchrun"), "--nproc_per_node", "2", "--master_port", str(port),
           "-m", "ds_w2v.train", "pretrain", "--recipe", "pretrain_tiny", f"data.shards={index}",
           f"run_dir={tmp_path / 'run'}", *FAST, "deepspeed_config=cpu.json", "global_batch_s=48",
           f"data.shard_url_prefix=pipe:cat {reachable}/{{shard}}"]
    try:
        proc = subprocess.run(cmd, env={**env, "DS_ACCELERATOR": "cpu"}, capture_output=True, text=True,
                              timeout=TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"one rank without data: the run hung for {TIMEOUT_S} s")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert re.search(r"ds-w2v pretrain: error: rank 1 worker 0: no usable utterance in a full pass: none of its "
                     rf"{len(rank1)} shard\(s\) could be read", out), out[-3000:]
    assert "ds-w2v pretrain: error: rank 0: stopping with the 1 rank(s) that have no usable data" in out
    assert not list((tmp_path / "run").glob("checkpoints/update_*"))  # no update was made
