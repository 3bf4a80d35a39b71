"""The demo's job runner: dependencies respected, at most ``parallel`` at a time, finished runs
reused, and a failing run stops the demo with its log's tail."""
import json
import subprocess
import sys
import time

import pytest

from ds_w2v.demo import Job, run_jobs


class FakeJob(Job):
    """A job whose process sleeps, records its start/end times, then writes results.json."""

    def __init__(self, tmp_path, name, needs=(), fail=False, seconds=0.3):
        super().__init__(name, "fake", "none", tmp_path / name, [], needs=needs)
        self.fail, self.seconds = fail, seconds

    def start(self, threads):
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.threads = threads
        self._t0 = time.time()
        self._log = open(self.log, "w")
        code = (f"import json, time, sys; t0 = time.time(); time.sleep({self.seconds}); "
                f"print('boom' if {self.fail} else 'ok'); "
                f"json.dump({{'start': t0, 'end': time.time()}}, open({str(self.run_dir / 'results.json')!r}, 'w')); "
                f"sys.exit(3 if {self.fail} else 0)")
        return subprocess.Popen([sys.executable, "-c", code], stdout=self._log, stderr=subprocess.STDOUT)


def test_dependencies_and_parallelism(tmp_path):
    jobs = [FakeJob(tmp_path, "pre"), FakeJob(tmp_path, "free"), FakeJob(tmp_path, "a", needs=("pre",)),
            FakeJob(tmp_path, "b", needs=("pre",))]
    run_jobs(jobs, parallel=2)
    t = {j.name: j.result for j in jobs}
    assert all(j.wall_s > 0.25 and j.result["wall_s"] == j.wall_s for j in jobs)
    # "pre" and "free" ran side by side; "a" and "b" started only after "pre" ended
    assert t["free"]["start"] < t["pre"]["end"] and t["pre"]["start"] < t["free"]["end"]
    assert t["a"]["start"] >= t["pre"]["end"] and t["b"]["start"] >= t["pre"]["end"]
    # never more than two at once
    events = sorted([(r["start"], 1) for r in t.values()] + [(r["end"], -1) for r in t.values()])
    live = peak = 0
    for _, step in events:
        live += step
        peak = max(peak, live)
    assert peak == 2
    assert {j.threads for j in jobs} == {max(1, (__import__("os").cpu_count() or 1) // 2)}


def test_finished_runs_are_reused(tmp_path):
    first = FakeJob(tmp_path, "pre")
    run_jobs([first], parallel=1)
    again = FakeJob(tmp_path, "pre")
    run_jobs([again], parallel=1)
    assert not hasattr(again, "threads")  # not started again
    assert again.result == json.loads((tmp_path / "pre" / "results.json").read_text())


def test_failure_names_the_job_and_shows_the_log(tmp_path):
    jobs = [FakeJob(tmp_path, "bad", fail=True, seconds=0.0), FakeJob(tmp_path, "slow", seconds=30),
            FakeJob(tmp_path, "after", needs=("bad",))]
    t0 = time.time()
    with pytest.raises(RuntimeError, match=r"(?s)bad: fake failed \(exit 3\); log .*bad.log:\nboom"):
        run_jobs(jobs, parallel=2)
    assert time.time() - t0 < 20  # the slow one was stopped, not waited for
    assert not (tmp_path / "after").exists()


def test_unmet_dependency_is_an_error(tmp_path):
    with pytest.raises(RuntimeError, match="wait on unknown jobs"):
        run_jobs([FakeJob(tmp_path, "orphan", needs=("nobody",))], parallel=2)
