"""The study, done for real, in one command (``bash launch/demo.sh`` runs this after preparing
the synthetic corpora): per model size, pretrain wav2vec 2.0 self-supervised on the read-speech
corpus (TIMIT layout), fine-tune it with a CTC head on the same corpus and with a
classification head on the emotion corpus (RAVDESS layout), evaluate on the held-out test
splits (speakers / actors never seen in training, best checkpoint chosen on dev), probe the
frozen pretrained model's layers and those of the same architecture at random initialisation
(CPC's linear phone probe, ``ds-w2v probe``), and print the study's tables. With
``--ablation`` (on for the CPU demo) the CTC fine-tune is repeated from random initialisation
(``full``: also with 10 % of the labelled utterances, pretrained and not): one seed, a demo;
the fair comparison is the study, ``bash launch/study.sh``.

    python -m experiments.demo --data demo_data/shards                      # tiny, CPU, ~9 min on 2 cores
    python -m experiments.demo --data demo_data/shards --sizes small,medium,original   # GPU recipes

Every job is a command a user can run again (printed as it starts, its log beside its run
directory), and every number in the report comes from the jobs' ``results.json`` /
``metrics.jsonl`` (the probes' ``results.json`` is ``ds-w2v probe``'s ``--out``).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ds_w2v.data.subset import subset_split

ROOT = Path(__file__).resolve().parents[1]

# Demo-scale overrides of the full recipes for the GPU sizes (the full recipes are 400k/20k
# updates on 64/8 GPUs): one GPU, BASE's 87.5 s micro-batch, a few thousand updates.
GPU_DEMO = {
    # Gumbel temperature 2 -> 0.5 by update ~2,000 (BASE: by ~277k of 400k)
    "pretrain": ["max_updates=3000", "global_batch_s=87.5", "schedule.warmup_updates=300", "log_every=20",
                 "model.overrides.latent_temp=[2.0,0.5,0.9993]",
                 "eval_every=500", "save_every=500", "data.num_workers=4"],
    "ctc": ["max_updates=2000", "global_batch_s=200", "freeze_transformer_updates=200", "log_every=20",
            "eval_every=250", "save_every=250", "data.num_workers=4"],
    "cls": ["max_updates=1500", "global_batch_s=100", "freeze_transformer_updates=100", "log_every=20",
            "eval_every=150", "save_every=150", "data.num_workers=4"],
}


# The tiny recipes cut to fit the CPU demo's goal: 15 minutes on 2 cores *including* set-up on a
# fresh machine, on any CPU. Two things decide it:
# - precision: fp32 in every demo run, whatever the CPU (the recipes' precision=auto would take
#   bf16 where it is native). On an AVX2-only CPU bf16 is emulated (a tiny pretraining update took
#   16.5 s instead of 0.6 s), and the same budgets in bf16 and fp32 gave different tables (test CER
#   of the pretrained CTC row 74.2 % in bf16 on an AVX-512 BF16 EPYC, 98.6 % in fp32 on an AVX2
#   EPYC: CTC's exit from its all-blank plateau decides it). In fp32 the demo is one computation on
#   every CPU, and fp32 matmuls run at about the same speed with and without AVX-512 here.
# - budgets: at the former budgets (pretraining 300 updates, CTC 500, emotion 250) the fp32 demo took
#   20 min 12 s on a 2-core AVX2 EPYC (21 min 51 s from a fresh clone). Cut by ~40 % on the critical
#   path (pretraining, then CTC; emotion and the random-init row run beside them): pretraining 180
#   updates of 32 audio-s (the Gumbel temperature still reaches 0.5 by update ~140), CTC 300 of
#   16 audio-s, emotion 150. The figures of a run this short say the pipeline works; whether
#   pretraining helps is the study's question (results/STUDY.md), which the report quotes beside them.
#   What that costs, measured on CPU-2 in fp32 on 2026-12-07 from this demo's pretrained model: CTC
#   stays on its all-blank plateau (dev CER 100 % at 300 updates of 16 audio-s, and at 500 of 8),
#   emotion at chance (13 % test accuracy at 150 updates of 32 audio-s; train accuracy 9 % after 185
#   of 16). In bf16 the former budgets (300 / 500 / 250) had reached 74 % CER and 52.5 % accuracy:
#   learning that shows takes more than 15 minutes of fp32 on a slow 2-core CPU.
# The demo keeps the Gumbel schedule and codebook it was measured with (2 -> 0.5 by update ~140,
# tiny's 2 x 320 codes): pretrain_tiny's slower schedule (0.999, chosen by the study's search at
# 800 updates) would still be near 2 at the end, and its 2 x 64 codes were chosen for 2,000 updates.
CPU_DEMO = {
    "pretrain": ["max_updates=180", "eval_every=90", "save_every=90", "precision=fp32", "model.overrides.latent_temp=[2.0,0.5,0.99]",
                 "model.overrides.latent_vars=320"],
    "ctc": ["max_updates=300", "precision=fp32"],
    "cls": ["max_updates=150", "precision=fp32"],
}
DEMO_SEED = 1  # every run's seed (TrainConfig's default); random:PRESET with it = pretraining's initial weights
# The linear phone probe reads the first N utterances of train and of test (in shard order, a
# seeded sample of speakers): 100 + 100 (~5.5 min of audio each, ~16k test frames) take ~20 s
# on one core for tiny; the frozen features are cached under the runs folder (probe_cache/).
PROBE_UTTERANCES = 100


class Job:
    """One step of the demo: ``ds-w2v COMMAND ARGS``, whose result is ``run_dir/results.json``,
    started once the jobs it ``needs`` have finished; its output goes to ``run_dir``'s ``.log``.
    What :func:`run_jobs` asks of a job: ``name``, ``needs``, ``cached()``, ``start(threads)``,
    ``finish(returncode)`` (the study's jobs extend these: ``experiments/study/jobs.py``)."""

    def __init__(self, name: str, command: str, args: list[str], run_dir: Path, needs: tuple[str, ...] = ()):
        self.name, self.command, self.args, self.needs = name, command, args, tuple(needs)
        self.set_run_dir(Path(run_dir))
        self.result: dict | None = None
        self.wall_s = 0.0

    def set_run_dir(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.log = run_dir.parent / f"{run_dir.name}.log"

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "ds_w2v", self.command, *self.args]

    def shown(self, argv: list[str]) -> str:
        """The line to run it again by hand (`ds-w2v X` = `python -m ds_w2v X`; on a CPU one process)."""
        return f"ds-w2v {self.command} {shlex.join(self.args)}"

    def cached(self) -> bool:
        """Finished in an earlier demo run: reuse it (the demo resumes where it stopped)."""
        path = self.run_dir / "results.json"
        if not path.is_file():
            return False
        self.result = json.loads(path.read_text())
        self.wall_s = self.result.get("wall_s", self.result.get("train_time_s", 0.0))
        return True

    def start(self, threads: int | None) -> subprocess.Popen:
        argv = self.argv()
        env = dict(os.environ)
        if threads:  # jobs side by side share the cores: one torch thread pool each
            env["OMP_NUM_THREADS"] = str(threads)
        # launch/_launch.sh runs `python` (and deepspeed): this interpreter's, venv activated or not
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        print(f"  [{self.name}] $ {self.shown(argv)}", flush=True)
        self._begin()
        return subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)

    def _begin(self) -> None:
        self.run_dir.parent.mkdir(parents=True, exist_ok=True)
        self._t0 = time.time()
        self._log = open(self.log, "w")

    def _end(self) -> None:
        self.wall_s = time.time() - self._t0
        self._log.close()

    def finish(self, returncode: int) -> None:
        self._end()
        if returncode != 0:
            tail = self.log.read_text().splitlines()[-15:]
            what = f"{self.command} failed" if self.command else "failed"
            raise RuntimeError(f"{self.name}: {what} (exit {returncode}); log {self.log}:\n" + "\n".join(tail))
        self.record(self.command_result())
        print(f"  [{self.name}] done in {self.wall_s:.0f} s", flush=True)

    def command_result(self) -> dict:
        """The result of the command that finished successfully: the ``results.json`` it wrote
        (``finish`` records it, with the job's wall-clock time)."""
        return json.loads((self.run_dir / "results.json").read_text())

    def record(self, result: dict) -> None:
        """``result`` with this job's wall-clock time, as its ``results.json``."""
        self.result = {**result, "wall_s": self.wall_s}
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "results.json").write_text(json.dumps(self.result, indent=1))


