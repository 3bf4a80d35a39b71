"""``ds-w2v average RUN_DIR (--last N | --best N) --out F``: the mean of several checkpoints of a
run (any ZeRO stage) as one fp32 ds_w2v model file, as ``export`` writes it (fairseq's
``scripts/average_checkpoints.py``).

``--last N``: the N newest update tags. ``--best N``: the N tags with the best dev value of the
run's best metric (``metrics.jsonl``, in the task's direction) among the update and best tags on
disk. A run keeps ``keep_last`` update tags and ``keep_best`` best tags (default 1): train with
``keep_best=N`` to have the N best on disk; fewer candidates than N is refused, listing what is
there. The tags averaged are printed (with their dev values) and recorded in ``F.average.json``.
The rules in full: ``ds_w2v.train.average``."""
from __future__ import annotations

import argparse


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__)
    p.add_argument("run_dir")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--last", type=int, metavar="N", help="the N newest update checkpoints")
    which.add_argument("--best", type=int, metavar="N", help="the N checkpoints with the best dev metric")
    p.add_argument("--out", required=True, help="the model file to write")
    return p


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..train.average import average

    result = average(Path(args.run_dir), Path(args.out), last=args.last, best=args.best)
    if result.rule == "last":
        print(f"averaged the last {len(result.chosen)} checkpoint(s) of {args.run_dir}:")
    else:
        direction = "higher" if result.higher_is_better else "lower"
        print(f"averaged the {len(result.chosen)} best checkpoint(s) of {args.run_dir} by {result.metric} "
              f"({direction} is better):")
    for c in result.chosen:
        value = "" if c.value is None else f"  {result.metric} {c.value:.4f}"
        print(f"  {c.tag}  update {c.update}{value}")
    print(f"wrote {result.out} (its sources: {result.sidecar})")
    return 0
