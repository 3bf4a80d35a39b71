"""The study, done for real, in one command (``bash launch/demo.sh`` runs this after preparing
the synthetic corpora): per model size, pretrain wav2vec 2.0 self-supervised on the read-speech
corpus (TIMIT layout), fine-tune it with a CTC head on the same corpus and with a
classification head on the emotion corpus (RAVDESS layout), evaluate on the held-out test
splits (speakers / actors never seen in training, best checkpoint chosen on dev), and print
the study's two tables. With ``--ablation`` (default for the CPU demo) the CTC fine-tune is
repeated from random initialisation and with 10 % of the labelled utterances.

    python -m ds_w2v.demo --data demo_data/shards                      # tiny, CPU, ~15 min on 2 cores
    python -m ds_w2v.demo --data demo_data/shards --sizes small,medium,original   # GPU recipes

Every number in the report comes from the runs' ``results.json`` / ``metrics.jsonl``.
"""
from __future__ import annotations

import argparse
import json
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
    "pretrain": ["max_updates=3000", "global_batch_s=87.5", "schedule.warmup_updates=300", "log_every=20",
                 "eval_every=500", "save_every=500", "data.num_workers=4"],
    "ctc": ["max_updates=2000", "global_batch_s=200", "freeze_transformer_updates=200", "log_every=20",
            "eval_every=250", "save_every=250", "data.num_workers=4"],
    "cls": ["max_updates=1500", "global_batch_s=100", "freeze_transformer_updates=100", "log_every=20",
            "eval_every=150", "save_every=150", "data.num_workers=4"],
}


def _run(command: str, recipe: str, run_dir: Path, overrides: list[str], log_path: Path) -> tuple[dict, float]:
    """Run one training command in its own process(es); returns (results.json, wall seconds)."""
    if (run_dir / "results.json").is_file():  # finished earlier: reuse (the demo resumes)
        res = json.loads((run_dir / "results.json").read_text())
        return res, res.get("wall_s", res.get("train_time_s", 0.0))
    cmd = ["bash", str(ROOT / "launch" / "_launch.sh"), command, "--recipe", recipe, f"run_dir={run_dir}", *overrides]
    print(f"  $ {' '.join(cmd[2:])}", flush=True)
    t0 = time.time()
    with open(log_path, "w") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    wall = time.time() - t0
    if proc.returncode != 0:
        tail = log_path.read_text().splitlines()[-15:]
        raise RuntimeError(f"{command} failed (exit {proc.returncode}); log {log_path}:\n" + "\n".join(tail))
    res = json.loads((run_dir / "results.json").read_text())
    res["wall_s"] = wall
    (run_dir / "results.json").write_text(json.dumps(res, indent=1))
    return res, wall


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
    args = p.parse_args(argv)
    data, runs, results = Path(args.data), Path(args.runs), Path(args.results)
    runs.mkdir(parents=True, exist_ok=True)
    results.mkdir(parents=True, exist_ok=True)
    t_start = time.time()
    rows: dict[str, dict[str, Any]] = {}
    ablation: dict[str, dict[str, Any]] = {}
    for size in args.sizes.split(","):
        extra = {k: [] for k in GPU_DEMO} if size == "tiny" else GPU_DEMO
        rec = {t: (f"pretrain_{size}" if t == "pretrain" else f"finetune_{t}_{size}") for t in GPU_DEMO}
        print(f"[{size}] pretraining (self-supervised) on {data / 'timit'}", flush=True)
        pt_dir = runs / f"{size}_pretrain"
        pt, pt_s = _run("pretrain", rec["pretrain"], pt_dir, [f"data.shards={data / 'timit'}", *extra["pretrain"]],
                        runs / f"{size}_pretrain.log")
        print(f"[{size}] CTC fine-tuning from the pretrained model", flush=True)
        ctc_dir = runs / f"{size}_ctc"
        ctc, ctc_s = _run("finetune-ctc", rec["ctc"], ctc_dir,
                          [f"data.shards={data / 'timit'}", f"model.init={pt_dir}", *extra["ctc"]], runs / f"{size}_ctc.log")
        print(f"[{size}] emotion classification fine-tuning from the pretrained model", flush=True)
        cls_dir = runs / f"{size}_cls"
        cls, cls_s = _run("finetune-cls", rec["cls"], cls_dir,
                          [f"data.shards={data / 'ravdess'}", f"model.init={pt_dir}", *extra["cls"]], runs / f"{size}_cls.log")
        rows[size] = {"params_m": _params_m(ctc_dir), "pretrain": pt, "pretrain_s": pt_s, "ctc": ctc, "ctc_s": ctc_s,
                      "cls": cls, "cls_s": cls_s, "runs": {"pretrain": str(pt_dir), "ctc": str(ctc_dir), "cls": str(cls_dir)}}
        if args.ablation == "on" or (args.ablation == "auto" and size == "tiny"):
            small = subset_split(data / "timit", runs / "timit_train10", 0.10)
            ablation[size] = {"pretrained, 100 %": ctc}
            for name, shards, init in (("random init, 100 %", data / "timit", None),
                                       ("pretrained, 10 %", small, pt_dir),
                                       ("random init, 10 %", small, None)):
                tag = name.replace(" ", "").replace(",", "_").replace("%", "pct")
                print(f"[{size}] ablation: CTC {name}", flush=True)
                # from scratch every parameter trains: the recipe's frozen conv encoder only makes
                # sense for a pretrained one
                over = [f"data.shards={shards}", *extra["ctc"]] + (
                    [f"model.init={init}"] if init else ["model.overrides.feature_grad_mult=1.0"])
                res, _ = _run("finetune-ctc", rec["ctc"], runs / f"{size}_ctc_{tag}", over, runs / f"{size}_ctc_{tag}.log")
                ablation[size][name] = res
    from .report import write_report

    report = write_report(rows, ablation, results, total_s=time.time() - t_start)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