class TrainJob(Job):
    """A training run, started as ``launch/{pretrain,finetune_ctc,finetune_cls}.sh`` start one
    (``launch/_launch.sh``: one process on a CPU, ``deepspeed`` over the GPUs)."""

    def __init__(self, name: str, command: str, recipe: str, run_dir: Path, overrides: list[str],
                 needs: tuple[str, ...] = ()):
        super().__init__(name, command, ["--recipe", recipe, f"run_dir={run_dir}", *overrides], run_dir, needs)

    def argv(self) -> list[str]:
        return ["bash", str(ROOT / "launch" / "_launch.sh"), self.command, *self.args]


def probe_job(name: str, upstream: str, shards: Path, run_dir: Path, cache: Path, needs: tuple[str, ...] = (),
              max_utterances: int = PROBE_UTTERANCES, seed: int = DEMO_SEED) -> Job:
    """CPC's linear phone probe of the frozen ``upstream`` (a run directory or ``random:PRESET``)
    on ``shards``' train -> test splits, by ``ds-w2v probe``: its ``--out`` is the job's result."""
    return Job(name, "probe", [upstream, "--data", str(shards), "--protocol", "linear",
                               "--max-utterances", str(max_utterances), "--seed", str(seed), "--cache", str(cache),
                               "--out", str(run_dir / "results.json")], run_dir, needs)


