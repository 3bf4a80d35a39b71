"""``launch/gpu_check.sh``: its CPU dry run end to end (what CI runs, so the GPU check cannot rot
between loans), and the check's hardening: a build cut by its timeout is killed with its whole
process group, its lock removed and its failure recorded, so that the next step neither blocks nor
builds again; every step is killed as a group (no grandchild outlives it); a failing step makes
the exit status non-zero; figures are on disk as each row finishes; the tests step keeps per-test
results of a file it had to cut. No timing assertions: a shared CPU's figures are what they are."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from experiments.gpu import gpu_check
from experiments.gpu.gpu_check import CORE, Check, Plan, StepResult, parse_junit, render_summary, summarise_metrics
from experiments.gpu.gpu_report import parse_pytest_verbose
from experiments.gpu.timebox import run_timeboxed, tail
from ds_w2v.train import op_record

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def no_failures_remembered():
    """The check records a cut build in this process too: not for the next test."""
    yield
    op_record.forget_failures()


def _dead(pid: int) -> bool:
    """Gone, or a zombie (killed; waiting for whoever reaps orphans)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


def _check(tmp_path, minutes: float = 1.0) -> Check:
    check = Check(Plan.cpu_dry_run(minutes), tmp_path / "out", tmp_path / "work", sys.executable)
    check.out.mkdir(parents=True)
    check.work.mkdir(parents=True)
    return check


# a command that starts a grandchild (think ninja under the build, a training under pytest),
# writes its pid, then either waits (to be cut) or exits at once leaving the grandchild behind
SPAWNER = textwrap.dedent("""
    import subprocess, sys, time
    g = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    open(sys.argv[1], "w").write(str(g.pid))
    print("grandchild started", flush=True)
    if sys.argv[2] == "wait":
        time.sleep(120)
""")


@pytest.mark.parametrize("how", ["wait", "exit"], ids=["cut_by_its_timeout", "exits_leaving_a_grandchild"])
def test_a_step_is_killed_as_a_group(tmp_path, how):
    pid_file, log = tmp_path / "grandchild.pid", tmp_path / "step.log"
    code, _ = run_timeboxed([sys.executable, "-c", SPAWNER, str(pid_file), how], 60 if how == "exit" else 3, log,
                            grace_s=1.0)
    assert code == (None if how == "wait" else 0)
    assert "grandchild started" in tail(log, 1000)  # the output as it came, kept through the kill
    assert _dead(int(pid_file.read_text()))


# -- the op build: cut mid-way, then the next step neither blocks nor builds ---------------------------------
FAKE_PYTHON = textwrap.dedent("""\
    #!{python}
    # stands in for python: a DeepSpeed op build that takes torch's lock, starts ninja, and hangs;
    # anything else is handed to the real interpreter
    import os, subprocess, sys, time
    args = sys.argv[1:]
    if args[:3] == ["-m", "experiments.gpu.gpu_probes", "build-op"]:
        lock = os.path.join(os.environ["TORCH_EXTENSIONS_DIR"], "fused_adam", "lock")
        os.makedirs(os.path.dirname(lock), exist_ok=True)
        open(lock, "w").close()  # torch's FileBaton: every later build of fused_adam waits while it exists
        ninja = subprocess.Popen([{python!r}, "-c", "import time; time.sleep(120)"])
        open(os.environ["FAKE_NINJA_PID"], "w").write(str(ninja.pid))
        print("[1/3] nvcc multi_tensor_adam.cu", flush=True)
        time.sleep(120)
    os.execv({python!r}, [{python!r}, *args])
""")

NEXT_STEP = textwrap.dedent("""
    # a later step's first engine: it must not build (nor wait on a lock) but take torch's AdamW
    from ds_w2v.train.config import load_config
    from ds_w2v.train.deepspeed_config import build_ds_config
    from ds_w2v.train.engine import choose_optimizer, probe_op_builder
    config = load_config("pretrain_original", ["data.shards=/x", "deepspeed_config=ds_configs/zero2.json"])
    choice = choose_optimizer(build_ds_config(config, 8, "cuda"), config.optim, "cuda", probe_op_builder)
    print("adamw" if choice.adamw is not None else "fused", choice.warning)
""")


