"""The GPU check: every GPU path of ds_w2v, once, time-boxed, for a short loan of one GPU.

    bash launch/gpu_check.sh [--minutes 8] [--out gpu_results]     # on the GPU machine
    bash launch/gpu_check.sh --dry-run                             # CPU, tiny, a few minutes (CI)

Steps, in order; each runs as its own process under a timeout, and the check goes on after a
step fails (a CUDA error, an op that will not build, a timeout):

1. ``env``: GPU, torch / CUDA / DeepSpeed / transformers versions, ``nvcc``; whether DeepSpeed's
   FusedAdam builds (and how long that took) or the trainer will fall back to torch's AdamW; which
   SDPA backends accept a padding mask in bf16.
2. ``tests``: ``pytest -m gpu tests/gpu`` (HF parity on CUDA, SDPA backends with padding, a
   one-GPU trainer run under ZeRO-2 and ZeRO-3 with a resume).
3. ``bench_step`` / ``bench_train``: ``original`` in bf16 at BASE's micro-batch (6 x 14.583 s =
   87.5 audio-s) and at 4 x 4 s, ours and HF ``Wav2Vec2ForPreTraining`` in the same process.
4. ``corpus``: synthesised read speech (espeak-ng) in the TIMIT layout, prepared to shards.
5. ``pretrain`` / ``finetune_ctc``: real runs of ``original`` through the real entry point
   (``python -m ds_w2v.train``) with data workers, stopped by ``max_train_s``; end-to-end
   audio-s/s, MFU and the share of update time spent waiting for data, from metrics.jsonl.
6. ``bench_sizes``: ``small`` and ``medium`` in ``bench train``, if time is left.

``--dry-run`` runs the same steps on the CPU with ``tiny`` and tiny budgets (the GPU tests with
``DS_W2V_GPU_TESTS_ON_CPU=1``), so the script cannot rot between loans. Output, under ``--out``
(written after every step, so a killed check still leaves what it did): ``summary.md`` (tables
in the layout of BENCHMARKS.md), ``results.json`` and ``log.txt`` (each step's command and
output tail).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[2]
BASE_BATCH = (6, 14.583)  # utterances x seconds: 87.5 audio-s, wav2vec 2.0 BASE's 1.4M-sample micro-batch
SMALL_BATCH = (4, 4.0)
TAIL_CHARS = 4000  # of each step's output kept in log.txt


@dataclass
class Plan:
    """Sizes and budgets of one check: the GPU plan, or the CPU dry run."""

    dry_run: bool
    minutes: float
    preset: str
    sizes: tuple[str, ...]
    precision: str
    step_batches: tuple[tuple[int, float], ...]
    bench_steps: int
    bench_warmup: int
    corpus_hours: float
    corpus_speakers: int
    pretrain_s: float
    finetune_s: float
    num_workers: int
    # share of the whole budget each step may take at most (the rest carries over to later steps)
    shares: dict[str, float] = field(default_factory=dict)

    @classmethod
    def gpu(cls, minutes: float) -> "Plan":
        return cls(False, minutes, "original", ("small", "medium"), "bf16", (BASE_BATCH, SMALL_BATCH),
                   bench_steps=5, bench_warmup=2, corpus_hours=1.0, corpus_speakers=60,
                   pretrain_s=0.15 * minutes * 60, finetune_s=0.06 * minutes * 60, num_workers=4,
                   # env holds the first FusedAdam JIT build (~1 min with nvcc; later runs load it from
                   # torch's extension cache): cutting it short would leave a stale build lock behind
                   shares={"env": 0.20, "tests": 0.25, "bench_step": 0.10, "bench_train": 0.10, "corpus": 0.05,
                           "pretrain": 0.22, "finetune_ctc": 0.12, "bench_sizes": 0.20})

    @classmethod
    def cpu_dry_run(cls, minutes: float) -> "Plan":
        return cls(True, minutes, "tiny", ("tiny",), "fp32", ((2, 2.0),), bench_steps=1, bench_warmup=1,
                   corpus_hours=0.05, corpus_speakers=25, pretrain_s=8.0, finetune_s=5.0, num_workers=1,
                   # env: the first CPU build of DeepSpeed's fused Adam op took 56 s on 2 quiet cores
                   # (2026-12-03) and ran past 72 s (0.15 of 8 min) in CI on a shared machine, where
                   # a cut-short build is a failed check and a stale lock: room for twice that
                   shares={"env": 0.35, "tests": 0.40, "bench_step": 0.15, "bench_train": 0.15, "corpus": 0.15,
                           "pretrain": 0.25, "finetune_ctc": 0.25, "bench_sizes": 0.15})


@dataclass
class StepResult:
    status: str  # ok | failed | timeout | skipped
    seconds: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)
    error: str = ""


class Check:
    def __init__(self, plan: Plan, out: Path, work: Path, python: str):
        self.plan, self.out, self.python = plan, out, python
        self.work = work  # corpus, runs, bench JSON: outside ``out``, which holds only what comes back
        self.deadline = time.monotonic() + plan.minutes * 60
        self.results: dict[str, StepResult] = {}
        self.log: list[str] = []
        self.started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())

    # -- running ------------------------------------------------------------------------------
    def remaining_s(self) -> float:
        return self.deadline - time.monotonic()

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
        env["PYTHONUNBUFFERED"] = "1"
        if self.plan.dry_run:
            env.update(DS_ACCELERATOR="cpu", DS_W2V_GPU_TESTS_ON_CPU="1", CUDA_VISIBLE_DEVICES="")
        return env

    def run_cmd(self, name: str, cmd: list[str], timeout_s: float) -> tuple[int | None, str]:
        """(exit code or None on timeout, output tail); the command and its tail go to log.txt."""
        self.log.append(f"## {name}: {' '.join(cmd)}")
        try:
            proc = subprocess.run(cmd, cwd=ROOT, env=self.env(), capture_output=True, text=True,
                                  timeout=max(1.0, timeout_s))
            text, code = proc.stdout + proc.stderr, proc.returncode
        except subprocess.TimeoutExpired as e:
            out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            err = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
            text, code = out + err + f"\n[timed out after {timeout_s:.0f} s]", None
        self.log.append(text[-TAIL_CHARS:])
        return code, text

    def step(self, name: str, fn: Callable[[float], dict[str, Any]]) -> None:
        budget = min(self.plan.shares[name] * self.plan.minutes * 60, self.remaining_s())
        if budget < 5:
            self.results[name] = StepResult("skipped", error="no time left in the budget")
        else:
            t0 = time.monotonic()
            try:
                data = fn(budget)
                status = data.pop("_status", "ok")
                error = data.pop("_error", "")
                self.results[name] = StepResult(status, time.monotonic() - t0, data, error)
            except Exception as e:  # noqa: BLE001 -- a step's failure is a result; the check goes on
                self.results[name] = StepResult("failed", time.monotonic() - t0, error=f"{type(e).__name__}: {e}")
        self.write()
        r = self.results[name]
        print(f"[gpu_check] {name}: {r.status} ({r.seconds:.0f} s){' - ' + r.error[:200] if r.error else ''}",
              flush=True)

    @staticmethod
    def outcome(code: int | None, text: str) -> dict[str, Any]:
        if code == 0:
            return {}
        if code is None:
            return {"_status": "timeout", "_error": text.strip().splitlines()[-1] if text.strip() else "timed out"}
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        return {"_status": "failed", "_error": (lines[-1] if lines else f"exit {code}")[:500]}

    # -- the steps ----------------------------------------------------------------------------
    def step_env(self, budget: float) -> dict[str, Any]:
        path = self.work / "env.json"
        code, text = self.run_cmd("env", [self.python, "-m", "ds_w2v.bench.gpu_check", "--probe-env", str(path)], budget)
        data = json.loads(path.read_text()) if path.is_file() else {}
        return {**data, **self.outcome(code, text)}

    def step_tests(self, budget: float) -> dict[str, Any]:
        xml = self.work / "gpu_tests.xml"
        code, text = self.run_cmd("tests", [self.python, "-m", "pytest", "-q", "-m", "gpu", "tests/gpu", "-p",
                                            "no:cacheprovider", f"--junitxml={xml}", "-rs"], budget)
        data = parse_junit(xml) if xml.is_file() else {}
        if code in (0, 5) and data:  # 5: nothing collected (counted below as 0 tests)
            return data if data.get("failed", 0) == 0 else {**data, "_status": "failed", "_error": "some tests failed"}
        return {**data, **self.outcome(code, text)}

    def _bench(self, name: str, kind: str, budget: float, presets: tuple[str, ...], zero: str = "2") -> dict[str, Any]:
        p = self.plan
        rows: list[dict] = []
        status: dict[str, Any] = {}
        start = time.monotonic()
        for batch, seconds in p.step_batches:
            left = budget - (time.monotonic() - start)
            if left < 5:
                status = {"_status": "timeout", "_error": "budget spent before every batch ran"}
                break
            path = self.work / f"{name}_{batch}x{seconds:g}.jsonl"
            path.unlink(missing_ok=True)
            if kind == "step":
                cmd = [self.python, "-m", "ds_w2v", "bench", "step", "--preset", presets[0], "--dtypes", p.precision]
            else:
                cmd = [self.python, "-m", "ds_w2v", "bench", "train", "--presets", ",".join(presets), "--zero", zero,
                       "--precisions", p.precision]
            cmd += ["--batch", str(batch), "--seconds", str(seconds), "--steps", str(p.bench_steps),
                    "--warmup", str(p.bench_warmup), "--json", str(path)]
            if p.dry_run:
                cmd += ["--device", "cpu"] if kind == "step" else []
            code, text = self.run_cmd(f"{name} {batch}x{seconds:g}", cmd, left)
            if path.is_file():
                rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            if code != 0:
                status = self.outcome(code, text)
        return {"rows": rows, **status}

    def step_bench_step(self, budget: float) -> dict[str, Any]:
        return self._bench("bench_step", "step", budget, (self.plan.preset,))

    def step_bench_train(self, budget: float) -> dict[str, Any]:
        return self._bench("bench_train", "train", budget, (self.plan.preset,))

    def step_bench_sizes(self, budget: float) -> dict[str, Any]:
        return self._bench("bench_sizes", "train", budget, self.plan.sizes)

    def step_corpus(self, budget: float) -> dict[str, Any]:
        p = self.plan
        src, shards = self.work / "corpus" / "TIMIT", self.work / "corpus" / "shards"
        workers = str(max(1, min(8, (os.cpu_count() or 2) - 1)))
        start = time.monotonic()
        code, text = self.run_cmd("synth", [self.python, "-m", "ds_w2v", "synth", "timit", "--out", str(src), "--hours",
                                            str(p.corpus_hours), "--speakers", str(p.corpus_speakers), "--workers",
                                            workers, "--overwrite"], budget)
        if code != 0:
            return self.outcome(code, text)
        code, text = self.run_cmd("prepare", [self.python, "-m", "ds_w2v", "prepare", "--format", "timit", str(src),
                                              "--out", str(shards), "--workers", workers, "--no-progress",
                                              "--overwrite"], budget - (time.monotonic() - start))
        if code != 0:
            return self.outcome(code, text)
        index = json.loads((shards / "dataset.json").read_text())
        return {"shards": str(shards), "splits": {k: {"hours": round(v["hours"], 3), "num_samples": v["num_samples"]}
                                                  for k, v in index["splits"].items()}}

    def _train(self, name: str, command: str, recipe: str, budget: float, train_s: float,
               extra: list[str]) -> dict[str, Any]:
        corpus = self.results.get("corpus")
        if corpus is None or corpus.status != "ok":
            return {"_status": "skipped", "_error": "no corpus (the corpus step did not succeed)"}
        p = self.plan
        run = self.work / "runs" / name
        shutil.rmtree(run, ignore_errors=True)
        cmd = [self.python, "-m", "ds_w2v.train", command, "--recipe", recipe, f"data.shards={corpus.data['shards']}",
               f"run_dir={run}", f"max_train_s={train_s:g}", "max_updates=1000000", "log_every=5",
               "eval_every=1000000", "save_every=1000000", f"data.num_workers={p.num_workers}", "data.dev_split=null",
               *extra]
        if p.dry_run:
            cmd += ["device=cpu", "log_every=1"]
        code, text = self.run_cmd(name, cmd, budget)
        data = summarise_metrics(run / "metrics.jsonl")
        if (run / "results.json").is_file():
            result = json.loads((run / "results.json").read_text())
            data.update(updates=result["updates"], stopped_by=result.get("stopped_by"),
                        train_time_s=round(result["train_time_s"], 1), test=result.get("test"))
        return {**data, "run_dir": str(run), **self.outcome(code, text)}

    def step_pretrain(self, budget: float) -> dict[str, Any]:
        p = self.plan
        extra = ["schedule.warmup_updates=50"]
        if not p.dry_run:  # one GPU: BASE's 87.5 s micro-batch is the whole update
            extra += ["data.batch_s=87.5", "global_batch_s=87.5"]
        return self._train("pretrain", "pretrain", f"pretrain_{p.preset}", budget, p.pretrain_s, extra)

    def step_finetune_ctc(self, budget: float) -> dict[str, Any]:
        p = self.plan
        pre = self.results.get("pretrain")
        init = [f"model.init={pre.data['run_dir']}"] if pre and pre.data.get("updates") else []
        extra = ["freeze_transformer_updates=0", *init]  # the transformer trains from the start: its real cost
        if not p.dry_run:
            extra += ["global_batch_s=200"]  # the recipe's 200 audio-s micro-batch, once per update
        return self._train("finetune_ctc", "finetune-ctc", f"finetune_ctc_{p.preset}", budget, p.finetune_s, extra)

    def run(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)
        for name in ("env", "tests", "bench_step", "bench_train", "corpus", "pretrain", "finetune_ctc", "bench_sizes"):
            if name == "bench_sizes" and self.plan.dry_run:
                continue  # tiny is the only size on CPU
            self.step(name, getattr(self, f"step_{name}"))

    # -- output -------------------------------------------------------------------------------
    def as_dict(self) -> dict[str, Any]:
        env = self.results.get("env")
        return {"started": self.started, "dry_run": self.plan.dry_run, "minutes": self.plan.minutes,
                "machine": (env.data.get("gpu") if env else None) or platform.node(),
                "steps": {k: {"status": r.status, "seconds": round(r.seconds, 1), "error": r.error, **r.data}
                          for k, r in self.results.items()}}

    def write(self) -> None:
        data = self.as_dict()
        (self.out / "results.json").write_text(json.dumps(data, indent=1, default=str) + "\n")
        (self.out / "summary.md").write_text(render_summary(data))
        (self.out / "log.txt").write_text("\n".join(self.log) + "\n")


# -- helpers (pure: tested on their own) ------------------------------------------------------------
def parse_junit(path: Path) -> dict[str, Any]:
    """Counts and the failing / skipped tests of a pytest junit XML file."""
    import xml.etree.ElementTree as ET

    root = ET.parse(path).getroot()
    cases = root.iter("testcase")
    out: dict[str, Any] = {"passed": 0, "failed": 0, "skipped": 0, "failures": [], "skips": []}
    for case in cases:
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        if case.find("failure") is not None or case.find("error") is not None:
            node = case.find("failure") if case.find("failure") is not None else case.find("error")
            out["failed"] += 1
            out["failures"].append(f"{name}: {(node.get('message') or '').splitlines()[0][:200] if node.get('message') else ''}")
        elif case.find("skipped") is not None:
            out["skipped"] += 1
            out["skips"].append(f"{name}: {(case.find('skipped').get('message') or '')[:200]}")
        else:
            out["passed"] += 1
    return out


def summarise_metrics(path: Path, skip_first: int = 1) -> dict[str, Any]:
    """Medians of the perf figures of a run's metrics.jsonl (its first logged row left out: start-up)."""
    import statistics

    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    train = [r for r in rows if "perf/audio_s_per_s" in r]
    use = train[skip_first:] or train
    out: dict[str, Any] = {"last_logged_update": train[-1]["update"] if train else None}
    for key, name in (("perf/audio_s_per_s", "audio_s_per_s"), ("perf/mfu", "mfu"), ("perf/data_wait", "data_wait"),
                      ("perf/update_s", "update_s"), ("train/loss", "loss")):
        values = [r[key] for r in use if key in r]
        if values:
            out[name] = statistics.median(values)
    return out


