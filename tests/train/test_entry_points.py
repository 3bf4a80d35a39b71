"""Every training command through the doors users take, with 2 processes (CPU, gloo):

- ``NUM_GPUS=2 bash launch/pretrain.sh`` (= ``deepspeed --num_gpus 2 --module ds_w2v.train``,
  the launcher putting ``--local_rank=N`` before the command), ZeRO-2;
- ``torchrun --nproc_per_node 2 -m ds_w2v.train finetune-ctc``, ZeRO-3, from that pretraining
  run, with a dev split of very uneven shards (2 and 18 utterances: one rank scores one batch, the
  other many) — the evaluation must finish (timeout) and score every utterance;
- ``NUM_GPUS=2 bash launch/finetune_cls.sh``, ZeRO-3;
- ``deepspeed --num_gpus 2 --module ds_w2v evaluate`` against the 1-process ``ds-w2v evaluate``.

Each run must end with bit-equal parameters on both ranks (``results.json``'s replica digests),
equal to the consolidated export of its latest checkpoint, and the figures in metrics.jsonl.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from ds_w2v.train.distributed import param_digest

sys.path.insert(0, str(Path(__file__).parents[1] / "reliability"))  # pytest runs with --import-mode=importlib
from reliability_helpers import subprocess_env  # noqa: E402  (less an earlier in-process Trainer's variables)

pytest.importorskip("deepspeed")
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TIMEOUT_S = 420
# small, fast, deterministic: fp32, 12 audio-s micro-batches, 2 ranks x 2 = 48 audio-s per update
FAST = ["precision=fp32", "data.batch_s=12", "global_batch_s=48", "log_every=1", "data.shuffle_buffer=16",
        "model.overrides.encoder_layerdrop=0.0", "device=cpu"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    """This environment without the process-group variables an in-process test may have left, the
    venv's deepspeed / torchrun / ds-w2v first on PATH."""
    return subprocess_env(PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", **extra)


def _run(cmd: list[str], cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=_env(**env), capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as e:  # a hang fails, never blocks CI
        out = (e.stdout or b"")[-3000:]
        pytest.fail(f"{' '.join(cmd[:6])} ... did not finish in {TIMEOUT_S} s: {out!r}")
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{(proc.stdout + proc.stderr)[-5000:]}"
    return proc


def _rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _check_replicas(run: Path, tmp_path: Path) -> dict:
    """Both ranks ended bit-equal, and equal to the consolidated export of the last checkpoint."""
    from ds_w2v import load_model
    from ds_w2v.train.checkpoint_export import export

    result = json.loads((run / "results.json").read_text())
    digests = result["replica_digests"]
    assert len(digests) == 2 and digests[0] == digests[1], digests
    model = load_model(export(run, tmp_path / f"{run.name}.pt", "latest"))
    assert param_digest(model) == digests[0]
    return result


def _split_uneven(src: Path, out: Path, split: str) -> int:
    """A copy of prepared ``src`` whose ``split`` is rewritten as two shards: 1 utterance and the
    rest (with 2 ranks: one batch on one rank, many on the other)."""
    shutil.copytree(src, out)
    index = json.loads((out / "dataset.json").read_text())
    entry = index["splits"][split]
    members: list[tuple[str, list[tuple[tarfile.TarInfo, bytes]]]] = []
    for name in entry["shards"]:
        with tarfile.open(src / name) as tar:
            for m in tar.getmembers():
                key = m.name.split(".", 1)[0]
                if not members or members[-1][0] != key:
                    members.append((key, []))
                members[-1][1].append((m, tar.extractfile(m).read()))
        (out / name).unlink()
    sizes = [1, len(members) - 1]
    assert sizes[1] >= 10, sizes
    names, seconds, counts, start = [], [], [], 0
    for i, n in enumerate(sizes):
        name = f"{split}-uneven-{i:06d}.tar"
        secs = 0.0
        with tarfile.open(out / name, "w") as tar:
            for _, parts in members[start:start + n]:
                for info, payload in parts:
                    tar.addfile(info, io.BytesIO(payload))
                    if info.name.endswith(".json"):
                        secs += json.loads(payload)["duration_s"]
        names.append(name)
        counts.append(n)
        seconds.append(round(secs, 3))
        start += n
    entry.update(shards=names, shard_seconds=seconds, shard_num_samples=counts, num_samples=sum(sizes),
                 hours=sum(seconds) / 3600)
    (out / "dataset.json").write_text(json.dumps(index, indent=1))
    return sum(sizes)


@pytest.fixture(scope="module")
def pretrain_run(timit_shards, tmp_path_factory):
    """``NUM_GPUS=2 bash launch/pretrain.sh ...``: ZeRO-2, 3 updates."""
    run = tmp_path_factory.mktemp("entry") / "pt"
    _run(["bash", "launch/pretrain.sh", "--recipe", "pretrain_tiny", f"data.shards={timit_shards}", f"run_dir={run}",
          "deepspeed_config=cpu.json", "max_updates=3", "eval_every=3", "save_every=1000", *FAST],
         NUM_GPUS="2", MASTER_PORT=str(_free_port()))
    return run


def test_pretrain_through_launch_script_two_ranks_zero2(pretrain_run, tmp_path):
    result = _check_replicas(pretrain_run, tmp_path)
    assert result["task"] == "pretrain" and result["updates"] == 3 and result["skipped_updates"] == 0
    rows = _rows(pretrain_run)
    assert [r["update"] for r in rows if "train/loss" in r] == [1, 2, 3]
    dev = [r for r in rows if "dev/loss" in r]
    assert len(dev) == 1 and dev[0]["update"] == 3
    assert (pretrain_run / "checkpoints" / "latest").read_text().strip() == "update_00000003"


def test_finetune_ctc_through_torchrun_zero3_with_uneven_dev(pretrain_run, timit_shards, tmp_path):
    """The uneven split is the TIMIT test split, re-sharded 1 + the rest; it serves as dev here
    (evaluated during training, under ZeRO-3) and, with dev, as the two test sets."""
    shards = tmp_path / "shards"
    num_dev = _split_uneven(timit_shards, shards, "test")
    run = tmp_path / "ctc"
    _run([str(BIN / "torchrun"), "--nproc_per_node", "2", "--master_port", str(_free_port()), "-m", "ds_w2v.train",
          "finetune-ctc", "--recipe", "finetune_ctc_tiny", f"data.shards={shards}", f"run_dir={run}",
          f"model.init={pretrain_run}", "deepspeed_config=cpu_zero3.json", "max_updates=3", "eval_every=2",
          "save_every=1000", "data.dev_split=test", "data.test_split=[test,dev]", *FAST])
    result = _check_replicas(run, tmp_path)
    assert result["updates"] == 3
    rows = _rows(run)
    assert [r["update"] for r in rows if "train/loss" in r] == [1, 2, 3]
    dev = [r for r in rows if "dev/wer" in r]
    assert [r["update"] for r in dev] == [2, 3]
    assert all(r["dev/num_utterances"] == num_dev and "dev/num_unscored" not in r for r in dev)
    index = json.loads((shards / "dataset.json").read_text())
    assert list(result["test_sets"]) == ["test", "dev"]  # both scored once, in the order named
    for split, scores in result["test_sets"].items():
        assert scores["num_utterances"] == index["splits"][split]["num_samples"] and 0 <= scores["cer"]
        assert sum(f"test/{split}/wer" in r for r in rows) == 1
    assert result["test"] == result["test_sets"]["test"]


def test_finetune_cls_through_launch_script_two_ranks_zero3(pretrain_run, ravdess_shards, tmp_path):
    run = tmp_path / "cls"
    _run(["bash", "launch/finetune_cls.sh", "--recipe", "finetune_cls_tiny", f"data.shards={ravdess_shards}",
          f"run_dir={run}", f"model.init={pretrain_run}", "deepspeed_config=cpu_zero3.json", "max_updates=2",
          "eval_every=2", "save_every=1000", *FAST], NUM_GPUS="2", MASTER_PORT=str(_free_port()))
    result = _check_replicas(run, tmp_path)
    assert result["task"] == "cls" and result["updates"] == 2
    index = json.loads((ravdess_shards / "dataset.json").read_text())
    assert result["test"]["num_utterances"] == index["splits"]["test"]["num_samples"]
    assert sum(map(sum, result["test_confusion"]["matrix"])) == index["splits"]["test"]["num_samples"]
    rows = _rows(run)
    assert [r["update"] for r in rows if "train/loss" in r] == [1, 2]
    assert any(r.get("dev/num_utterances") == index["splits"]["dev"]["num_samples"] for r in rows)


def test_evaluate_two_ranks_equals_one_and_writes_no_run_dir(pretrain_run, timit_shards, tmp_path):
    """``ds-w2v evaluate``: a run directory as the model is read, never written or resumed, and
    nothing appears where the command runs; a CTC model file scored by 1 process and by 2
    (``deepspeed --module ds_w2v``) covers the same utterances and audio, every one of them."""
    index = json.loads((timit_shards / "dataset.json").read_text())["splits"]
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    before = sorted((p.relative_to(pretrain_run), p.stat().st_mtime_ns) for p in pretrain_run.rglob("*"))
    printed = _run([str(BIN / "ds-w2v"), "evaluate", f"data.shards={timit_shards}", f"model.init={pretrain_run}",
                    "--split", "dev", "device=cpu", "data.batch_s=12", "--out", str(tmp_path / "pt.json")], cwd=cwd)
    pt = json.loads((tmp_path / "pt.json").read_text())
    # stdout is the JSON alone: DeepSpeed's "Processing zero checkpoint" lines went to stderr
    assert json.loads(printed.stdout) == pt
    assert pt["task"] == "pretrain" and pt["splits"]["dev"]["num_utterances"] == index["dev"]["num_samples"]
    after = sorted((p.relative_to(pretrain_run), p.stat().st_mtime_ns) for p in pretrain_run.rglob("*"))
    assert after == before

    model = tmp_path / "ctc.pt"
    _run([str(BIN / "ds-w2v"), "init", "--preset", "tiny", "--task", "ctc", "--vocab", str(timit_shards / "vocab.json"),
          "--out", str(model)], cwd=cwd)
    args = ["evaluate", f"data.shards={timit_shards}", f"model.init={model}", "--split", "dev", "--split", "test",
            "device=cpu", "data.batch_s=12"]
    one = _run([str(BIN / "ds-w2v"), *args, "--out", str(tmp_path / "one.json")], cwd=cwd)
    two = _run([str(BIN / "deepspeed"), "--num_gpus", "2", "--master_port", str(_free_port()), "--module", "ds_w2v",
                *args, "--out", str(tmp_path / "two.json")], cwd=cwd)
    a, b = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("one", "two"))
    assert a["task"] == "ctc" and list(a["splits"]) == list(b["splits"]) == ["dev", "test"]
    for split in ("dev", "test"):
        x, y = a["splits"][split], b["splits"][split]
        assert x["num_utterances"] == y["num_utterances"] == index[split]["num_samples"]
        assert x["audio_s"] == pytest.approx(y["audio_s"], abs=1e-2) and "num_unscored" not in x
        # the same model on the same audio: batch composition (padding, group norm) moves it a little
        assert x["loss"] == pytest.approx(y["loss"], rel=0.05)
    assert json.loads(one.stdout) == a and '"splits"' in two.stdout
    assert sorted(p.name for p in cwd.iterdir()) == []  # no runs/run, nothing written where it ran