@pytest.mark.slow
def test_a_build_cut_mid_way_leaves_no_lock_and_the_next_step_goes_to_the_fallback(tmp_path, monkeypatch):
    fake = tmp_path / "python"
    fake.write_text(FAKE_PYTHON.format(python=sys.executable))
    fake.chmod(0o755)
    extensions, ninja_pid = tmp_path / "torch_extensions", tmp_path / "ninja.pid"
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(extensions))
    monkeypatch.setenv("FAKE_NINJA_PID", str(ninja_pid))
    check = Check(Plan.gpu(2.0), tmp_path / "out", tmp_path / "work", str(fake))
    check.out.mkdir()
    check.work.mkdir()

    check.step("ops", check.step_ops, 6.0)  # the build hangs: cut after 6 s
    ops = json.loads((check.out / "results.json").read_text())["steps"]["ops"]
    assert ops["status"] == "timeout"
    build = ops["builds"]["FusedAdamBuilder"]
    assert build["status"] == "timeout" and "cut after 6 s" in build["error"]
    assert build["removed_locks"] == [str(extensions / "fused_adam" / "lock")]
    assert not (extensions / "fused_adam" / "lock").exists()
    assert _dead(int(ninja_pid.read_text()))  # the build's ninja went with it
    assert op_record.recorded_failure("FusedAdamBuilder", check.env())

    code, text = check.run_cmd("next", [sys.executable, "-c", NEXT_STEP], 120)
    assert code == 0, text  # did not block: it would have been cut and killed (code None)
    assert "adamw" in text and "recorded earlier; not retried" in text


# -- the exit status, and figures on disk as they come ----------------------------------------------------
def test_a_failing_step_does_not_stop_the_next_and_a_spent_budget_skips(tmp_path):
    check = _check(tmp_path)
    ran = []

    def boom(budget):
        ran.append("env")
        raise RuntimeError("CUDA error: an illegal memory access")

    check.step("env", boom, 30)
    check.step("ops", lambda budget: ran.append("ops") or {"builds": {}}, 30)
    check.deadline = 0.0  # the budget is spent
    check.step("tests", lambda budget: ran.append("tests") or {}, 30)
    assert ran == ["env", "ops"]
    steps = json.loads((check.out / "results.json").read_text())["steps"]
    assert steps["env"]["status"] == "failed" and "illegal memory access" in steps["env"]["error"]
    assert steps["ops"]["status"] == "ok" and steps["tests"]["status"] == "skipped"
    assert "| env | failed |" in (check.out / "summary.md").read_text()
    assert check.failures() == ["env", "tests"]


def test_main_exits_non_zero_when_a_step_fails(tmp_path, monkeypatch):
    outcome = {}

    def fake_run(self):
        for name in CORE:
            self.results[name] = StepResult("ok")
        self.results.update(outcome)

    monkeypatch.setattr(Check, "run", fake_run)
    args = ["--dry-run", "--out", str(tmp_path / "out"), "--work", str(tmp_path / "work")]
    assert gpu_check.main(args) == 0
    outcome.update(max_batch=StepResult("timeout"), loader=StepResult("skipped"))  # an optional row cut or skipped
    assert gpu_check.main(args) == 0
    outcome.update(matmul=StepResult("failed", error="RuntimeError"))  # an optional row that failed
    assert gpu_check.main(args) == 1
    outcome.clear()
    outcome.update(pretrain=StepResult("timeout"))  # a core step
    assert gpu_check.main(args) == 1
    assert json.loads((tmp_path / "out" / "results.json").read_text())["steps"]["pretrain"]["status"] == "timeout"


def test_rows_are_on_disk_while_the_step_runs(tmp_path):
    check = _check(tmp_path)
    seen = []

    def bench(budget):
        check.partial(rows=[{"preset": "tiny", "batch": 2, "seconds": 2.0, "ours_s": 0.5}])
        seen.append(json.loads((check.out / "results.json").read_text())["steps"]["bench_train"])
        raise RuntimeError("killed before the second row")

    check.step("bench_train", bench, 30)
    assert seen[0]["status"] == "running" and seen[0]["rows"][0]["ours_s"] == 0.5
    step = json.loads((check.out / "results.json").read_text())["steps"]["bench_train"]
    assert step["status"] == "failed" and step["rows"][0]["ours_s"] == 0.5  # kept after the failure


def test_plans_give_every_core_step_its_share():
    for plan in (Plan.gpu(8.5), Plan.cpu_dry_run(12.0)):
        assert set(plan.shares) == set(CORE) and sum(plan.shares.values()) <= 1.0 + 1e-9
    plan = Plan.cpu_dry_run(12.0)
    with pytest.raises(ValueError, match=r"sum to 1\.10 > 1"):
        over = 1.10 - sum(plan.shares.values())  # the tests step's share raised until they sum to 1.10
        Plan(**{**plan.__dict__, "shares": {**plan.shares, "tests": plan.shares["tests"] + over}})


