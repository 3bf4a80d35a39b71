"""``launch/gpu_study.sh``: its CPU dry run through the shell script (corpora synthesised, the
random-init probe, a 30-second pretraining of tiny, the pretrained model's probe), and the plan's
and the summary's arithmetic. No timing assertions."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from experiments.gpu.gpu_study import PRETRAIN_CAP_S, StudyPlan, render_study

ROOT = Path(__file__).resolve().parents[3]


def test_pretraining_gets_what_the_budget_leaves_at_most_8_minutes():
    plan = StudyPlan.gpu(9.0)
    assert plan.pretrain_s(400.0) == 400.0 - plan.reserve_s  # the probe after it keeps its reserve
    assert plan.pretrain_s(3600.0) == PRETRAIN_CAP_S == 480.0
    assert plan.pretrain_s(60.0) == 30.0  # never nothing: a short run still gives a probe row
    assert StudyPlan.cpu_dry_run(5.0).pretrain_s(3600.0) == 30.0


def test_summary_sets_each_layer_of_the_pretrained_model_against_random_init():
    def probe(accs):
        best = max(accs, key=accs.get)
        return {"status": "ok", "seconds": 9.0, "error": "",
                "linear": {"layers": accs, "best_layer": best, "best_acc": accs[best], "majority_acc": 0.2}}

    text = render_study({"dry_run": False, "minutes": 9, "machine": "NVIDIA H100", "started": "today", "steps": {
        "probe_random": probe({"conv": 0.40, "layer5": 0.43}),
        "probe_pretrained": probe({"conv": 0.41, "layer5": 0.58}),
        "pretrain": {"status": "ok", "seconds": 400.0, "error": "", "updates": 9000, "train_time_s": 330.0,
                     "max_train_s": 330, "audio_hours_seen": 218.75, "train_hours": 4.1, "audio_s_per_s": 2400.0}}})
    assert "| layer5 | 43.0 % | 58.0 % | +15.0 points |" in text
    assert "Best layer: random init 43.0 % (layer5), pretrained 58.0 % (layer5): +15.0 points" in text
    assert "9000 updates in 330.0 s" in text


@pytest.mark.slow
def test_dry_run_through_the_script(tmp_path):
    out, work = tmp_path / "gpu_study", tmp_path / "work"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env["PYTHON"] = sys.executable
    proc = subprocess.run(["bash", "launch/gpu_study.sh", "--dry-run", "--out", str(out), "--work", str(work)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert sorted(p.name for p in out.iterdir()) == ["log.txt", "results.json", "summary.md"]
    steps = json.loads((out / "results.json").read_text())["steps"]
    assert list(steps) == ["env", "corpus", "probe_random", "pretrain", "probe_pretrained"]
    assert all(s["status"] == "ok" for s in steps.values()), {k: s["error"] for k, s in steps.items()}
    assert steps["corpus"]["extra"]["splits"] and steps["corpus"]["timit"]["splits"]["train"]["utterances"] > 0
    pre = steps["pretrain"]
    assert pre["stopped_by"] == "max_train_s" and pre["updates"] >= 1
    assert steps["probe_random"]["upstream"] == "random:tiny" and steps["probe_pretrained"]["upstream"] == pre["run_dir"]
    for name in ("probe_random", "probe_pretrained"):
        linear = steps[name]["linear"]
        assert 0 < linear["best_acc"] <= 1 and linear["best_layer"] in linear["layers"]
    assert "## Linear phone probe" in (out / "summary.md").read_text()