def _fmt(v: Any, spec: str = ".3g") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return format(v, spec)
    return str(v)


def render_summary(data: dict[str, Any]) -> str:
    """The check as markdown, in the layout of BENCHMARKS.md (a heading per benchmark, the
    command, machine and date, then one table)."""
    steps = data["steps"]
    mode = "CPU dry run (tiny)" if data["dry_run"] else "GPU"
    lines = [f"# gpu_check — {mode}", "",
             f"`bash launch/gpu_check.sh{' --dry-run' if data['dry_run'] else ''} --minutes {data['minutes']:g}`, "
             f"{data['machine']}, started {data['started']}.", "", "| step | status | seconds | note |", "|---|---|---|---|"]
    for name, s in steps.items():
        lines.append(f"| {name} | {s['status']} | {s['seconds']:.0f} | {s['error'][:160].replace('|', '/')} |")
    env = steps.get("env", {})
    if env.get("torch"):
        lines += ["", "## Environment", "",
                  f"GPU {env.get('gpu') or 'none'} ({_fmt(env.get('gpu_mem_gib'))} GiB), torch {env.get('torch')} "
                  f"(CUDA {env.get('cuda')}), DeepSpeed {env.get('deepspeed')}, transformers {env.get('transformers')}, "
                  f"nvcc {env.get('nvcc') or 'none'}, Python {env.get('python')}; "
                  + ", ".join(f"{m} {env.get(m)}" for m in ("webdataset", "jiwer", "soundfile", "soxr", "espeakng-loader"))
                  + ".", "",
                  f"FusedAdam: {env.get('fused_adam', {}).get('status', '-')} "
                  f"({_fmt(env.get('fused_adam', {}).get('seconds'))} s) {env.get('fused_adam', {}).get('error') or ''}",
                  "", "| SDPA backend (bf16, padding mask) | usable |", "|---|---|"]
        for backend, ok in (env.get("sdpa") or {}).items():
            lines.append(f"| {backend} | {ok} |")
    tests = steps.get("tests", {})
    if "passed" in tests:
        lines += ["", "## `pytest -m gpu`", "", f"{tests['passed']} passed, {tests['failed']} failed, "
                  f"{tests['skipped']} skipped."]
        lines += [f"- failed: {f}" for f in tests.get("failures", [])]
        lines += [f"- skipped: {s}" for s in tests.get("skips", [])]
    for name, title in (("bench_step", "`ds-w2v bench step`"), ("bench_train", "`ds-w2v bench train`"),
                        ("bench_sizes", "`ds-w2v bench train`, other sizes")):
        rows = steps.get(name, {}).get("rows") or []
        if not rows:
            continue
        lines += ["", f"## {title}", "", "| preset | batch | dtype | ours s/update | HF s/update | ours/HF | "
                  "ours audio-s/s | ours MFU | ours peak MiB |", "|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r.get('preset')} | {r.get('batch')} x {r.get('seconds')} s | "
                         f"{r.get('dtype') or r.get('precision')} {('ZeRO-' + str(r['zero'])) if 'zero' in r else ''} | "
                         f"{_fmt(r.get('ours_s'))} | {_fmt(r.get('hf_s'))} | **{_fmt(r.get('ratio'), '.2f')}** | "
                         f"{_fmt(r.get('ours_audio_s_per_s'), '.1f')} | {_fmt(r.get('ours_mfu'), '.1%')} | "
                         f"{_fmt(r.get('ours_peak_mem_mib'), '.0f')} |")
    runs = [(n, steps[n]) for n in ("pretrain", "finetune_ctc") if n in steps and steps[n].get("audio_s_per_s")]
    if runs:
        lines += ["", "## End to end (`python -m ds_w2v.train`, data workers, metrics.jsonl medians)", "",
                  "| run | updates | audio-s/s | MFU | data wait | s/update | loss |", "|---|---|---|---|---|---|---|"]
        for n, s in runs:
            lines.append(f"| {n} | {_fmt(s.get('updates'))} | {_fmt(s.get('audio_s_per_s'), '.1f')} | "
                         f"{_fmt(s.get('mfu'), '.1%')} | {_fmt(s.get('data_wait'), '.1%')} | "
                         f"{_fmt(s.get('update_s'), '.3f')} | {_fmt(s.get('loss'), '.3f')} |")
    return "\n".join(lines) + "\n"