class FileJob(Job):
    """A step whose product is a file (``ds-w2v build-lm``'s ARPA), not a results JSON: on
    success its ``results.json`` records the file, so a rerun of the demo reuses it."""

    def __init__(self, name: str, command: str, args: list[str], run_dir: Path, out: Path,
                 needs: tuple[str, ...] = ()):
        super().__init__(name, command, args, run_dir, needs)
        self.out = out

    def command_result(self) -> dict:
        return {"out": str(self.out)}  # the command wrote no results.json: finish writes this one


# The word LM of the decoding row: the corpus's train transcripts, 4-gram (wav2vec 2.0's word LM
# order); ~0.5 s. Its weights are chosen on dev over evaluate's --tune-lm grid (25 decodings of dev),
# then test is decoded once with them: ~1 min for tiny on one core.
LM_ORDER = 4


def have_beam_search() -> bool:
    """flashlight-text (the ``lm`` extra, in the demo's ``test`` install where a wheel exists)."""
    import importlib.util

    try:
        return importlib.util.find_spec("flashlight.lib.text") is not None
    except ModuleNotFoundError:
        return False


# a CTC model whose best dev CER is at least this writes (almost) only blanks: CTC has not left its
# all-blank plateau, and beam search with an LM has nothing to rescore (it would spend ~1 min of the
# demo's critical path to print 100 % again)
PLATEAU_CER = 0.99


class LMEvalJob(Job):
    """``ds-w2v evaluate --tune-lm`` of the CTC run, skipped (and said so in the report) while the CTC
    model is still on its all-blank plateau."""

    def __init__(self, name: str, args: list[str], run_dir: Path, ctc_dir: Path, needs: tuple[str, ...]):
        super().__init__(name, "evaluate", args, run_dir, needs)
        self.ctc_dir, self.skipped = ctc_dir, None

    def start(self, threads: int | None) -> subprocess.Popen:
        result = self.ctc_dir / "results.json"  # a run's (a model file has none: always decoded)
        best = json.loads(result.read_text()).get("best_dev") if result.is_file() else None
        if best is not None and best >= PLATEAU_CER:
            self.skipped = (f"not run: the CTC model's best dev CER is {100 * best:.1f} %, it writes no characters yet "
                            "(CTC's all-blank plateau), so there is nothing for an LM to rescore")
            print(f"  [{self.name}] {self.skipped}", flush=True)
            self._begin()
            return subprocess.Popen([sys.executable, "-c", ""])
        return super().start(threads)

    def command_result(self) -> dict:
        return {"skipped": self.skipped} if self.skipped else super().command_result()


def lm_jobs(size: str, timit: Path, runs: Path, ctc_dir: Path, after_ctc: tuple[str, ...]) -> dict[str, Job]:
    """Greedy vs LM: build a word n-gram from ``timit``'s train transcripts, then score the CTC
    model's best checkpoint with beam search + LM, weights tuned on dev (``ds-w2v evaluate
    --tune-lm``; test is never used to choose them). Its ``--out`` is the job's result."""
    lm_dir = runs / f"{size}_lm"
    arpa = lm_dir / f"timit{LM_ORDER}.arpa"
    build = FileJob(f"{size} build-lm", "build-lm", [str(timit), "--order", str(LM_ORDER), "--out", str(arpa)],
                    lm_dir, arpa)
    dec_dir = runs / f"{size}_ctc_lm"
    evaluate = LMEvalJob(f"{size} ctc + LM",
                         ["--tune-lm", "--out", str(dec_dir / "results.json"), f"data.shards={timit}",
                          f"model.init={ctc_dir}", "decoding.decoder=beam", f"decoding.lm={arpa}"],
                         dec_dir, ctc_dir, needs=(*after_ctc, build.name))
    return {"build-lm": build, "ctc + LM": evaluate}


