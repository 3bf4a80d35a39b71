"""The GPU study: does model scale lift the linear phone probe past tiny's plateau?

    bash launch/gpu_study.sh [--minutes 9] [--out gpu_study]   # on the lent GPU machine (one H100/H200)
    bash launch/gpu_study.sh --dry-run                          # CPU, tiny, ~2 minutes (a test runs it)

The CPU study (results/STUDY.md) pretrained ``tiny`` for 2,000 updates of 32 audio-s, and its
linear phone probe levelled off at ~50 % (TIMIT test frames, 39 phones) from update ~2,000. Here,
in one command of a GPU loan, on corpora synthesised on the device as the CPU study's were
(the labelled read speech, TIMIT layout, ``--hours 2``; 600 extra speakers x 6 sentences, seed 1,
for pretraining only):

1. ``env``: GPU and versions (``gpu_probes env``).
2. ``corpus``: both corpora synthesised (espeak-ng) and prepared.
3. ``probe_random``: the linear phone probe of ``random:small`` — the row to beat, first, so that it
   is there whatever happens later.
4. ``pretrain``: ``small`` (BASE's recipe, 512 wide, 11 blocks) on one GPU, BASE's 87.5 audio-s
   micro-batch per update, for what the budget leaves after keeping ``reserve_s`` for its start-up,
   save and the probe after it, at most 8 minutes (``max_train_s``): ~5.5 minutes in the default
   9-minute command (a 10-minute loan less the wheels' install), 8 from ``--minutes 11.5``.
   DeepSpeed's FusedAdam is not built (its cold JIT build is a minute of the loan): torch's fused
   AdamW steps instead, recorded for the run as the op's failure (``op_record``), so no process tries.
5. ``probe_pretrained``: the same probe of the pretrained model (its last checkpoint).

Each step runs in a process group of its own under its timeout (``steps.py``); ``results.json``,
``summary.md`` (the probe per layer, random init against pretrained) and ``log.txt`` are written
under ``--out`` after every step. ``--dry-run``: the same steps on the CPU with ``tiny``, small
corpora and a 30-second pretraining. The exit status is non-zero when a step is not ok.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ds_w2v.train import op_record
from .gpu_report import summarise_metrics
from .steps import StepRunner, terminate_on_signals

PRETRAIN_CAP_S = 8 * 60.0  # the longest pretraining asked for
FUSED_ADAM_SKIPPED = ("not built by the GPU study: its cold JIT build is ~1 min of a 10-minute loan; "
                      "torch's fused AdamW steps instead")


@dataclass(frozen=True)
class StudyPlan:
    dry_run: bool
    minutes: float
    preset: str
    precision: str
    timit: tuple[str, ...]  # ds-w2v synth timit's size arguments for the labelled corpus
    extra: tuple[int, int]  # (speakers, sentences each) of the unlabelled corpus (seed 1)
    batch_s: float  # audio-seconds per update (one micro-batch)
    warmup_updates: int
    num_workers: int
    probe_utterances: int  # per split, as the CPU study's 300
    probe_epochs: int | None  # None: the probe's own
    reserve_s: float  # kept for the pretrained model's probe and the pretraining's start-up and save
    caps: dict[str, float]  # step -> most seconds it may take

    @classmethod
    def gpu(cls, minutes: float) -> "StudyPlan":
        return cls(False, minutes, "small", "bf16", ("--hours", "2"), (600, 6), batch_s=87.5, warmup_updates=500,
                   num_workers=8, probe_utterances=300, probe_epochs=None,
                   # start-up (~30 s: imports, CUDA, workers) + final save + the probe (~60 s)
                   reserve_s=120.0,
                   caps={"env": 30, "corpus": 100, "probe_random": 100, "pretrain": PRETRAIN_CAP_S + 90,
                         "probe_pretrained": 120})

    @classmethod
    def cpu_dry_run(cls, minutes: float) -> "StudyPlan":
        return cls(True, minutes, "tiny", "fp32", ("--speakers", "30", "--sentences-per-speaker", "4"), (40, 4),
                   batch_s=16.0, warmup_updates=5, num_workers=0, probe_utterances=40, probe_epochs=2,
                   reserve_s=60.0,
                   caps={"env": 30, "corpus": 60, "probe_random": 60, "pretrain": 90, "probe_pretrained": 60})

    def pretrain_s(self, left_s: float) -> float:
        """max_train_s for the pretraining when ``left_s`` seconds of the budget remain."""
        if self.dry_run:
            return 30.0
        return max(30.0, min(PRETRAIN_CAP_S, left_s - self.reserve_s))


class Study(StepRunner):
    title = "gpu_study"
    steps = ("env", "corpus", "probe_random", "pretrain", "probe_pretrained")

    def __init__(self, plan: StudyPlan, out: Path, work: Path, python: str):
        super().__init__(out, work, python, plan.minutes, plan.dry_run)
        self.plan = plan

    def step_env(self, budget: float) -> dict[str, Any]:
        return self.probe("env", ["env", str(self.work / "env.json")], self.work / "env.json", budget)

    def step_corpus(self, budget: float) -> dict[str, Any]:
        p, start = self.plan, time.monotonic()
        workers = str(max(1, min(15, (os.cpu_count() or 2) - 1)))
        speakers, sentences = p.extra
        corpora = {"timit": (list(p.timit), []),
                   "extra": (["--speakers", str(speakers), "--sentences-per-speaker", str(sentences), "--seed", "1"],
                             ["--dev-percent", "0", "--timit-test", "all"])}  # every utterance unlabelled train audio
        out: dict[str, Any] = {}
        for name, (size, prepare) in corpora.items():
            raw, shards = self.work / "corpora" / name, self.work / "shards" / name
            left = budget - (time.monotonic() - start)
            code, text = self.run_cmd(f"synth {name}", [self.python, "-m", "ds_w2v", "synth", "timit", *size, "--out",
                                                        str(raw), "--workers", workers, "--overwrite"], left)
            if code == 0:
                left = budget - (time.monotonic() - start)
                code, text = self.run_cmd(f"prepare {name}", [self.python, "-m", "ds_w2v", "prepare", "--format",
                                                              "timit", *prepare, str(raw), "--out", str(shards),
                                                              "--workers", workers, "--no-progress", "--overwrite"],
                                          left)
            if code != 0:
                return {**out, **self.outcome(code, text)}
            index = json.loads((shards / "dataset.json").read_text())
            out[name] = {"shards": str(shards), "splits": {k: {"hours": round(v["hours"], 3), "utterances":
                                                                v["num_samples"]} for k, v in index["splits"].items()}}
            self.partial(**out)
        return out

    def _probe_model(self, name: str, upstream: str, budget: float) -> dict[str, Any]:
        corpus = self.results.get("corpus")
        if corpus is None or corpus.status != "ok":
            return {"_status": "skipped", "_error": "no corpus (the corpus step did not succeed)"}
        p, path = self.plan, self.work / f"{name}.json"
        path.unlink(missing_ok=True)
        cmd = [self.python, "-m", "ds_w2v", "probe", upstream, "--data", corpus.data["timit"]["shards"], "--protocol",
               "linear", "--max-utterances", str(p.probe_utterances), "--seed", "0", "--out", str(path),
               *(["--epochs", str(p.probe_epochs)] if p.probe_epochs else []),
               *(["--device", "cpu"] if p.dry_run else [])]
        code, text = self.run_cmd(name, cmd, budget)
        data: dict[str, Any] = {"upstream": upstream}
        if path.is_file():
            result = json.loads(path.read_text())
            (dataset,) = result["datasets"].values()
            data.update(linear=dataset["linear"], splits=dataset.get("splits"))
        return {**data, **self.outcome(code, text)}

    def step_probe_random(self, budget: float) -> dict[str, Any]:
        return self._probe_model("probe_random", f"random:{self.plan.preset}", budget)

    def step_pretrain(self, budget: float) -> dict[str, Any]:
        corpus = self.results.get("corpus")
        if corpus is None or corpus.status != "ok":
            return {"_status": "skipped", "_error": "no corpus (the corpus step did not succeed)"}
        p = self.plan
        op_record.record_failure("FusedAdamBuilder", FUSED_ADAM_SKIPPED, self.env())
        train_s = p.pretrain_s(self.remaining_s())
        timit, extra = Path(corpus.data["timit"]["shards"]), Path(corpus.data["extra"]["shards"])
        entries = [f"{timit}:train", *(f"{extra}:{split}" for split in sorted(corpus.data["extra"]["splits"]))]
        run = self.work / "runs" / "pretrain"
        shutil.rmtree(run, ignore_errors=True)
        cmd = [self.python, "-m", "ds_w2v.train", "pretrain", "--recipe", f"pretrain_{p.preset}",
               f"data.shards={timit}", f"data.train=[{','.join(entries)}]", f"run_dir={run}",
               f"max_train_s={train_s:g}", "max_updates=100000", f"schedule.warmup_updates={p.warmup_updates}",
               f"data.batch_s={p.batch_s:g}", f"global_batch_s={p.batch_s:g}", f"precision={p.precision}",
               "log_every=10" if not p.dry_run else "log_every=1", "eval_every=1000000", "save_every=1000000",
               "probe_every=0", "data.dev_split=null", f"data.num_workers={p.num_workers}",
               *(["device=cpu"] if p.dry_run else [])]
        code, text = self.run_cmd("pretrain", cmd, min(budget, train_s + p.reserve_s))
        data: dict[str, Any] = {"max_train_s": round(train_s), "run_dir": str(run),
                                "train_hours": round(corpus.data["timit"]["splits"]["train"]["hours"] + sum(
                                    s["hours"] for s in corpus.data["extra"]["splits"].values()), 3),
                                **summarise_metrics(run / "metrics.jsonl")}
        if (run / "results.json").is_file():
            result = json.loads((run / "results.json").read_text())
            data.update(updates=result["updates"], stopped_by=result.get("stopped_by"),
                        train_time_s=round(result["train_time_s"], 1))
            data["audio_hours_seen"] = round(result["updates"] * p.batch_s / 3600, 2)
        return {**data, **self.outcome(code, text)}

    def step_probe_pretrained(self, budget: float) -> dict[str, Any]:
        pre = self.results.get("pretrain")
        if pre is None or not pre.data.get("updates"):
            return {"_status": "skipped", "_error": "no pretrained model (the pretrain step did not save one)"}
        return self._probe_model("probe_pretrained", pre.data["run_dir"], budget)

    def run(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)
        for name in self.steps:
            self.step(name, getattr(self, f"step_{name}"), self.plan.caps[name])

    def render(self, data: dict[str, Any]) -> str:
        return render_study(data)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def render_study(data: dict[str, Any]) -> str:
    """The study as markdown: the steps, the corpora, the pretraining, the probe per layer."""
    steps = data["steps"]
    mode = "CPU dry run (tiny)" if data["dry_run"] else "GPU"
    lines = [f"# gpu_study — {mode}", "",
             f"`bash launch/gpu_study.sh{' --dry-run' if data['dry_run'] else ''} --minutes {data['minutes']:g}`, "
             f"{data['machine']}, started {data['started']}.", "", "| step | status | seconds | note |",
             "|---|---|---|---|"]
    lines += [f"| {n} | {s['status']} | {s['seconds']:.0f} | {str(s.get('error') or '')[:160].replace('|', '/')} |"
              for n, s in steps.items()]
    corpus = steps.get("corpus", {})
    if corpus.get("timit"):
        lines += ["", "## Corpora (synthesised here)", "", "| corpus | split | utterances | hours |", "|---|---|---|---|"]
        for name in ("timit", "extra"):
            for split, s in (corpus.get(name) or {}).get("splits", {}).items():
                lines.append(f"| {name} | {split} | {s['utterances']} | {s['hours']} |")
    pre = steps.get("pretrain", {})
    if pre.get("updates") is not None:
        lines += ["", "## Pretraining", "",
                  f"{pre['updates']} updates in {pre.get('train_time_s')} s of training (max_train_s "
                  f"{pre.get('max_train_s')}): ~{pre.get('audio_hours_seen')} h of audio read (updates x batch) from "
                  f"{pre.get('train_hours')} h of train audio; median {_fmt(pre.get('audio_s_per_s'), '.0f')} audio-s/s, "
                  f"MFU {_pct(pre.get('mfu'))}, data wait {_pct(pre.get('data_wait'))}, loss "
                  f"{_fmt(pre.get('loss'), '.3f')} (median of the logged rows)."]
    rand = (steps.get("probe_random") or {}).get("linear") or {}
    trained = (steps.get("probe_pretrained") or {}).get("linear") or {}
    if rand or trained:
        layers = list(dict.fromkeys([*(rand.get("layers") or {}), *(trained.get("layers") or {})]))
        lines += ["", "## Linear phone probe (TIMIT test frames, 39 phones)", "",
                  "| layer | random init | pretrained | difference |", "|---|---|---|---|"]
        for layer in layers:
            a, b = (rand.get("layers") or {}).get(layer), (trained.get("layers") or {}).get(layer)
            diff = f"{100 * (b - a):+.1f} points" if a is not None and b is not None else "-"
            lines.append(f"| {layer} | {_pct(a)} | {_pct(b)} | {diff} |")
        if rand.get("best_acc") is not None and trained.get("best_acc") is not None:
            lines += ["", f"Best layer: random init {_pct(rand['best_acc'])} ({rand['best_layer']}), pretrained "
                          f"{_pct(trained['best_acc'])} ({trained['best_layer']}): "
                          f"{100 * (trained['best_acc'] - rand['best_acc']):+.1f} points; majority phone "
                          f"{_pct(trained.get('majority_acc'))}."]
    return "\n".join(lines) + "\n"


def _fmt(v: Any, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gpu_study", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=None, help="whole budget (default: 9 on GPU, 5 for the dry run)")
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny, small corpora, a 30 s pretraining")
    p.add_argument("--out", default="gpu_study", help="folder for summary.md, results.json, log.txt")
    p.add_argument("--work", default=None, help="scratch folder: corpora, runs, logs (default: a new one under /tmp)")
    args = p.parse_args(argv)
    minutes = args.minutes if args.minutes is not None else (5.0 if args.dry_run else 9.0)
    if minutes <= 0:
        p.error("--minutes must be > 0")
    plan = StudyPlan.cpu_dry_run(minutes) if args.dry_run else StudyPlan.gpu(minutes)
    out = Path(args.out).resolve()
    work = Path(args.work).resolve() if args.work else Path(tempfile.mkdtemp(prefix="ds_w2v_gpu_study_"))
    study = Study(plan, out, work, sys.executable)
    terminate_on_signals()
    try:
        study.run()
    finally:
        study.write()
    bad = study.failures()
    print(f"[gpu_study] wrote {out}/summary.md, results.json, log.txt; steps not ok: {', '.join(bad) or 'none'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
