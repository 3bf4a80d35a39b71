"""``--dry-run``: the plan of a run (``ds_w2v/train/plan.py``) and the command that prints it
without building a model, starting a process group or writing anything."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch.distributed as dist

from ds_w2v.cli import main as cli
from ds_w2v.data import StreamConfig, StreamingLoader
from ds_w2v.data.index import read_split
from ds_w2v.train.config import load_config
from ds_w2v.train.plan import batch_plan, deepspeed_plan, plan_run, shard_plan

sys.path.insert(0, str(Path(__file__).parents[1] / "data"))  # pytest runs with --import-mode=importlib
from stream_fixtures import write_split  # noqa: E402

NUM_SHARDS = 16
# 10 utterances of 4 s per shard: 640 audio-s of train
ARITHMETIC = ["data.batch_s=4", "global_batch_s=64", "max_updates=100", "precision=fp32", "device=cpu",
              "deepspeed_config=ds_configs/cpu.json"]


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("plan")
    index = write_split(out, "train", [[4.0] * 10] * NUM_SHARDS)
    write_split(out, "dev", [[2.0] * 3], index=index)
    return out


def _config(shards, *extra):
    return load_config("pretrain_tiny", [f"data.shards={shards}", *ARITHMETIC, *extra])


@pytest.mark.parametrize("world, accum, per_epoch", [
    (1, 16, 136),  # 64 = 4 x 1 x 16; floor(640 / (1 x 4) x 0.85) = 136
    (8, 2, 17),    # 64 = 4 x 8 x 2;  floor(640 / (8 x 4) x 0.85) = 17
])
def test_batch_arithmetic_keeps_the_global_batch(shards, world, accum, per_epoch):
    config = _config(shards)
    b = batch_plan(config, read_split(shards, "train"), world)
    assert (b["accumulation"], b["global_batch_s"], b["batches_per_epoch_per_rank"]) == (accum, 64.0, per_epoch)
    assert b["train_s"] == pytest.approx(640.0)
    assert b["epochs"] == pytest.approx(100 * accum / per_epoch)  # 11.76 epochs for 100 updates either way
    assert b["budget_audio_s"] == 100 * 64.0
    ds = deepspeed_plan(config, world, "cpu")
    assert (ds["zero_stage"], ds["precision"], ds["optimizer"]) == (2, "fp32", "torch.optim.AdamW (fused)")
    assert (ds["gradient_accumulation_steps"], ds["train_batch_size"]) == (accum, accum * world)


@pytest.mark.parametrize("world", [1, 3, 5, 8, 16])
def test_every_shard_is_read_once_per_epoch_across_ranks(shards, world):
    split = read_split(shards, "train")
    plan = shard_plan(split, world, seed=1)
    assert plan["level"] == "shards"
    read = [name for r in plan["ranks"] for name in r["shards"]]
    assert sorted(read) == sorted(split.names)  # each once, none left out
    assert all(r["sample_split"] == [] for r in plan["ranks"])
    sizes = {len(r["shards"]) for r in plan["ranks"]}
    assert max(sizes) - min(sizes) <= 1


def test_the_plan_is_what_each_rank_streams(shards):
    """A single-pass stream of rank r reads exactly the shards the plan gives rank r (epoch 0)."""
    world, seed = 3, 7
    split = read_split(shards, "train")
    plan = shard_plan(split, world, seed)
    for r in plan["ranks"]:
        loader = StreamingLoader.from_split(split, StreamConfig(kind="finetune", batch_s=40.0, loop=False, seed=seed),
                                            rank=r["rank"], world_size=world)
        streamed = {i.split("_")[1] for b in loader for i in b.ids}  # ids are train_s{shard}_{j}
        assert streamed == {f"s{int(name[6:12])}" for name in r["shards"]}


def test_fewer_shards_than_ranks_split_by_samples(shards):
    split = read_split(shards, "train")
    plan = shard_plan(split, 32, seed=1, num_workers=2)
    assert plan["level"] == "samples"
    for r in plan["ranks"]:
        assert sorted(r["shards"]) == sorted(split.names) and r["sample_split"] == [[32, r["rank"]]]
        assert r["audio_s"] == pytest.approx(640.0 / 32)
        # 16 shards over 2 workers: shard level again inside the rank
        assert sorted(r["workers"][0]["shards"] + r["workers"][1]["shards"]) == sorted(split.names)


def test_the_launcher_env_gives_the_world(shards, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("RANK", "3")
    plan = plan_run(_config(shards), device_type="cpu")
    assert plan["world"] == {"world_size": 8, "rank": 3, "source": "launcher (RANK, WORLD_SIZE)"}
    assert plan["batch"]["accumulation"] == 2 and len(plan["shards"]["ranks"]) == 8
    assert plan_run(_config(shards), 1, "cpu")["world"]["world_size"] == 1  # --world-size wins
    # under a launcher every rank plans, rank 0 alone prints
    assert cli(["pretrain", "--recipe", "pretrain_tiny", f"data.shards={shards}", *ARITHMETIC, "--dry-run"]) == 0
    assert capsys.readouterr().out == ""


def test_dry_run_prints_the_plan_and_starts_nothing(shards, tmp_path, monkeypatch, capsys):
    def refuse(*_a, **_k):
        raise AssertionError("a dry run must not do this")

    import ds_w2v.train.tasks.base as tasks

    deepspeed = pytest.importorskip("deepspeed")

    monkeypatch.setattr(dist, "init_process_group", refuse)
    monkeypatch.setattr(deepspeed, "init_distributed", refuse)
    real_build = tasks.build_model

    def on_meta(*a, **k):  # the model is built to be checked, on the meta device: no weights
        model = real_build(*a, **k)
        assert {p.device.type for p in model.parameters()} == {"meta"}
        return model

    monkeypatch.setattr(tasks, "build_model", on_meta)
    monkeypatch.chdir(tmp_path)
    was = dist.is_available() and dist.is_initialized()
    run = tmp_path / "run"
    args = ["pretrain", "--recipe", "pretrain_tiny", f"data.shards={shards}", f"run_dir={run}", *ARITHMETIC,
            "--dry-run", "--world-size", "8"]
    assert cli(args) == 0
    text = capsys.readouterr().out
    assert "4 audio-s per micro-batch x 8 rank(s) x 2 accumulation = 64 audio-s per update" in text
    assert "17 batches per rank" in text and "ZeRO stage 2, fp32" in text
    assert sum(line.startswith("  rank ") for line in text.splitlines()) == 8
    assert cli([*args, "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["batch"]["accumulation"] == 2 and plan["deepspeed"]["config"]["train_batch_size"] == 16
    assert sorted(n for r in plan["shards"]["ranks"] for n in r["shards"]) == sorted(read_split(shards, "train").names)
    assert not run.exists() and list(tmp_path.iterdir()) == []  # nothing written, not even runs/
    assert (dist.is_available() and dist.is_initialized()) == was
    if not was:
        assert not dist.is_initialized()


def test_dry_run_refuses_what_the_run_refuses(shards, capsys):
    # an unknown model key is refused by the dry run as by the run (it used to plan it)
    args = ["pretrain", "--recipe", "pretrain_tiny", f"data.shards={shards}", *ARITHMETIC, "--dry-run"]
    assert cli([*args, "model.overrides.foo=1"]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        "ds-w2v pretrain: error: unknown Wav2Vec2Config keys: ['foo']"]
    assert cli([*args, "model.init=/nowhere/model.pt"]) == 1
    assert "/nowhere/model.pt" in capsys.readouterr().err


def test_dry_run_refuses_a_batch_that_does_not_divide(shards, capsys):
    args = ["pretrain", "--recipe", "pretrain_tiny", f"data.shards={shards}", *ARITHMETIC, "--dry-run"]
    assert cli([*args, "--world-size", "3"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["ds-w2v pretrain: error: config key global_batch_s: 64 audio-s is not a whole multiple of "
                   "data.batch_s x world_size = 4 x 3 = 12"]
    assert cli(["pretrain", "--recipe", "pretrain_tiny", f"data.shards={shards}", "--world-size", "8"]) == 1
    assert "--world-size: only with --dry-run" in capsys.readouterr().err


def test_a_mix_plans_each_corpus_share_and_epochs(shards, tmp_path_factory, capsys):
    from ds_w2v.data.mix import mix_probabilities

    other = tmp_path_factory.mktemp("plan_other")
    write_split(other, "train", [[4.0] * 10] * 4)  # 160 audio-s: a quarter of the first corpus
    config = _config(shards, f"data.train=[{shards}:train@1,{other}:train@2]", "data.mix_alpha=1.0")
    plan = plan_run(config, world_size=2)
    mix = plan["mix"]
    assert [m["entry"] for m in mix] == [f"{shards}:train@1", f"{other}:train@2"]
    p = mix_probabilities([640.0, 160.0], [1, 2], 1.0)  # (1 x 640) : (2 x 160) = 2 : 1
    assert [m["p"] for m in mix] == pytest.approx(p) and p[0] == pytest.approx(2 / 3)
    # per corpus: floor(s / (2 ranks x 4 s) x 0.85) batches per epoch; 100 updates x 8 accumulation x p of them
    assert [m["batches_per_epoch_per_rank"] for m in mix] == [68, 17]
    assert [m["epochs"] for m in mix] == pytest.approx([100 * 8 * p[0] / 68, 100 * 8 * p[1] / 17])
    assert plan["batch"]["train_s"] == pytest.approx(800.0)
    assert cli(["pretrain", "--recipe", "pretrain_tiny", f"data.shards={shards}", *ARITHMETIC,
                f"data.train=[{shards}:train@1,{other}:train@2]", "--dry-run", "--world-size", "2"]) == 0
    out = capsys.readouterr().out
    assert "in 2 corpora" in out and "p 0.667" in out and "p 0.333" in out


def test_pretraining_a_folder_without_a_dev_split_runs_without_one_and_says_so(tmp_path, caplog, capsys):
    # `prepare --format dir` without --valid-percent writes train only: pretraining plans (and runs)
    # without dev evaluation, with one warning, where it used to stop at "no split 'dev'"
    import logging

    write_split(tmp_path / "audio", "train", [[4.0] * 10] * 2)
    with caplog.at_level(logging.WARNING, logger="ds_w2v.train"):
        plan = plan_run(load_config("pretrain_tiny", [f"data.shards={tmp_path / 'audio'}", *ARITHMETIC]), 1, "cpu")
    assert "dev" not in plan["splits"]
    assert any("has no split 'dev': the run goes on without dev evaluation" in r.getMessage() for r in caplog.records)
    # a fine-tuning run still needs the dev split it names: the one line naming the known splits
    assert cli(["finetune-cls", "--recipe", "finetune_cls_tiny", f"data.shards={tmp_path / 'audio'}", "--dry-run"]) == 1
    assert "no split 'dev'" in capsys.readouterr().err