def run_jobs(jobs: list[Job], parallel: int) -> None:
    """Run ``jobs`` (listed in priority order) with up to ``parallel`` at a time, each once all
    the jobs it ``needs`` have finished. With ``parallel`` > 1 on a CPU each gets
    cores // parallel threads: tiny's small GEMMs scale poorly past one core (measured on CPU-2:
    1 thread 0.29 s/update, 2 threads 0.245 s), so two side by side finish sooner than in turn."""
    done = {j.name for j in jobs if j.cached()}
    pending = [j for j in jobs if j.name not in done]
    running: dict[str, tuple[Job, subprocess.Popen]] = {}
    threads = max(1, (os.cpu_count() or 1) // parallel) if parallel > 1 else None
    try:
        while pending or running:
            while len(running) < parallel:
                ready = next((j for j in pending if all(n in done for n in j.needs)), None)
                if ready is None:
                    break
                pending.remove(ready)
                running[ready.name] = (ready, ready.start(threads))
            if not running:
                raise RuntimeError(f"demo jobs wait on unknown jobs: {[j.name for j in pending]}")
            time.sleep(0.5)
            for name, (job, proc) in list(running.items()):
                if proc.poll() is not None:
                    del running[name]
                    job.finish(proc.returncode)
                    done.add(name)
    finally:
        for job, proc in running.values():  # one failed: stop the others, keep their checkpoints
            proc.terminate()
            proc.wait()


def _params_m(run_dir: Path) -> float:
    from ds_w2v.models.wav2vec2 import Wav2Vec2Config, count_parameters

    meta = json.loads((run_dir / "model.json").read_text())
    return count_parameters(Wav2Vec2Config.from_dict(meta["config"]))["ctc_trainable"] / 1e6


ABLATION_ROWS = {"off": [], "on": ["random init, 100 %"],
                 "full": ["random init, 100 %", "pretrained, 10 %", "random init, 10 %"]}


def demo_jobs(size: str, data: Path, runs: Path, ablation: str = "auto",
              lm: bool = False) -> tuple[dict[str, Job], list[str], list[str]]:
    """The demo's jobs for one preset (by key), their priority order and the ablation rows run.

    ``data`` holds ``timit/`` and ``ravdess/`` shards; ``ablation``: ``off``, ``on`` (CTC also
    from random init), ``full`` (and both with 10 % of the labels) or ``auto`` (``on`` for tiny,
    ``off`` for the GPU sizes); ``lm``: also the greedy-vs-LM decoding row (:func:`lm_jobs`).
    """
    cpu = size == "tiny"
    extra = {k: [f"seed={DEMO_SEED}", *v] for k, v in (CPU_DEMO if cpu else GPU_DEMO).items()}
    rec = {t: (f"pretrain_{size}" if t == "pretrain" else f"finetune_{t}_{size}") for t in GPU_DEMO}
    timit, ravdess, pt_dir = data / "timit", data / "ravdess", runs / f"{size}_pretrain"
    after_pt = (f"{size} pretrain",)
    cache = runs / "probe_cache"
    jobs = {
        "pretrain": TrainJob(f"{size} pretrain", "pretrain", rec["pretrain"], pt_dir,
                             [f"data.shards={timit}", *extra["pretrain"]]),
        "ctc": TrainJob(f"{size} ctc", "finetune-ctc", rec["ctc"], runs / f"{size}_ctc",
                        [f"data.shards={timit}", f"model.init={pt_dir}", *extra["ctc"]], needs=after_pt),
        "cls": TrainJob(f"{size} cls", "finetune-cls", rec["cls"], runs / f"{size}_cls",
                        [f"data.shards={ravdess}", f"model.init={pt_dir}", *extra["cls"]], needs=after_pt),
        # the same probe of the pretrained model and of the weights it started from (same preset
        # and seed as the pretraining run), which waits for nothing
        "probe pretrained": probe_job(f"{size} probe pretrained", str(pt_dir), timit,
                                      runs / f"{size}_probe_pretrained", cache, needs=after_pt),
        "probe random init": probe_job(f"{size} probe random init", f"random:{size}", timit,
                                       runs / f"{size}_probe_random_init", cache),
    }
    if lm:
        jobs.update(lm_jobs(size, timit, runs, jobs["ctc"].run_dir, (jobs["ctc"].name,)))
    rows = ABLATION_ROWS[("on" if cpu else "off") if ablation == "auto" else ablation]
    small = subset_split(timit, runs / "timit_train10", 0.10) if any(n.endswith("10 %") for n in rows) else None
    for name in rows:
        pretrained, shards = name.startswith("pretrained"), (small if name.endswith("10 %") else timit)
        tag = name.replace(" ", "").replace(",", "_").replace("%", "pct")
        # from scratch every parameter trains: a frozen conv encoder (GPU recipes) only
        # makes sense for a pretrained one; the tiny recipe trains it in every row anyway
        over = [f"data.shards={shards}", *extra["ctc"]] + (
            [f"model.init={pt_dir}"] if pretrained else ["model.overrides.feature_grad_mult=1.0"])
        jobs[name] = TrainJob(f"{size} ctc {name}", "finetune-ctc", rec["ctc"], runs / f"{size}_ctc_{tag}", over,
                              needs=after_pt if pretrained else ())
    # priority order (run_jobs starts the first one that is ready): pretraining first, beside it
    # what does not wait for it (the random-init rows, else the random-init probe), then the
    # longest fine-tune (CTC) the moment pretraining ends, emotion, the probes
    order = ["pretrain", *(n for n in rows if n.startswith("random")), "ctc", "cls", "probe random init",
             *(n for n in rows if n.startswith("pretrained")), "probe pretrained",
             *(["build-lm", "ctc + LM"] if lm else [])]
    return jobs, order, rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="folder with timit/ and ravdess/ prepared shards")
    p.add_argument("--sizes", default="tiny", help="comma-separated presets (tiny: CPU recipes; others: GPU)")
    p.add_argument("--runs", default=str(ROOT / "runs" / "demo"))
    p.add_argument("--results", default=str(ROOT / "results"))
    p.add_argument("--ablation", choices=("auto", *ABLATION_ROWS), default="auto",
                   help="on: the CTC fine-tune also from random initialisation; full: and both with 10%% of the "
                        "labels (tiny: ~5 min more on 2 cores); auto: on for tiny only. One seed: the fair "
                        "comparison is the study (bash launch/study.sh)")
    p.add_argument("--jobs", type=int, default=0,
                   help="jobs side by side (default: 2 for tiny on CPU, sharing the cores; 1 on a GPU)")
    p.add_argument("--no-lm", action="store_true",
                   help="leave out the greedy-vs-LM decoding row (beam search + word 4-gram, weights tuned on dev)")
    args = p.parse_args(argv)
    lm = not args.no_lm and have_beam_search()
    if not args.no_lm and not lm:
        print("[demo] no greedy-vs-LM row: beam search needs flashlight-text (pip install .[lm])", flush=True)
    data, runs, results = Path(args.data), Path(args.runs), Path(args.results)
    runs.mkdir(parents=True, exist_ok=True)
    results.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    rows: dict[str, dict[str, Any]] = {}
    ablation: dict[str, dict[str, Any]] = {}
    for size in args.sizes.split(","):
        cpu = size == "tiny"
        jobs, order, ablation_rows = demo_jobs(size, data, runs, args.ablation, lm)
        print(f"[{size}] pretraining (self-supervised) on {data / 'timit'}, then CTC fine-tuning on it, emotion "
              f"classification on {data / 'ravdess'} and the linear phone probe of the pretrained and the random-init "
              f"model" + (", and the CTC ablation" if ablation_rows else ""), flush=True)
        run_jobs([jobs[k] for k in order], args.jobs if args.jobs else (2 if cpu else 1))
        pt, ctc, cls = jobs["pretrain"], jobs["ctc"], jobs["cls"]
        rows[size] = {"params_m": _params_m(ctc.run_dir), "pretrain": pt.result, "pretrain_s": pt.wall_s,
                      "ctc": ctc.result, "ctc_s": ctc.wall_s, "cls": cls.result, "cls_s": cls.wall_s,
                      "runs": {"pretrain": str(pt.run_dir), "ctc": str(ctc.run_dir), "cls": str(cls.run_dir)},
                      # the report reads the probes' figures from these files (ds-w2v probe --out)
                      "probes": {label: {"results": str(jobs[f"probe {label}"].run_dir / "results.json"),
                                         "command": f"ds-w2v probe {shlex.join(jobs[f'probe {label}'].args)}",
                                         "wall_s": jobs[f"probe {label}"].wall_s}
                                 for label in ("pretrained", "random init")}}
        if lm:
            dec = jobs["ctc + LM"]
            rows[size]["ctc_lm"] = {**dec.result, "command": dec.shown([]), "wall_s": dec.wall_s}
        if ablation_rows:
            ablation[size] = {"pretrained, 100 %": ctc.result, **{k: jobs[k].result for k in ablation_rows}}
    from .report import write_report

    report = write_report(rows, ablation, results, total_s=time.time() - t_start)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