# -- the env probe (run in its own process by the env step) -----------------------------------------
def probe_env(path: Path) -> None:
    import torch

    out: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
                           "gpu": None, "cpu_count": os.cpu_count()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        out.update(gpu=props.name, gpu_mem_gib=round(props.total_memory / 2**30, 1),
                   capability=f"{props.major}.{props.minor}", sms=props.multi_processor_count)
    from importlib.metadata import version

    for mod in ("deepspeed", "transformers", "webdataset", "jiwer", "soundfile", "soxr", "espeakng-loader"):
        try:
            __import__(mod.replace("-", "_"))  # importable here, not only installed
            out[mod] = version(mod)
        except Exception as e:  # noqa: BLE001 -- a missing package is what this step reports
            out[mod] = f"missing ({type(e).__name__}: {e})"[:120]
    nvcc = shutil.which("nvcc")
    if nvcc:
        text = subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout
        m = re.search(r"release ([\d.]+)", text)
        out["nvcc"] = m.group(1) if m else text.strip().splitlines()[-1:]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))  # what is known so far survives a crash below
    try:
        from ..train.engine import probe_op_builder

        build = probe_op_builder("FusedAdamBuilder")
        out["fused_adam"] = {"status": "built" if build.error is None else "fallback to torch AdamW",
                             "seconds": round(build.build_s, 1), "error": build.error}
    except Exception as e:  # noqa: BLE001
        out["fused_adam"] = {"status": "probe failed", "error": f"{type(e).__name__}: {e}"}
    out["sdpa"] = sdpa_backends()
    path.write_text(json.dumps(out, indent=1))


