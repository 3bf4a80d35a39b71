"""The two speed options on CPU: ``data.prefetch`` passes the same batches through and saves the
consumed position (resume stays exact: also ``test_trainer.py::test_resume_...[prefetch]``), and
``compile`` gives the uncompiled run's losses with the chosen modules really compiled."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ds_w2v import load_model
from ds_w2v.data.index import read_split
from ds_w2v.data.loader import StreamingLoader
from ds_w2v.data.prefetch import BatchFeed
from ds_w2v.data.stream import StreamConfig
from ds_w2v.train.checkpoint_export import export
from ds_w2v.train.config import load_config
from ds_w2v.train.trainer import Trainer

sys.path.insert(0, str(Path(__file__).parents[1] / "reliability"))  # pytest runs with --import-mode=importlib
from reliability_helpers import subprocess_env  # noqa: E402  (less an earlier in-process Trainer's variables)

pytest.importorskip("deepspeed")

# as test_trainer.py: tiny, fp32, no LayerDrop, CPU; dropout stays on (the compiled blocks draw
# their dropout masks from the same generator as eager ones with inductor's fallback_random)
FAST = ["precision=fp32", "data.batch_s=12", "global_batch_s=24", "log_every=1", "eval_every=1000", "save_every=1000",
        "data.shuffle_buffer=16", "model.overrides.encoder_layerdrop=0.0", "device=cpu", "data.dev_split=null"]


def _config(shards, run_dir, *extra):
    return load_config("pretrain_tiny", [f"data.shards={shards}", f"run_dir={run_dir}", *FAST, *extra])


def _losses(run_dir) -> list[float]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["train/loss"] for r in rows if "train/loss" in r]


# -- data.prefetch --------------------------------------------------------------------------------
def _loader(shards) -> StreamingLoader:
    # ~10 batches an epoch, so that 25 batches cross two epoch ends
    config = StreamConfig(kind="pretrain", batch_s=40.0, shuffle_buffer=16, seed=3)
    return StreamingLoader.from_split(read_split(shards, "train"), config, rank=0, world_size=1)


def test_prefetch_feed_is_a_pass_through_with_the_consumed_position(timit_shards):
    plain = _loader(timit_shards)
    want, positions, epochs = [], [], []
    while len(want) < 25:  # the loader alone, epoch after epoch, as the trainer used to read it
        for batch in plain:
            want.append((batch.ids, batch.audio))
            positions.append(plain.state_dict())
            epochs.append(plain.epoch)
            if len(want) == 25:
                break
    assert len(set(epochs)) >= 3  # two epoch ends crossed

    feed = BatchFeed(_loader(timit_shards), torch.device("cpu"), prefetch=True)
    assert feed.state_dict() == _loader(timit_shards).state_dict()  # nothing read yet
    for i, (ids, audio) in enumerate(want):
        batch = next(feed)
        assert batch.ids == ids and torch.equal(batch.audio, audio), i
        assert feed.loader.state_dict() != positions[i]  # one batch read ahead...
        assert feed.state_dict() == positions[i] and feed.epoch == epochs[i]  # ...and not counted

    # resuming at every 6th position gives the batches that followed it
    for k in range(0, 24, 6):
        resumed = BatchFeed(_loader(timit_shards), torch.device("cpu"), prefetch=True)
        resumed.load_state_dict(positions[k])
        assert [next(resumed).ids for _ in range(3)] == [ids for ids, _ in want[k + 1:k + 4]]


# -- compile ----------------------------------------------------------------------------------------
# The compile comparisons run in a pytest process of their own each, as a user's training runs in
# a process of its own, so that the ``avx2`` case below compiles with ATen's kernels capped at AVX2
# (an AVX2 CPU emulated, as the docs do) and the next one without the cap. That sequence is what
# aborted the suite with glibc's "double free or corruption (!prev)" / "malloc(): unaligned tcache
# chunk detected": inductor's on-disk cache keyed the capped process's graphs like the uncapped
# one's; ds_w2v.hardware.key_inductor_cache_by_isa keeps them apart.
CHILD = "DS_W2V_TEST_COMPILE_SHARDS"  # set in the child: the parent's shards, read only


def _shards_or_run_alone(request, **child_env: str) -> Path | None:
    """The shards in the child process; in the parent, run this test in a child and return None."""
    if os.environ.get(CHILD):
        return Path(os.environ[CHILD])
    shards = request.getfixturevalue("timit_shards")
    # less a TORCHINDUCTOR_CACHE_DIR that an in-process compile set: each child keys its own
    env = {k: v for k, v in subprocess_env().items() if k != "TORCHINDUCTOR_CACHE_DIR"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp",
         str(request.getfixturevalue("tmp_path") / "child"), request.node.nodeid],
        cwd=request.config.rootpath, env={**env, CHILD: str(shards), **child_env},
        capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0 and "1 passed" in proc.stdout, proc.stdout[-4000:] + proc.stderr[-2000:]
    return None


@pytest.fixture
def dynamo():
    """A fresh dynamo cache and counters; inductor's random ops drawn as eager ones draw them."""
    import torch._dynamo
    import torch._inductor.config

    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    with torch._inductor.config.patch(fallback_random=True):
        yield torch._dynamo.utils.counters
    torch._dynamo.reset()


