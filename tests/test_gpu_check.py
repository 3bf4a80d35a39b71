"""``launch/gpu_check.sh``: its CPU dry run end to end (what CI runs, so the GPU check cannot rot
between loans), and the check's own rules: a failing step does not stop the ones after it, a
spent budget skips what is left, and what comes back stays within the device tool's limits."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ds_w2v.bench.gpu_check import Check, Plan, parse_junit, render_summary, summarise_metrics

ROOT = Path(__file__).resolve().parents[1]
STEPS = ["env", "tests", "bench_step", "bench_train", "corpus", "pretrain", "finetune_ctc"]


@pytest.mark.slow
def test_dry_run_runs_every_step_on_cpu(tmp_path):
    out, work = tmp_path / "gpu_results", tmp_path / "work"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env["PYTHON"] = sys.executable  # the test environment's python (on the GPU machine: the image's python3)
    proc = subprocess.run(["bash", "launch/gpu_check.sh", "--dry-run", "--minutes", "8", "--out", str(out),
                           "--work", str(work)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    files = sorted(p.name for p in out.iterdir())
    assert files == ["log.txt", "results.json", "summary.md"]  # within the device tool's 8 files, no folders
    results = json.loads((out / "results.json").read_text())
    assert results["dry_run"] is True and list(results["steps"]) == STEPS
    bad = {k: (s["status"], s["error"]) for k, s in results["steps"].items() if s["status"] != "ok"}
    assert not bad, (bad, (out / "log.txt").read_text()[-4000:])
    steps = results["steps"]
    assert steps["env"]["torch"] and steps["env"]["sdpa"]["MATH"].startswith("yes")
    assert steps["env"]["fused_adam"]["status"]  # on CPU: the fallback, with the reason
    assert steps["tests"]["passed"] > 0 and steps["tests"]["failed"] == 0
    for bench in ("bench_step", "bench_train"):
        assert steps[bench]["rows"] and all(r["ours_s"] > 0 and r["ratio"] > 0 for r in steps[bench]["rows"])
    assert steps["corpus"]["splits"]["train"]["num_samples"] > 0
    for run in ("pretrain", "finetune_ctc"):
        s = steps[run]
        assert s["stopped_by"] == "max_train_s" and s["updates"] >= 1, s
        assert s["audio_s_per_s"] > 0 and 0 <= s["data_wait"] <= 1, s
    assert steps["finetune_ctc"]["test"]["num_utterances"] > 0
    summary = (out / "summary.md").read_text()
    for heading in ("## Environment", "## `pytest -m gpu`", "## `ds-w2v bench step`", "## `ds-w2v bench train`",
                    "## End to end"):
        assert heading in summary


def test_a_failing_step_does_not_stop_the_next_and_a_spent_budget_skips(tmp_path):
    check = Check(Plan.cpu_dry_run(1.0), tmp_path / "out", tmp_path / "work", sys.executable)
    check.out.mkdir()
    ran = []

    def boom(budget):
        ran.append("env")
        raise RuntimeError("CUDA error: an illegal memory access")

    check.step("env", boom)
    check.step("tests", lambda budget: ran.append("tests") or {"passed": 1, "failed": 0, "skipped": 0})
    check.deadline = 0.0  # the budget is spent
    check.step("bench_step", lambda budget: ran.append("bench_step") or {})
    assert ran == ["env", "tests"]
    steps = json.loads((check.out / "results.json").read_text())["steps"]
    assert steps["env"]["status"] == "failed" and "illegal memory access" in steps["env"]["error"]
    assert steps["tests"]["status"] == "ok" and steps["bench_step"]["status"] == "skipped"
    assert "| env | failed |" in (check.out / "summary.md").read_text()


def test_a_timed_out_command_is_reported_not_raised(tmp_path):
    check = Check(Plan.cpu_dry_run(1.0), tmp_path / "out", tmp_path / "work", sys.executable)
    code, text = check.run_cmd("sleep", [sys.executable, "-c", "import time; print('started', flush=True); "
                                         "time.sleep(30)"], timeout_s=2)
    assert code is None and "started" in text and "timed out after 2 s" in text
    assert check.outcome(code, text)["_status"] == "timeout"


def test_helpers_read_junit_and_metrics(tmp_path):
    xml = tmp_path / "r.xml"
    xml.write_text('<testsuites><testsuite><testcase classname="t" name="a"/>'
                   '<testcase classname="t" name="b"><failure message="boom"/></testcase>'
                   '<testcase classname="t" name="c"><skipped message="needs CUDA"/></testcase></testsuite></testsuites>')
    j = parse_junit(xml)
    assert (j["passed"], j["failed"], j["skipped"]) == (1, 1, 1)
    assert j["failures"] == ["t::b: boom"] and j["skips"] == ["t::c: needs CUDA"]
    rows = [{"update": 5, "perf/audio_s_per_s": 10.0, "perf/data_wait": 0.9},  # start-up: left out
            {"update": 10, "perf/audio_s_per_s": 100.0, "perf/data_wait": 0.1, "perf/mfu": 0.3},
            {"update": 15, "perf/audio_s_per_s": 120.0, "perf/data_wait": 0.2, "perf/mfu": 0.4},
            {"update": 15, "dev/loss": 1.0}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    m = summarise_metrics(tmp_path / "metrics.jsonl")
    assert m["audio_s_per_s"] == 110.0 and m["mfu"] == pytest.approx(0.35) and m["last_logged_update"] == 15
    text = render_summary({"dry_run": False, "minutes": 8, "machine": "NVIDIA H200", "started": "today",
                           "steps": {"pretrain": {"status": "ok", "seconds": 90.0, "error": "", "updates": 40, **m}}})
    assert "| pretrain | 40 | 110.0 | 35.0% | 15.0% |" in text
