"""The study, done for real, in one command (``bash launch/demo.sh`` runs this after preparing
the synthetic corpora): per model size, pretrain wav2vec 2.0 self-supervised on the read-speech
corpus (TIMIT layout), fine-tune it with a CTC head on the same corpus and with a
classification head on the emotion corpus (RAVDESS layout), evaluate on the held-out test
splits (speakers / actors never seen in training, best checkpoint chosen on dev), and print
the study's two tables. With ``--ablation`` (default for the CPU demo) the CTC fine-tune is
repeated from random initialisation and with 10 % of the labelled utterances.

    python -m ds_w2v.demo --data demo_data/shards                      # tiny, CPU, ~14 min on 2 cores
    python -m ds_w2v.demo --data demo_data/shards --sizes small,medium,original   # GPU recipes

Every number in the report comes from the runs' ``results.json`` / ``metrics.jsonl``.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

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


class Job:
    """One training run of the demo: a command, its recipe and overrides, and the jobs it needs."""

    def __init__(self, name: str, command: str, recipe: str, run_dir: Path, overrides: list[str],
                 needs: tuple[str, ...] = ()):
        self.name, self.command, self.recipe, self.run_dir = name, command, recipe, run_dir
        self.overrides, self.needs = overrides, needs
        self.log = run_dir.parent / f"{run_dir.name}.log"
        self.result: dict | None = None
        self.wall_s = 0.0

    def cached(self) -> bool:
        """Finished in an earlier demo run: reuse it (the demo resumes where it stopped)."""
        path = self.run_dir / "results.json"
        if not path.is_file():
            return False
        self.result = json.loads(path.read_text())
        self.wall_s = self.result.get("wall_s", self.result.get("train_time_s", 0.0))
        return True

    def start(self, threads: int | None) -> subprocess.Popen:
        cmd = ["bash", str(ROOT / "launch" / "_launch.sh"), self.command, "--recipe", self.recipe,
               f"run_dir={self.run_dir}", *self.overrides]
        env = dict(os.environ)
        if threads:  # jobs side by side share the cores: one torch thread pool each
            env["OMP_NUM_THREADS"] = str(threads)
        print(f"  [{self.name}] $ {' '.join(cmd[2:])}", flush=True)
        self._t0 = time.time()
        self._log = open(self.log, "w")
        return subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)

    def finish(self, returncode: int) -> None:
        self.wall_s = time.time() - self._t0
        self._log.close()
        if returncode != 0:
            tail = self.log.read_text().splitlines()[-15:]
            raise RuntimeError(f"{self.name}: {self.command} failed (exit {returncode}); log {self.log}:\n" + "\n".join(tail))
        self.result = json.loads((self.run_dir / "results.json").read_text())
        self.result["wall_s"] = self.wall_s
        (self.run_dir / "results.json").write_text(json.dumps(self.result, indent=1))
        print(f"  [{self.name}] done in {self.wall_s:.0f} s", flush=True)


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


def subset_split(shards: Path, out: Path, fraction: float, seed: int = 0) -> Path:
    """A prepared copy of ``shards`` whose ``train`` keeps ``fraction`` of the utterances
    (seeded), dev and test whole: the labelled-budget ablation."""
    if (out / "dataset.json").is_file():
        return out
    import tarfile

    from .data.prepare import prepare_corpus

    rows = []
    index = json.loads((shards / "dataset.json").read_text())
    for split, info in index["splits"].items():
        for name in info["shards"]:
            with tarfile.open(shards / name) as tar:
                for member in tar:
                    if member.name.endswith(".json"):
                        rec = json.loads(tar.extractfile(member).read())
                        rows.append({"path": rec["source"], "text": rec["text"], "split": split,
                                     "speaker": rec["speaker"], "id": rec["id"]})
    rng = random.Random(seed)
    train = [r for r in rows if r["split"] == "train"]
    keep = {r["id"] for r in rng.sample(train, max(1, round(fraction * len(train))))}
    rows = [r for r in rows if r["split"] != "train" or r["id"] in keep]
    out.mkdir(parents=True, exist_ok=True)
    lst = out.parent / f"{out.name}.jsonl"
    lst.write_text("".join(json.dumps(r) + "\n" for r in rows))
    prepare_corpus("jsonl", lst, out, workers=1, progress=False, overwrite=True)
    return out


def _params_m(run_dir: Path) -> float:
    from .models.wav2vec2 import Wav2Vec2Config, count_parameters

    meta = json.loads((run_dir / "model.json").read_text())
    return count_parameters(Wav2Vec2Config.from_dict(meta["config"]))["ctc_trainable"] / 1e6


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="folder with timit/ and ravdess/ prepared shards")
    p.add_argument("--sizes", default="tiny", help="comma-separated presets (tiny: CPU recipes; others: GPU)")
    p.add_argument("--runs", default=str(ROOT / "runs" / "demo"))
    p.add_argument("--results", default=str(ROOT / "results"))
    p.add_argument("--ablation", choices=("auto", "on", "off"), default="auto",
                   help="CTC from random init and with 10%% of the labels (auto: for tiny only)")
    p.add_argument("--jobs", type=int, default=0,
                   help="training runs side by side (default: 2 for tiny on CPU, sharing the cores; 1 on a GPU)")
    args = p.parse_args(argv)
    data, runs, results = Path(args.data), Path(args.runs), Path(args.results)
    runs.mkdir(parents=True, exist_ok=True)
    results.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    rows: dict[str, dict[str, Any]] = {}
    ablation: dict[str, dict[str, Any]] = {}
    for size in args.sizes.split(","):
        cpu = size == "tiny"
        extra = {k: [] for k in GPU_DEMO} if cpu else GPU_DEMO
        rec = {t: (f"pretrain_{size}" if t == "pretrain" else f"finetune_{t}_{size}") for t in GPU_DEMO}
        timit, ravdess, pt_dir = data / "timit", data / "ravdess", runs / f"{size}_pretrain"
        after_pt = (f"{size} pretrain",)
        jobs = {
            "pretrain": Job(f"{size} pretrain", "pretrain", rec["pretrain"], pt_dir,
                            [f"data.shards={timit}", *extra["pretrain"]]),
            "ctc": Job(f"{size} ctc", "finetune-ctc", rec["ctc"], runs / f"{size}_ctc",
                       [f"data.shards={timit}", f"model.init={pt_dir}", *extra["ctc"]], needs=after_pt),
            "cls": Job(f"{size} cls", "finetune-cls", rec["cls"], runs / f"{size}_cls",
                       [f"data.shards={ravdess}", f"model.init={pt_dir}", *extra["cls"]], needs=after_pt),
        }
        order = ["pretrain"]
        with_ablation = args.ablation == "on" or (args.ablation == "auto" and cpu)
        if with_ablation:
            small = subset_split(timit, runs / "timit_train10", 0.10)
            for name, shards, pretrained in (("random init, 100 %", timit, False),
                                             ("pretrained, 10 %", small, True),
                                             ("random init, 10 %", small, False)):
                tag = name.replace(" ", "").replace(",", "_").replace("%", "pct")
                # from scratch every parameter trains: a frozen conv encoder (GPU recipes) only
                # makes sense for a pretrained one; the tiny recipe trains it in every row anyway
                over = [f"data.shards={shards}", *extra["ctc"]] + (
                    [f"model.init={pt_dir}"] if pretrained else ["model.overrides.feature_grad_mult=1.0"])
                jobs[name] = Job(f"{size} ctc {name}", "finetune-ctc", rec["ctc"], runs / f"{size}_ctc_{tag}", over,
                                 needs=after_pt if pretrained else ())
            # pretraining first, then what does not wait for it; the longest run (cls) as soon as
            # it can start, so that the two slots end close together (CPU-2: 13 min 46 s; ~15 min
            # with cls after ctc)
            order += ["random init, 100 %", "random init, 10 %", "cls", "ctc", "pretrained, 10 %"]
        else:
            order += ["ctc", "cls"]
        print(f"[{size}] pretraining (self-supervised) on {timit}, then CTC fine-tuning on it and emotion "
              f"classification on {ravdess}" + (", and the CTC ablation" if with_ablation else ""), flush=True)
        run_jobs([jobs[k] for k in order], args.jobs if args.jobs else (2 if cpu else 1))
        pt, ctc, cls = jobs["pretrain"], jobs["ctc"], jobs["cls"]
        rows[size] = {"params_m": _params_m(ctc.run_dir), "pretrain": pt.result, "pretrain_s": pt.wall_s,
                      "ctc": ctc.result, "ctc_s": ctc.wall_s, "cls": cls.result, "cls_s": cls.wall_s,
                      "runs": {"pretrain": str(pt.run_dir), "ctc": str(ctc.run_dir), "cls": str(cls.run_dir)}}
        if with_ablation:
            ablation[size] = {"pretrained, 100 %": ctc.result,
                              **{k: jobs[k].result for k in ("random init, 100 %", "pretrained, 10 %", "random init, 10 %")}}
    from .report import write_report

    report = write_report(rows, ablation, results, total_s=time.time() - t_start)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
