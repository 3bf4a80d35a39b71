"""The GPU check: every GPU path of ds_w2v, once, time-boxed, for a short loan of one GPU.

    bash launch/gpu_check.sh [--minutes 8.5] [--out gpu_results]   # on the GPU machine
    bash launch/gpu_check.sh --dry-run                             # CPU, tiny, 2-5 minutes (CI)

The loan is one command of at most 10 minutes: nothing here may block past its budget, and what
was measured must be on disk when the command ends however it ends. So every step runs in a
process group of its own under its own timeout, and on timeout the whole group is killed
(``timebox.py``: a pytest's training, a build's ninja and nvcc, a loader's workers included); the
check goes on after a step fails; ``results.json`` and ``summary.md`` are rewritten after every
step and every row within a step; and the exit status is non-zero when a step failed.

Core steps, in order, each with a share of the budget (the shares sum to at most 1, so each
step gets its share even when every step before it used all of its own; what a step leaves
goes to the optional rows):

1. ``env``: GPU, versions, ``nvcc``, and which SDPA backends take a padding mask — before any build.
2. ``ops``: DeepSpeed's ops that the later steps would JIT-build (FusedAdam on GPU; on the CPU dry
   run the shm comm op every CPU process builds at ``init_distributed``), once, first, under their
   own timeout. A failed or cut build is recorded in ``DS_W2V_OP_RECORD`` (exported to every later
   step: ``engine.probe_op_builder`` reads it and goes straight to torch's AdamW, without trying
   again), and a cut build's stale ``lock`` is removed (every later build would wait on it).
3. ``tests``: ``pytest -m gpu``, one run per file of ``tests/gpu`` with its share of the step;
   per-test results from the junit XML, or from the verbose output kept as it came when a file was cut.
4. ``bench_step`` / ``bench_train``: ``original`` in bf16 at BASE's micro-batch (6 x 14.583 s =
   87.5 audio-s) and at 4 x 4 s, ours and HF ``Wav2Vec2ForPreTraining`` in the same process.
5. ``corpus``: ``--hours`` of synthesised read speech (espeak-ng) in the TIMIT layout, prepared.
6. ``pretrain`` / ``finetune_ctc``: real runs of ``original`` through the real entry point
   (``python -m ds_w2v.train``) with data workers, stopped by ``max_train_s``; end-to-end
   audio-s/s, MFU and the share of update time spent waiting for data, from metrics.jsonl.

Then optional rows, in priority order, each only when enough of the budget is left for it (a
row that does not fit is skipped and the next, cheaper one tried): ``precision`` (fp16 next to
bench_train's bf16), ``zero_memory`` (peak memory of ``original`` under ZeRO-1 and 3, next to 2),
``max_batch`` (the largest batch one update fits), ``pretrain_prefetch`` and ``pretrain_compile``
(``data.prefetch`` and ``compile=blocks`` on, against ``pretrain``'s off), ``loader`` (the training
stream alone with 16 workers), ``matmul`` (dense bf16 matmul TFLOP/s, to put MFU against) and
``bench_sizes`` (``small`` and ``medium``).

``--dry-run`` runs the same steps on the CPU with ``tiny`` and small budgets (the GPU tests with
``DS_W2V_GPU_TESTS_ON_CPU=1``), so the script cannot rot between loans; CI runs it, and its exit
status fails CI. Output, under ``--out``: ``summary.md`` (tables in the layout of BENCHMARKS.md),
``results.json`` and ``log.txt`` (each step's command and output tail); the steps' full output,
corpus and runs stay in ``--work``.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ds_w2v.train import op_record
from .gpu_report import parse_junit, parse_pytest_verbose, render_summary, summarise_metrics
from .steps import MIN_STEP_S, StepResult, StepRunner, terminate_on_signals
from .timebox import GRACE_S

__all__ = ["Check", "Extra", "Plan", "StepResult", "main", "parse_junit", "parse_pytest_verbose", "render_summary",
           "summarise_metrics"]

BASE_BATCH = (6, 14.583)  # utterances x seconds: 87.5 audio-s, wav2vec 2.0 BASE's 1.4M-sample micro-batch
SMALL_BATCH = (4, 4.0)
CORE = ("env", "ops", "tests", "bench_step", "bench_train", "corpus", "pretrain", "finetune_ctc")


@dataclass(frozen=True)
class Extra:
    """An optional row: started only with ``min_s`` seconds of the budget left, for at most ``cap_s``."""

    name: str
    min_s: float
    cap_s: float


@dataclass
class Plan:
    """Sizes and budgets of one check: the GPU plan, or the CPU dry run."""

    dry_run: bool
    minutes: float
    preset: str
    sizes: tuple[str, ...]
    precision: str
    alt_precision: str  # the precision row's
    step_batches: tuple[tuple[int, float], ...]
    bench_steps: int
    bench_warmup: int
    corpus_hours: float
    pretrain_s: float  # max_train_s of the end-to-end runs (start-up, test and save are on top)
    finetune_s: float
    option_train_s: float  # of the prefetch / compile rows
    num_workers: int
    loader_workers: int
    ops: tuple[str, ...]  # DeepSpeed op builders the later steps would build
    test_files: tuple[tuple[str, float], ...]  # (tests/gpu file, its share of the tests step), cheapest first
    max_batch: tuple[int, int, float]  # (first batch, largest tried, seconds per utterance)
    matmul: tuple[int, str]  # (matrix size, dtype)
    shares: dict[str, float] = field(default_factory=dict)  # core step -> most of the budget it may use
    extras: tuple[Extra, ...] = ()

    def __post_init__(self) -> None:
        if set(self.shares) != set(CORE):
            raise ValueError(f"Plan: shares for {sorted(self.shares)}, want {sorted(CORE)}")
        if sum(self.shares.values()) > 1.0 + 1e-9:  # else a late step could find its share spent by others
            raise ValueError(f"Plan: the core steps' shares sum to {sum(self.shares.values()):.2f} > 1")
        if abs(sum(s for _, s in self.test_files) - 1.0) > 1e-9:
            raise ValueError("Plan: the test files' shares must sum to 1")

    @classmethod
    def gpu(cls, minutes: float) -> "Plan":
        s = minutes * 60
        return cls(False, minutes, "original", ("small", "medium"), "bf16", "fp16", (BASE_BATCH, SMALL_BATCH),
                   bench_steps=5, bench_warmup=2, corpus_hours=1.0,
                   # start-up (imports, DeepSpeed, CUDA, workers: ~25 s) and the test pass come on top
                   pretrain_s=0.11 * s, finetune_s=0.04 * s, option_train_s=0.05 * s, num_workers=8,
                   loader_workers=16, ops=("FusedAdamBuilder",),
                   test_files=(("tests/gpu/test_sdpa_backends.py", 0.10), ("tests/gpu/test_hf_parity_gpu.py", 0.20),
                               ("tests/gpu/test_compile_gpu.py", 0.25), ("tests/gpu/test_trainer_gpu.py", 0.45)),
                   max_batch=(6, 384, BASE_BATCH[1]), matmul=(8192, "bf16"),
                   # ops: a cold FusedAdam build is ~1 min with nvcc; tests: 4 trainer subprocesses + compile
                   shares={"env": 0.03, "ops": 0.20, "tests": 0.30, "bench_step": 0.06, "bench_train": 0.07,
                           "corpus": 0.06, "pretrain": 0.18, "finetune_ctc": 0.10},
                   extras=(Extra("precision", 20, 45), Extra("zero_memory", 25, 60), Extra("max_batch", 30, 75),
                           Extra("pretrain_prefetch", 45, 70), Extra("pretrain_compile", 80, 120),
                           Extra("loader", 15, 40), Extra("matmul", 8, 20), Extra("bench_sizes", 40, 90)))

    @classmethod
    def cpu_dry_run(cls, minutes: float) -> "Plan":
        return cls(True, minutes, "tiny", (), "fp32", "fp32", ((2, 2.0),), bench_steps=1, bench_warmup=1,
                   # 0.3 h: 33 speakers, of which 24 are TIMIT's core test set: ~90 train utterances
                   corpus_hours=0.3, pretrain_s=8.0, finetune_s=5.0, option_train_s=6.0, num_workers=1,
                   loader_workers=2, ops=("ShareMemCommBuilder",),
                   test_files=(("tests/gpu/test_sdpa_backends.py", 0.10), ("tests/gpu/test_hf_parity_gpu.py", 0.25),
                               ("tests/gpu/test_compile_gpu.py", 0.25), ("tests/gpu/test_trainer_gpu.py", 0.40)),
                   max_batch=(1, 2, 2.0), matmul=(512, "fp32"),
                   # measured on 2 cores (2026-12-07), quiet / at load average 2-5 (other jobs): env 6 s,
                   # the shm op's cold build 38 / 82 s, tests 75 / 141 s, each bench 8 / >24 s, corpus
                   # 7 / 15 s, pretrain 25 / 30 s, fine-tuning 37 s. At 12 minutes each share is about twice
                   # the loaded figure, the build's most of all: a cut shm build is no fallback on CPU
                   # (DeepSpeed builds it again in every process it starts, at init_distributed)
                   shares={"env": 0.04, "ops": 0.20, "tests": 0.30, "bench_step": 0.05, "bench_train": 0.05,
                           "corpus": 0.05, "pretrain": 0.14, "finetune_ctc": 0.16},
                   # no compile row on CPU: it is the prefetch row's code with another override, and
                   # inductor's C++ build of tiny's blocks would take minutes on 2 cores
                   extras=(Extra("precision", 15, 40), Extra("zero_memory", 15, 40), Extra("max_batch", 15, 40),
                           Extra("pretrain_prefetch", 25, 60), Extra("loader", 10, 30), Extra("matmul", 5, 20)))


class Check(StepRunner):
    title = "gpu_check"

    def __init__(self, plan: Plan, out: Path, work: Path, python: str):
        super().__init__(out, work, python, plan.minutes, plan.dry_run)
        self.plan = plan

    # -- the core steps -----------------------------------------------------------------------
    def step_env(self, budget: float) -> dict[str, Any]:
        return self.probe("env", ["env", str(self.work / "env.json")], self.work / "env.json", budget)

    def step_ops(self, budget: float) -> dict[str, Any]:
        start, builds, status = time.monotonic(), {}, {}
        for i, builder in enumerate(self.plan.ops):
            left = (budget - (time.monotonic() - start)) / (len(self.plan.ops) - i)
            path = self.work / f"op_{builder}.json"
            got = self.probe(f"ops {builder}", ["build-op", builder, str(path)], path, left)
            got.pop("pid", None)
            if got.get("_status") == "timeout":
                # the record every later step reads: straight to the fallback, no second build
                why = f"build cut after {left:.0f} s by the GPU check (its process group killed)"
                op_record.record_failure(builder, why, self.env())
                got.update(status="timeout", error=why)
            if got.get("status") != "built":  # a killed build leaves torch's lock: later builds would wait on it
                removed = []
                for lock in op_record.stale_locks(builder, self.env()):
                    lock.unlink(missing_ok=True)
                    removed.append(str(lock))
                got["removed_locks"] = removed
            if "_status" in got:
                status = {"_status": got.pop("_status"), "_error": f"{builder}: {got.pop('_error', '')}"}
            builds[builder] = got
            self.partial(builds=builds)
        return {"builds": builds, "record": str(self.work / "op_record"), **status}

    def step_tests(self, budget: float) -> dict[str, Any]:
        start = time.monotonic()
        files: dict[str, Any] = {}
        totals: dict[str, Any] = {"passed": 0, "failed": 0, "skipped": 0, "failures": [], "skips": []}
        status: dict[str, Any] = {}
        done_share = 0.0
        for path, share in self.plan.test_files:
            done_share += share
            left = start + done_share * budget - time.monotonic()  # its share, plus what earlier files left
            name = Path(path).stem
            if left < MIN_STEP_S:
                files[name] = {"status": "skipped", "seconds": 0.0}
                status = {"_status": "timeout", "_error": f"no time left for {name}"}
                continue
            xml = self.work / "tests" / f"{name}.xml"
            xml.unlink(missing_ok=True)
            t0 = time.monotonic()
            code, text = self.run_cmd(f"tests {name}", [self.python, "-m", "pytest", "-v", "-rA", "-m", "gpu", path,
                                                        "-p", "no:cacheprovider", f"--junitxml={xml}"], left)
            streamed = parse_pytest_verbose((self.work / "logs" / f"tests_{name}.log").read_text(errors="replace"))
            got = parse_junit(xml) if xml.is_file() and code is not None else streamed
            got["cut"] = streamed["cut"] if code is None else None
            if code is None:
                got["status"], status = "timeout", {"_status": "timeout", "_error": f"{name} cut during {got['cut']}"}
            elif code in (0, 5) and got["failed"] == 0:  # 5: nothing collected
                got["status"] = "ok"
            else:
                got["status"] = "failed"
                if status.get("_status") != "timeout":
                    status = {"_status": "failed", "_error": f"{name}: " + (
                        got["failures"][0] if got["failures"] else self.outcome(code, text).get("_error", ""))}
            got["seconds"] = round(time.monotonic() - t0, 1)
            files[name] = got
            for k in ("passed", "failed", "skipped"):
                totals[k] += got[k]
            totals["failures"] += got["failures"]
            totals["skips"] += got["skips"]
            self.partial(files=files, **totals)
        return {"files": files, **totals, **status}

    def _bench(self, name: str, kind: str, budget: float, presets: tuple[str, ...], zero: str = "2",
               precision: str | None = None, batches: tuple[tuple[int, float], ...] | None = None,
               extra: tuple[str, ...] = ()) -> dict[str, Any]:
        p = self.plan
        rows: list[dict] = []
        status: dict[str, Any] = {}
        start = time.monotonic()
        for batch, seconds in batches or p.step_batches:
            left = budget - (time.monotonic() - start)
            if left < MIN_STEP_S:
                status = {"_status": "timeout", "_error": "budget spent before every batch ran"}
                break
            path = self.work / f"{name}_{batch}x{seconds:g}.jsonl"
            path.unlink(missing_ok=True)
            if kind == "step":
                cmd = [self.python, "-m", "ds_w2v", "bench", "step", "--preset", presets[0], "--dtypes",
                       precision or p.precision]
            else:
                cmd = [self.python, "-m", "ds_w2v", "bench", "train", "--presets", ",".join(presets), "--zero", zero,
                       "--precisions", precision or p.precision]
            cmd += ["--batch", str(batch), "--seconds", str(seconds), "--steps", str(p.bench_steps),
                    "--warmup", str(p.bench_warmup), "--json", str(path), *extra]
            if p.dry_run and kind == "step":
                cmd += ["--device", "cpu"]
            code, text = self.run_cmd(f"{name} {batch}x{seconds:g}", cmd, left)
            if path.is_file():  # bench train writes each configuration's row as it finishes
                rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            self.partial(rows=rows)
            if code != 0:
                status = self.outcome(code, text)
        return {"rows": rows, **status}

    def step_bench_step(self, budget: float) -> dict[str, Any]:
        return self._bench("bench_step", "step", budget, (self.plan.preset,))

    def step_bench_train(self, budget: float) -> dict[str, Any]:
        return self._bench("bench_train", "train", budget, (self.plan.preset,))

    def step_corpus(self, budget: float) -> dict[str, Any]:
        p = self.plan
        src, shards = self.work / "corpus" / "TIMIT", self.work / "corpus" / "shards"
        workers = str(max(1, min(15, (os.cpu_count() or 2) - 1)))
        start = time.monotonic()
        # --hours alone: --speakers would override it (ds-w2v synth timit)
        code, text = self.run_cmd("synth", [self.python, "-m", "ds_w2v", "synth", "timit", "--out", str(src), "--hours",
                                            str(p.corpus_hours), "--workers", workers, "--overwrite"], budget)
        if code != 0:
            return self.outcome(code, text)
        code, text = self.run_cmd("prepare", [self.python, "-m", "ds_w2v", "prepare", "--format", "timit", str(src),
                                              "--out", str(shards), "--workers", workers, "--no-progress",
                                              "--overwrite"], budget - (time.monotonic() - start))
        if code != 0:
            return self.outcome(code, text)
        index = json.loads((shards / "dataset.json").read_text())
        splits = {k: {"hours": round(v["hours"], 3), "num_samples": v["num_samples"]} for k, v in index["splits"].items()}
        return {"shards": str(shards), "hours_asked": p.corpus_hours,
                "hours": round(sum(v["hours"] for v in splits.values()), 3), "splits": splits}

    def _train(self, name: str, command: str, recipe: str, budget: float, train_s: float,
               extra: list[str], options: str = "") -> dict[str, Any]:
        corpus = self.results.get("corpus")
        if corpus is None or corpus.status != "ok":
            return {"_status": "skipped", "_error": "no corpus (the corpus step did not succeed)"}
        p = self.plan
        run = self.work / "runs" / name
        shutil.rmtree(run, ignore_errors=True)
        cmd = [self.python, "-m", "ds_w2v.train", command, "--recipe", recipe, f"data.shards={corpus.data['shards']}",
               f"run_dir={run}", f"max_train_s={train_s:g}", "max_updates=1000000", "log_every=5",
               "eval_every=1000000", "save_every=1000000", f"data.num_workers={p.num_workers}", "data.dev_split=null",
               f"precision={p.precision}", *extra]
        if p.dry_run:
            cmd += ["device=cpu", "log_every=1"]
        code, text = self.run_cmd(name, cmd, budget)
        data = summarise_metrics(run / "metrics.jsonl")
        if (run / "results.json").is_file():
            result = json.loads((run / "results.json").read_text())
            data.update(updates=result["updates"], stopped_by=result.get("stopped_by"),
                        train_time_s=round(result["train_time_s"], 1), test=result.get("test"))
        env = self.results.get("env")
        gpu = env.data.get("gpu") if env else None
        if gpu:  # for "MFU of measured matmul": the data-sheet peak MFU was computed against
            from ds_w2v.train.flops import peak_flops

            data["peak_flops"] = peak_flops(gpu, p.precision)
        return {**data, "options": options, "run_dir": str(run), **self.outcome(code, text)}

    def _pretrain_extra(self) -> list[str]:
        extra = ["schedule.warmup_updates=50"]
        if not self.plan.dry_run:  # one GPU: BASE's 87.5 s micro-batch is the whole update
            extra += ["data.batch_s=87.5", "global_batch_s=87.5"]
        return extra

    def step_pretrain(self, budget: float) -> dict[str, Any]:
        p = self.plan
        return self._train("pretrain", "pretrain", f"pretrain_{p.preset}", budget, p.pretrain_s,
                           [*self._pretrain_extra(), "data.prefetch=false", "compile=none"],
                           "prefetch off, compile none")

    def step_finetune_ctc(self, budget: float) -> dict[str, Any]:
        p = self.plan
        pre = self.results.get("pretrain")
        init = [f"model.init={pre.data['run_dir']}"] if pre and pre.data.get("updates") else []
        extra = ["freeze_transformer_updates=0", *init]  # the transformer trains from the start: its real cost
        if not p.dry_run:
            extra += ["global_batch_s=200"]  # the recipe's 200 audio-s micro-batch, once per update
        return self._train("finetune_ctc", "finetune-ctc", f"finetune_ctc_{p.preset}", budget, p.finetune_s, extra)

    # -- the optional rows --------------------------------------------------------------------
    def step_precision(self, budget: float) -> dict[str, Any]:
        p = self.plan  # bench_train's first batch again, in the other precision (no HF: ours is the question)
        return self._bench("precision", "train", budget, (p.preset,), precision=p.alt_precision,
                           batches=p.step_batches[:1], extra=("--no-hf",))

    def step_zero_memory(self, budget: float) -> dict[str, Any]:
        p = self.plan  # ZeRO-2 is bench_train's row
        return self._bench("zero_memory", "train", budget, (p.preset,), zero="1,3", batches=p.step_batches[:1],
                           extra=("--no-hf",))

    def step_max_batch(self, budget: float) -> dict[str, Any]:
        start, limit, seconds = self.plan.max_batch
        path = self.work / "max_batch.json"
        return self.probe("max_batch", ["max-batch", str(path), "--preset", self.plan.preset, "--precision",
                                         self.plan.precision, "--seconds", str(seconds), "--start", str(start),
                                         "--limit", str(limit)], path, budget)

    def step_pretrain_prefetch(self, budget: float) -> dict[str, Any]:
        p = self.plan
        return self._train("pretrain_prefetch", "pretrain", f"pretrain_{p.preset}", budget, p.option_train_s,
                           [*self._pretrain_extra(), "data.prefetch=true", "compile=none"], "prefetch on")

    def step_pretrain_compile(self, budget: float) -> dict[str, Any]:
        p = self.plan
        return self._train("pretrain_compile", "pretrain", f"pretrain_{p.preset}", budget, p.option_train_s,
                           [*self._pretrain_extra(), "data.prefetch=false", "compile=blocks"], "compile blocks")

    def step_loader(self, budget: float) -> dict[str, Any]:
        corpus = self.results.get("corpus")
        if corpus is None or corpus.status != "ok":
            return {"_status": "skipped", "_error": "no corpus (the corpus step did not succeed)"}
        path = self.work / "loader.json"
        batch_s = 8.0 if self.plan.dry_run else 87.5
        return self.probe("loader", ["loader", str(path), "--shards", corpus.data["shards"], "--workers",
                                      str(self.plan.loader_workers), "--batch-s", str(batch_s)], path, budget)

    def step_matmul(self, budget: float) -> dict[str, Any]:
        size, dtype = self.plan.matmul
        path = self.work / "matmul.json"
        return self.probe("matmul", ["matmul", str(path), "--size", str(size), "--dtype", dtype], path, budget)

    def step_bench_sizes(self, budget: float) -> dict[str, Any]:
        return self._bench("bench_sizes", "train", budget, self.plan.sizes)

    # -- the whole check ------------------------------------------------------------------------
    def run(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)
        total = self.plan.minutes * 60
        for name in CORE:
            self.step(name, getattr(self, f"step_{name}"), self.plan.shares[name] * total)
        for extra in self.plan.extras:
            if self.remaining_s() - GRACE_S < extra.min_s:
                self.results[extra.name] = StepResult("skipped", error=f"needs {extra.min_s:.0f} s; "
                                                                       f"{max(0.0, self.remaining_s()):.0f} s left")
                self.write()
                continue
            self.step(extra.name, getattr(self, f"step_{extra.name}"), extra.cap_s)

    def failures(self) -> list[str]:
        """The steps that make the exit status non-zero: a core step that is not ok, an optional
        row that failed (one cut by its cap or skipped for time is not: that is the budget's doing)."""
        return [n for n, r in self.results.items()
                if (n in CORE and r.status != "ok") or (n not in CORE and r.status == "failed")]

    def render(self, data: dict[str, Any]) -> str:
        return render_summary(data)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gpu_check", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=None, help="whole budget (default: 8.5 on GPU, 12 for the dry run)")
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny, small budgets (what CI runs)")
    p.add_argument("--out", default="gpu_results", help="folder for summary.md, results.json, log.txt")
    p.add_argument("--work", default=None, help="scratch folder: corpus, runs, logs (default: a new one under /tmp)")
    args = p.parse_args(argv)
    # the dry run's 12: what a 2-core machine shared with other jobs needs (Plan.cpu_dry_run); 2.3 quiet
    minutes = args.minutes if args.minutes is not None else (12.0 if args.dry_run else 8.5)
    if minutes <= 0:
        p.error("--minutes must be > 0")
    plan = Plan.cpu_dry_run(minutes) if args.dry_run else Plan.gpu(minutes)
    out = Path(args.out).resolve()
    work = Path(args.work).resolve() if args.work else Path(tempfile.mkdtemp(prefix="ds_w2v_gpu_check_"))
    check = Check(plan, out, work, sys.executable)
    terminate_on_signals()
    try:
        check.run()
    finally:
        check.write()
    bad = check.failures()
    print(f"[gpu_check] wrote {out}/summary.md, results.json, log.txt; steps not ok: {', '.join(bad) or 'none'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
