"""The demo's job runner: dependencies respected, at most ``parallel`` at a time, finished runs
reused, and a failing run stops the demo with its log's tail; the demo's jobs are the real
commands (training through launch/_launch.sh, the probes through ``ds-w2v probe``)."""
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ds_w2v.commands.build_lm import build_parser as build_lm_parser
from ds_w2v.commands.evaluate import build_parser as evaluate_parser
from ds_w2v.commands.probe import build_parser as probe_parser
from experiments.demo import (
    CPU_DEMO,
    DEMO_SEED,
    LM_ORDER,
    PROBE_UTTERANCES,
    ROOT,
    FileJob,
    Job,
    demo_jobs,
    lm_jobs,
    run_jobs,
)


class FakeJob(Job):
    """A job whose process sleeps, records its start/end times, then writes results.json."""

    def __init__(self, tmp_path, name, needs=(), fail=False, seconds=0.3):
        super().__init__(name, "fake", [], tmp_path / name, needs=needs)
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


def test_a_file_job_records_its_file_in_one_write(tmp_path, monkeypatch):
    """A step whose product is a file (build-lm): its results.json, written once on success,
    names the file with the job's time; a rerun reuses it; a failure writes none."""
    writes = []
    write_text = Path.write_text
    monkeypatch.setattr(Path, "write_text", lambda self, *a, **k: (writes.append(self), write_text(self, *a, **k))[1])
    arpa = tmp_path / "lm.arpa"

    def file_job(name, code):
        job = FileJob(name, "build-lm", [], tmp_path / name, out=arpa)
        job.start = lambda threads: (job._begin(), subprocess.Popen([sys.executable, "-c", code]))[1]
        return job

    job = file_job("lm", f"import time; time.sleep(0.2); open({str(arpa)!r}, 'w').write('arpa')")
    run_jobs([job], parallel=1)
    assert writes == [job.run_dir / "results.json"]
    assert json.loads(writes[0].read_text()) == job.result == {"out": str(arpa), "wall_s": job.wall_s}
    assert job.wall_s >= 0.2
    again = FileJob("lm", "build-lm", [], tmp_path / "lm", out=arpa)
    assert again.cached() and again.result == job.result and again.wall_s == job.wall_s
    with pytest.raises(RuntimeError, match=r"bad: build-lm failed \(exit 2\)"):
        run_jobs([file_job("bad", "import sys; sys.exit(2)")], parallel=1)
    assert len(writes) == 1 and not (tmp_path / "bad" / "results.json").exists()


def test_unmet_dependency_is_an_error(tmp_path):
    with pytest.raises(RuntimeError, match="wait on unknown jobs"):
        run_jobs([FakeJob(tmp_path, "orphan", needs=("nobody",))], parallel=2)


def test_demo_jobs_are_the_real_commands(tmp_path):
    data, runs = tmp_path / "shards", tmp_path / "runs"
    jobs, order, rows = demo_jobs("tiny", data, runs, ablation="off")
    assert rows == [] and order == ["pretrain", "ctc", "cls", "probe random init", "probe pretrained"]  # lm=False
    jobs, order, rows = demo_jobs("tiny", data, runs)  # the CPU default: the 10 % rows only with --ablation full
    assert rows == ["random init, 100 %"]
    assert order == ["pretrain", "random init, 100 %", "ctc", "cls", "probe random init", "probe pretrained"]
    assert set(order) == set(jobs)
    pt = jobs["pretrain"]
    assert pt.argv()[:3] == ["bash", str(ROOT / "launch" / "_launch.sh"), "pretrain"]
    for key, kind in (("pretrain", "pretrain"), ("ctc", "ctc"), ("cls", "cls"), ("random init, 100 %", "ctc")):
        assert f"seed={DEMO_SEED}" in jobs[key].args and set(CPU_DEMO[kind]) <= set(jobs[key].args)
    assert "max_updates=180" in pt.args and "max_updates=300" in jobs["ctc"].args
    assert all("precision=fp32" in jobs[k].args for k in ("pretrain", "ctc", "cls", "random init, 100 %"))
    assert jobs["random init, 100 %"].needs == () and "model.init" not in " ".join(jobs["random init, 100 %"].args)
    # the two probes: the same command line but the upstream; the random one waits for nothing
    pre, rnd = jobs["probe pretrained"], jobs["probe random init"]
    assert pre.needs == ("tiny pretrain",) and rnd.needs == ()
    assert pre.argv()[:4] == [sys.executable, "-m", "ds_w2v", "probe"]
    parsed = {name: probe_parser("ds-w2v probe").parse_args(job.args) for name, job in (("pre", pre), ("rnd", rnd))}
    assert parsed["pre"].upstream == str(pt.run_dir) and parsed["rnd"].upstream == "random:tiny"
    for job, args in ((pre, parsed["pre"]), (rnd, parsed["rnd"])):
        assert args.protocol == "linear" and args.data == [str(data / "timit")]
        assert args.max_utterances == PROBE_UTTERANCES and args.seed == DEMO_SEED
        assert args.cache == str(runs / "probe_cache") and Path(args.out) == job.run_dir / "results.json"
    # a GPU size: its demo-scale overrides, no ablation by default, the probes all the same
    jobs, order, rows = demo_jobs("small", data, runs)
    assert rows == [] and "max_updates=3000" in jobs["pretrain"].args
    assert jobs["probe random init"].args[0] == "random:small"