def _compare_with_eager(shards, tmp_path, mode, counters):
    eager = Trainer(_config(shards, tmp_path / "eager", "max_updates=3"))
    eager.train()
    compiled = Trainer(_config(shards, tmp_path / mode, "max_updates=3", f"compile={mode}"))
    compiled.train()
    want, got = _losses(tmp_path / "eager"), _losses(tmp_path / mode)
    assert len(got) == 3 and got == pytest.approx(want, rel=1e-5)
    assert counters["frames"]["ok"] >= 1 and counters["stats"]["unique_graphs"] >= 1
    # in place: the same classes and state-dict keys, so checkpoints and export are unchanged
    assert list(compiled.module.state_dict()) == list(eager.module.state_dict())
    model = load_model(export(tmp_path / mode, tmp_path / f"{mode}.pt"))
    assert model._num_updates == 3
    return compiled


@pytest.mark.parametrize("kernels", ["avx2", "native"])  # in this order: the capped process compiles first
def test_compile_blocks_gives_the_eager_losses(request, tmp_path, kernels):
    """Each transformer block compiled; dynamo traces the block's code once (one graph, dynamic
    shapes) and every block reuses it. Under ATen's kernels capped at AVX2, then not."""
    shards = _shards_or_run_alone(request, **({"ATEN_CPU_CAPABILITY": "avx2"} if kernels == "avx2" else {}))
    if shards is None:
        return  # the child ran the assertions below
    counters = request.getfixturevalue("dynamo")
    trainer = _compare_with_eager(shards, tmp_path, "blocks", counters)
    layers = trainer.module.wav2vec2.encoder.layers
    assert trainer.compiled == list(layers) and all(layer._compiled_call_impl is not None for layer in layers)
    assert trainer.module._compiled_call_impl is None
    assert counters["stats"]["unique_graphs"] == 1 and counters["frames"]["total"] == 1  # no recompilation


@pytest.mark.slow  # 1.5-3 min on 2 cores with a cold inductor cache (a dozen graphs between graph breaks)
def test_compile_backbone_gives_the_eager_losses(request, tmp_path):
    shards = _shards_or_run_alone(request)
    if shards is None:
        return
    trainer = _compare_with_eager(shards, tmp_path, "backbone", request.getfixturevalue("dynamo"))
    assert trainer.compiled == [trainer.module.wav2vec2] and trainer.module.wav2vec2._compiled_call_impl is not None


def test_compile_with_zero3_is_refused_before_the_process_group(timit_shards, tmp_path):
    import torch.distributed as dist

    started = dist.is_initialized()
    with pytest.raises(ValueError, match=r"config key compile: blocks is refused with ZeRO-3 \(cpu_zero3.json\)"):
        Trainer(_config(timit_shards, tmp_path / "z3", "compile=blocks", "deepspeed_config=cpu_zero3.json"))
    assert dist.is_initialized() == started


def test_compile_mode_is_validated():
    with pytest.raises(ValueError, match="config key compile: 'model' is not one of none, blocks, backbone"):
        load_config("pretrain_tiny", ["data.shards=/x", "compile=model"])
    with pytest.raises(ValueError, match="config key compile: expected a string, got True"):
        load_config("pretrain_tiny", ["data.shards=/x", "compile=true"])
    assert load_config("pretrain_tiny", ["data.shards=/x"]).compile == "none"
    assert load_config("pretrain_tiny", ["data.shards=/x"]).data.prefetch is False