def sdpa_backends() -> dict[str, str]:
    """Which SDPA backends run attention with a boolean padding mask (bf16 on CUDA, fp32 on CPU)."""
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    cuda = torch.cuda.is_available()
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    b, h, t, d = 2, 12, 400, 64  # BASE's heads and head size, ~8 s of frames
    q, k, v = (torch.randn(b, h, t, d, device=device, dtype=dtype) for _ in range(3))
    lengths = torch.tensor([t, t // 2], device=device)
    mask = (torch.arange(t, device=device)[None, :] < lengths[:, None])[:, None, None, :]  # [B, 1, 1, T] keys
    with sdpa_kernel(SDPBackend.MATH):
        ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    out = {}
    for backend in ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION", "MATH"):
        try:
            with sdpa_kernel(getattr(SDPBackend, backend)):
                got = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            err = float((got.float() - ref.float()).norm() / ref.float().norm())
            out[backend] = f"yes (rel. err. {err:.1e})"
        except Exception as e:  # noqa: BLE001 -- a backend that refuses the mask is the finding
            out[backend] = f"no ({str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__})"
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gpu_check", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=None, help="whole budget (default: 8 on GPU, 6 for the dry run)")
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny, small budgets (what CI runs)")
    p.add_argument("--out", default="gpu_results", help="folder for summary.md, results.json, log.txt")
    p.add_argument("--work", default=None, help="scratch folder: corpus, runs (default: a new one under /tmp)")
    p.add_argument("--probe-env", metavar="JSON", help=argparse.SUPPRESS)  # the env step's own process
    args = p.parse_args(argv)
    if args.probe_env:
        probe_env(Path(args.probe_env))
        return 0
    minutes = args.minutes if args.minutes is not None else (6.0 if args.dry_run else 8.0)
    if minutes <= 0:
        p.error("--minutes must be > 0")
    plan = Plan.cpu_dry_run(minutes) if args.dry_run else Plan.gpu(minutes)
    out = Path(args.out).resolve()
    import tempfile

    work = Path(args.work).resolve() if args.work else Path(tempfile.mkdtemp(prefix="ds_w2v_gpu_check_"))
    check = Check(plan, out, work, sys.executable)
    check.run()
    bad = [n for n, r in check.results.items() if r.status != "ok"]
    print(f"[gpu_check] wrote {out}/summary.md, results.json, log.txt; steps not ok: {', '.join(bad) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