def test_lm_jobs_are_the_real_commands(tmp_path):
    data, runs = tmp_path / "shards", tmp_path / "runs"
    jobs, order, _ = demo_jobs("tiny", data, runs, ablation="off", lm=True)
    assert order[-2:] == ["build-lm", "ctc + LM"] and set(order) == set(jobs)
    build, dec = jobs["build-lm"], jobs["ctc + LM"]
    assert build.argv()[:4] == [sys.executable, "-m", "ds_w2v", "build-lm"] and build.needs == ()
    assert dec.argv()[:4] == [sys.executable, "-m", "ds_w2v", "evaluate"]
    assert set(dec.needs) == {"tiny ctc", "tiny build-lm"}
    lm_args = build_lm_parser("ds-w2v build-lm").parse_args(build.args)
    ev = evaluate_parser("ds-w2v evaluate").parse_args(dec.args)
    assert lm_args.text == [str(data / "timit")] and lm_args.order == LM_ORDER
    assert ev.tune_lm and Path(ev.out) == dec.run_dir / "results.json"
    assert {f"model.init={jobs['ctc'].run_dir}", "decoding.decoder=beam", f"decoding.lm={lm_args.out}"} <= set(ev.overrides)


def test_lm_jobs_run_and_feed_the_report(small_timit_shards, tmp_path):
    """build-lm then evaluate --tune-lm, run by the demo's runner on a tiny CTC model: the
    result the report's decoding rows read (test decoded once with weights chosen on dev)."""
    pytest.importorskip("flashlight.lib.text.decoder")
    import torch

    import ds_w2v

    torch.manual_seed(0)
    model = ds_w2v.build_model("tiny", "ctc", vocab=str(small_timit_shards / "vocab.json"))
    with torch.no_grad():  # peaked frames (logits ~ +-3), as a trained model's: the beam prunes fast
        model.lm_head.weight.normal_(0.0, 0.2)
    ctc = ds_w2v.save_model(model, tmp_path / "ctc.pt")
    jobs = lm_jobs("tiny", small_timit_shards, tmp_path / "runs", ctc, ())
    run_jobs([jobs["build-lm"], jobs["ctc + LM"]], 1)
    arpa = Path(jobs["build-lm"].result["out"])
    assert arpa.is_file() and "\\4-grams:" in arpa.read_text()
    out = jobs["ctc + LM"].result
    assert set(out["splits"]) == {"dev", "test"} and out["tuning"]["split"] == "dev"
    dec = out["decoding"]
    assert dec["decoder"] == "beam" and dec["lm"] == str(arpa)
    # the chosen weights are the dev grid's best point
    best = min(out["tuning"]["grid"], key=lambda p: (p["wer"], p["cer"], abs(p["lm_weight"]), abs(p["word_score"])))
    assert (dec["lm_weight"], dec["word_score"]) == (best["lm_weight"], best["word_score"])
    # a second demo run reuses both (their results.json)
    again = lm_jobs("tiny", small_timit_shards, tmp_path / "runs", ctc, ())
    assert all(j.cached() for j in again.values())