# -- the tests step: per-test results of a file cut mid-way --------------------------------------------------
def test_pytest_verbose_output_gives_results_up_to_the_cut():
    text = ("tests/gpu/test_a.py::test_one PASSED                  [ 25%]\n"
            "tests/gpu/test_a.py::test_two[bf16-FLASH] SKIPPED (needs CUDA)   [ 50%]\n"
            "tests/gpu/test_a.py::test_three FAILED               [ 75%]\n"
            "tests/gpu/test_a.py::test_four \n")
    got = parse_pytest_verbose(text)
    assert (got["passed"], got["failed"], got["skipped"]) == (1, 1, 1)
    assert got["failures"] == ["tests/gpu/test_a.py::test_three: FAILED"]
    assert got["skips"] == ["tests/gpu/test_a.py::test_two[bf16-FLASH]: needs CUDA"]
    assert got["cut"] == "tests/gpu/test_a.py::test_four"
    assert parse_pytest_verbose(text + "tests/gpu/test_a.py::test_four PASSED [100%]\n")["cut"] is None


@pytest.mark.slow
def test_the_tests_step_keeps_what_a_cut_file_had_done(tmp_path):
    quick, hang = tmp_path / "test_quick.py", tmp_path / "test_hang.py"
    marked = "import time\nimport pytest\npytestmark = pytest.mark.gpu  # the step runs pytest -m gpu\n\n"
    quick.write_text(marked + "def test_fine():\n    pass\n")
    hang.write_text(marked + "def test_first():\n    pass\n\ndef test_hangs():\n    time.sleep(120)\n")
    check = _check(tmp_path)
    check.plan.test_files = ((str(quick), 0.5), (str(hang), 0.5))
    check.step("tests", check.step_tests, 20)
    tests = json.loads((check.out / "results.json").read_text())["steps"]["tests"]
    assert tests["status"] == "timeout" and tests["passed"] == 2
    done, cut = tests["files"]["test_quick"], tests["files"]["test_hang"]
    assert done["status"] == "ok" and done["passed"] == 1
    assert cut["status"] == "timeout" and cut["passed"] == 1 and cut["cut"].endswith("::test_hangs")
    assert "| test_hang | timeout |" in (check.out / "summary.md").read_text()


# -- the whole dry run --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_dry_run_runs_every_step_on_cpu(tmp_path):
    out, work = tmp_path / "gpu_results", tmp_path / "work"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    env["PYTHON"] = sys.executable  # the test environment's python (on the GPU machine: the image's python3)
    proc = subprocess.run(["bash", "launch/gpu_check.sh", "--dry-run", "--out", str(out), "--work", str(work)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)  # its budget: 12 min
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    files = sorted(p.name for p in out.iterdir())
    assert files == ["log.txt", "results.json", "summary.md"]  # within the device tool's 8 files, no folders
    results = json.loads((out / "results.json").read_text())
    assert results["dry_run"] is True and list(results["steps"])[:len(CORE)] == list(CORE)
    steps = results["steps"]
    bad = {k: (s["status"], s["error"]) for k, s in steps.items() if k in CORE and s["status"] != "ok"}
    assert not bad, (bad, (out / "log.txt").read_text()[-4000:])
    assert all(s["status"] in ("ok", "skipped", "timeout") for s in steps.values())  # no optional row failed
    assert steps["env"]["torch"] and steps["env"]["sdpa"]["MATH"].startswith("yes")
    assert steps["ops"]["builds"]["ShareMemCommBuilder"]["status"] == "built"
    assert steps["tests"]["passed"] > 0 and steps["tests"]["failed"] == 0
    assert all(f["status"] == "ok" for f in steps["tests"]["files"].values())
    for bench in ("bench_step", "bench_train"):
        assert steps[bench]["rows"] and all(r["ours_s"] > 0 and r["ratio"] > 0 for r in steps[bench]["rows"])
    corpus = steps["corpus"]
    assert corpus["splits"]["train"]["num_samples"] > 0 and corpus["hours"] >= corpus["hours_asked"] / 2
    for run in ("pretrain", "finetune_ctc"):
        s = steps[run]
        assert s["stopped_by"] == "max_train_s" and s["updates"] >= 1, s
        assert s["audio_s_per_s"] > 0 and 0 <= s["data_wait"] <= 1, s
    assert steps["finetune_ctc"]["test"]["num_utterances"] > 0
    summary = (out / "summary.md").read_text()
    for heading in ("## Environment", "## `pytest -m gpu`", "## `ds-w2v bench step`", "## `ds-w2v bench train`",
                    "## End to end"):
        assert heading in summary


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
                           "steps": {"pretrain": {"status": "ok", "seconds": 90.0, "error": "", "updates": 40,
                                                  "peak_flops": 989e12, **m},
                                     "matmul": {"status": "ok", "seconds": 3.0, "error": "", "tflops": 700.0,
                                                "dtype": "bf16", "size": 8192, "device": "NVIDIA H200"}}})
    # MFU 35 % of the data sheet's 989 TFLOP/s = 49.5 % of the 700 measured
    assert "| pretrain |  | 40 | 110.0 | 35.0% | 49.5% | 15.0% |" in text
