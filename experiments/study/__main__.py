"""``python -m experiments.study``: the fair ablation and the longer CPU study (``bash launch/study.sh``).

    python -m experiments.study                 # ~2.5-3 h on 2 CPU cores (a rerun ~1.5 h) -> results/STUDY.md
    python -m experiments.study --quick         # minutes: every kind of job once, tiny budgets -> results/study_quick/
    python -m experiments.study --search        # the recorded search over pretraining settings -> results/SEARCH.md
    python -m experiments.study --estimate      # the plan's cost from measured per-update times; runs nothing

Rerunning a command resumes it: every finished run (its results.json) is reused.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from ..demo import ROOT


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m experiments.study", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--quick", action="store_true", help="the minutes-long plan (tiny budgets, 1 lr)")
    which.add_argument("--search", action="store_true", help="the search over pretraining settings (SEARCH.md)")
    p.add_argument("--data", default=None, help="corpora and shards (default: study_data/, quick: study_data/quick/)")
    p.add_argument("--runs", default=None, help="run directories (default: runs/study[_quick|_search])")
    p.add_argument("--results", default=None, help="STUDY.md / SEARCH.md and plots (default: results/, quick: "
                                                    "results/study_quick/)")
    p.add_argument("--tasks", default=None, help="comma-separated subset of chars,phones,emotion")
    p.add_argument("--variants", default=None,
                   help="--search only: comma-separated subset of its variants (default: all of them)")
    p.add_argument("--jobs", type=int, default=2, help="runs side by side (default 2: one core each on 2 cores)")
    p.add_argument("--estimate", action="store_true", help="print the plan's estimated cost and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    from .plan import PLANS, TASKS, estimate, select_variants

    args = build_parser().parse_args(argv)
    name = "quick" if args.quick else "search" if args.search else "default"
    plan = PLANS[name]()
    if args.tasks:
        tasks = tuple(t.strip() for t in args.tasks.split(",") if t.strip())
        unknown = [t for t in tasks if t not in TASKS]
        if unknown:
            print(f"python -m experiments.study: error: --tasks {unknown}: not among {', '.join(TASKS)}", file=sys.stderr)
            return 2
        plan = dataclasses.replace(plan, tasks=tasks)
    if args.variants:
        if not args.search:
            print("python -m experiments.study: error: --variants needs --search", file=sys.stderr)
            return 2
        try:
            plan = select_variants(plan, [v.strip() for v in args.variants.split(",") if v.strip()])
        except ValueError as e:
            print(f"python -m experiments.study: error: --variants: {e}", file=sys.stderr)
            return 2
    cost = estimate(plan, slots=args.jobs)
    what = f"{len(plan.search)} pretraining variants" if plan.search else \
        f"{len(plan.arms)} arms, {plan.num_finetunes} fine-tunes"
    print(f"[study {name}] {what}, estimated "
          + ", ".join(f"{k[:-2]} {v / 60:.1f} min" for k, v in cost.items() if v) + f" on {args.jobs} slots",
          flush=True)
    if args.estimate:
        return 0
    from .report import write_study
    from .search_report import write_search
    from .runner import Study

    suffix = {"default": "", "quick": "_quick", "search": "_search"}[name]
    data = Path(args.data) if args.data else ROOT / "study_data" / ("quick" if args.quick else "")
    runs = Path(args.runs) if args.runs else ROOT / "runs" / f"study{suffix}"
    results = Path(args.results) if args.results else ROOT / "results" / ("study_quick" if args.quick else "")
    command = "bash launch/study.sh" + {"default": "", "quick": " --quick", "search": " --search"}[name]
    if args.tasks:
        command += f" --tasks {args.tasks}"
    if args.variants:
        command += f" --variants {args.variants}"
    study = Study(plan, data, runs, results, parallel=args.jobs, command=command)
    outcome = study.run()
    text = (write_search if args.search else write_study)(outcome, results)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
