"""The study end to end through its real entry point (``python -m experiments.study``, what
``launch/study.sh`` runs after setting up the venv): the quick plan on its own small corpora,
phones only (pretraining with the probe curve, the HF reference, the four phone-CTC arms x 2
seeds, the supervised ceiling per seed and the probe rows) -- ~3 min on 2 cores; then the same command again,
which reuses every finished run."""
import json
import subprocess
import sys
import time

import pytest

from experiments.study.jobs import ROOT
from experiments.study.runner import CEILING

pytestmark = pytest.mark.slow


def test_quick_study_end_to_end_and_resumed(tmp_path):
    pytest.importorskip("matplotlib")
    cmd = [sys.executable, "-m", "experiments.study", "--quick", "--tasks", "phones", "--data", str(tmp_path / "data"),
           "--runs", str(tmp_path / "runs"), "--results", str(tmp_path / "results")]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = (tmp_path / "results" / "STUDY.md").read_text()
    study = json.loads((tmp_path / "results" / "study.json").read_text())
    # the goals, each with a computed verdict; the headroom share has none when the quick plan's
    # 4-update ceiling does not bound the pretrained row
    goals = {g["name"]: g for g in study["goals"]}
    assert list(goals) == ["linear phone probe", "headroom closed", "PER with 10 % labels"]
    assert goals["linear phone probe"]["passed"] in (True, False) and goals["PER with 10 % labels"]["passed"] in (True, False)
    assert (goals["headroom closed"]["passed"] is None) == ("does not bound" in goals["headroom closed"]["measured"])
    # the probe rows, the ceiling beside them, and both curves from update 0 to the last
    assert set(study["probes"]) == {"pretrained", "random init", "HF reference", CEILING}
    assert len(study["probes"][CEILING]) == 2  # one supervised ceiling per seed
    for name in ("ds_w2v", "HF Wav2Vec2ForPreTraining"):
        assert [p["update"] for p in study["curves"][name]] == [0, 3, 6]
    # four arms, each its lr from the grid and two seeds with a test PER
    assert len(study["arms"]) == 4
    for arm in study["arms"]:
        assert arm["chosen_lr"] == 2e-3 and arm["seeds"] == [1, 2] and len(arm["test"]["values"]) == 2
    assert "| pretrained | 10 % |" in text and "(n=2)" in text
    assert (tmp_path / "results" / "probe_curve.png").is_file()

    t0 = time.time()
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert " $ " not in again.stdout  # nothing ran again: every job was reused
    assert time.time() - t0 < 60
    assert json.loads((tmp_path / "results" / "study.json").read_text())["arms"] == study["arms"]
