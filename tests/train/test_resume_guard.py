"""A run directory holding another task's or another shape's checkpoints is refused in one line
before anything is written (it used to fail with a missing ``quantizer.codevectors`` traceback, and
model.json was rewritten first); and a run without run_dir gets runs/<recipe>, never one directory
shared by every task. Through the console script."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "reliability"))  # pytest runs with --import-mode=importlib
from reliability_helpers import subprocess_env  # noqa: E402  (less an earlier in-process Trainer's variables)

pytest.importorskip("deepspeed")
pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
FAST = ["max_updates=1", "precision=fp32", "data.batch_s=8", "global_batch_s=16", "log_every=1", "eval_every=1000",
        "save_every=1000", "data.dev_split=null", "data.test_split=null", "device=cpu"]


def _run(args, cwd):
    return subprocess.run([str(BIN / "ds-w2v"), *args], cwd=cwd, env=subprocess_env(),
                          capture_output=True, text=True, timeout=300)


def test_another_task_or_shape_in_a_run_dir_is_refused_in_one_line(small_timit_shards, tmp_path):
    cwd = tmp_path / "work"
    cwd.mkdir()
    data = f"data.shards={small_timit_shards}"
    first = _run(["pretrain", "--recipe", "pretrain_tiny", data, *FAST], cwd)
    assert first.returncode == 0, first.stderr[-3000:]
    run = cwd / "runs" / "pretrain_tiny"  # the recipe's own default run directory
    assert (run / "checkpoints").is_dir() and sorted(p.name for p in (cwd / "runs").iterdir()) == ["pretrain_tiny"]
    meta = (run / "model.json").read_text()

    ctc = _run(["finetune-ctc", "--recipe", "finetune_ctc_tiny", data, f"run_dir={run}", *FAST], cwd)
    assert ctc.returncode == 1
    assert ctc.stderr.strip().splitlines()[-1] == (
        f"ds-w2v finetune-ctc: error: run_dir {run} holds the checkpoints of a pretrain run, and "
        "this is a ctc run: resume it with the command that made it, or choose another run_dir")
    narrow = _run(["pretrain", "--recipe", "pretrain_tiny", data, "model.overrides.encoder_layers=2", *FAST], cwd)
    assert narrow.returncode == 1
    assert "holds the checkpoints of another model (encoder_layers 4 there, 2 here)" in narrow.stderr
    assert (run / "model.json").read_text() == meta  # nothing was rewritten
    assert "Traceback" not in ctc.stderr + narrow.stderr
    assert json.loads(meta)["task"] == "pretrain"

    # export-hf takes the run directory, as model.init, evaluate and probe do
    hf = _run(["export-hf", str(run), str(tmp_path / "hf")], cwd)
    assert hf.returncode == 0, hf.stderr[-2000:]
    assert json.loads((tmp_path / "hf" / "config.json").read_text())["architectures"] == ["Wav2Vec2ForPreTraining"]
