"""The first losses of ``pretrain_tiny`` (fp32) on the synthesised TIMIT test corpus, against a
recorded asset, through the console script: a change to the model, the losses, the masking, the
quantizer, the optimizer, the schedule or the data order shows here as a number that moved.

The asset records the machine it came from. fp32 kernels round differently on another ISA or
thread count (emulated AVX2 here moved the demo's emotion accuracy by 19 points after 150
updates), so the check is 1e-4 relative over the first 6 updates, where rounding has not yet
grown: the same run with ATen, oneDNN and MKL held to AVX2 was 8.5e-8 from the asset (2026-12-07).
A change that is meant to move the losses rewrites the asset, and its commit says why:

    python tests/train/test_loss_regression.py --write   # in the venv; ~1 min on 2 cores
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "reliability"))  # pytest runs with --import-mode=importlib
from reliability_helpers import subprocess_env  # noqa: E402  (less an earlier in-process Trainer's variables)

pytest.importorskip("deepspeed")

ASSET = Path(__file__).parent / "assets" / "pretrain_tiny_losses.json"
BIN = Path(sys.executable).parent
UPDATES = 6
OVERRIDES = ["precision=fp32", "data.batch_s=12", "global_batch_s=24", "log_every=1", "eval_every=1000",
             "save_every=1000", "data.shuffle_buffer=16", "model.overrides.encoder_layerdrop=0.0", "device=cpu",
             "data.dev_split=null", f"max_updates={UPDATES}", "seed=1"]
CORPUS = ["--speakers", "40", "--sentences-per-speaker", "5"]  # tests/train/conftest.py's timit_shards


def _losses(shards: Path, run_dir: Path) -> tuple[list[float], str]:
    """(train/loss per update, the machine line) of one ``ds-w2v pretrain`` run."""
    proc = subprocess.run([str(BIN / "ds-w2v"), "pretrain", "--recipe", "pretrain_tiny", f"data.shards={shards}",
                           f"run_dir={run_dir}", *OVERRIDES], env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    start = next(r for r in rows if r.get("event") == "start")
    return [r["train/loss"] for r in rows if "train/loss" in r], start["machine"]


def test_the_first_pretraining_losses_match_the_recorded_ones(timit_shards, tmp_path):
    want = json.loads(ASSET.read_text())
    assert want["overrides"] == OVERRIDES and want["corpus"] == CORPUS, "the asset is from another setup: --write it"
    got, machine = _losses(timit_shards, tmp_path / "run")
    assert len(got) == UPDATES
    assert got == pytest.approx(want["losses"], rel=1e-4), (
        f"pretrain_tiny's first losses moved: {got} here ({machine}) vs {want['losses']} "
        f"recorded on {want['machine']}; if the change is meant, rewrite the asset (this file's docstring)")
    assert got[-1] < got[0]  # and it learns


def _write() -> None:
    from ds_w2v.cli import main as cli

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        assert cli(["synth", "timit", "--out", str(root / "TIMIT"), *CORPUS, "--workers", "2"]) == 0
        assert cli(["prepare", "--format", "timit", str(root / "TIMIT"), "--out", str(root / "shards"),
                    "--workers", "2", "--no-progress"]) == 0
        losses, machine = _losses(root / "shards", root / "run")
    import torch

    ASSET.parent.mkdir(exist_ok=True)
    ASSET.write_text(json.dumps({"overrides": OVERRIDES, "corpus": CORPUS, "losses": losses, "machine": machine,
                                 "torch": torch.__version__}, indent=1) + "\n")
    print(f"wrote {ASSET}: {losses}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/train/test_loss_regression.py --write")
    _write()
