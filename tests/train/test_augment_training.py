"""A tiny CTC fine-tune with augmentation through the console command a user types
(``ds-w2v finetune-ctc ... data.augment.*``): it trains, the run's saved config records the
settings, and a bad noise folder is refused in one line before anything starts (in the run and
in its ``--dry-run``)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

sys.path.insert(0, str(Path(__file__).parents[1] / "reliability"))  # pytest runs with --import-mode=importlib
from reliability_helpers import subprocess_env  # noqa: E402  (less an earlier in-process Trainer's variables)

BIN = Path(sys.executable).parent
FAST = ["precision=fp32", "data.batch_s=12", "global_batch_s=24", "log_every=1", "data.shuffle_buffer=16",
        "model.overrides.encoder_layerdrop=0.0", "device=cpu"]


def _finetune(shards: Path, run: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "ds-w2v"), "finetune-ctc", "--recipe", "finetune_ctc_tiny",
                           f"data.shards={shards}", f"run_dir={run}", *FAST, *extra],
                          capture_output=True, text=True, timeout=900, env=subprocess_env(), cwd=run.parent)


@pytest.fixture
def noise_and_rirs(tmp_path) -> tuple[Path, Path]:
    """Generated here: two white-noise WAVs, two exponentially decaying noise RIRs."""
    rng = np.random.default_rng(0)
    noise, rir = tmp_path / "noise", tmp_path / "rir"
    noise.mkdir()
    rir.mkdir()
    for i in range(2):
        sf.write(noise / f"n{i}.wav", (0.05 * rng.standard_normal(32000)).astype(np.float32), 16000)
        h = rng.standard_normal(4000) * 10 ** (-3 * np.arange(4000) / (0.3 * 16000))
        h[0] = 4.0
        sf.write(rir / f"r{i}.wav", (h / 8).astype(np.float32), 16000, subtype="FLOAT")
    return noise, rir


@pytest.mark.slow
def test_finetune_with_augmentation_trains_and_records_it(timit_shards, noise_and_rirs, tmp_path):
    pytest.importorskip("deepspeed")
    noise, rir = noise_and_rirs
    run = tmp_path / "run"
    proc = _finetune(timit_shards, run, "max_updates=2", "eval_every=2", "eval_max_batches=1", "data.test_split=null",
                     "data.augment.speeds=[0.9,1.0,1.1]", f"data.augment.noise={noise}", "data.augment.snr_db=[5,20]",
                     f"data.augment.rir={rir}", "data.augment.rir_prob=0.5")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((run / "results.json").read_text())
    assert result["task"] == "ctc" and result["updates"] == 2
    saved = yaml.safe_load((run / "config.yaml").read_text())["data"]["augment"]
    assert saved == {"speeds": [0.9, 1.0, 1.1], "noise": str(noise), "noise_prob": 1.0, "snr_db": [5.0, 20.0],
                     "rir": str(rir), "rir_prob": 0.5}
    assert "training stream augmentation" in proc.stdout + proc.stderr
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["update"] for r in rows if "train/loss" in r] == [1, 2]
    assert all(np.isfinite(r["train/loss"]) for r in rows if "train/loss" in r)


@pytest.mark.parametrize("dry_run", [False, True], ids=["run", "dry-run"])
def test_a_missing_noise_folder_is_refused_in_one_line(timit_shards, tmp_path, capsys, dry_run):
    pytest.importorskip("deepspeed")
    from ds_w2v.cli import main as cli

    run, missing = tmp_path / "run", tmp_path / "nowhere"
    code = cli(["finetune-ctc", "--recipe", "finetune_ctc_tiny", f"data.shards={timit_shards}", f"run_dir={run}", *FAST,
                f"data.augment.noise={missing}", *(["--dry-run"] if dry_run else [])])
    assert code == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"ds-w2v finetune-ctc: error: config key data.augment.noise: {missing}: no such directory")
    assert not run.exists()  # refused before the run directory, any process group or checkpoint
