"""``results/STUDY.md`` from a :class:`StudyOutcome`: the
goals with PASS / MISS computed from the figures, the probe rows beside the fine-tune rows, each
row's mean and spread over seeds with n, the lr each arm chose, the curve of probe accuracy
against pretraining updates, the settings and wall times, and how to rerun. Every figure comes
from the runs' files through ``runner.Study.collect``; nothing is typed in by hand.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Mapping, Sequence

from .curves import ProbePoint, gain_per_update
from .goals import (CPC_PRETRAINED, CPC_RANDOM, CPC_SHARE, CPC_SUPERVISED, PROBE_GAIN, Goal, headroom_goal,
                    linear_best_acc, per_goal, probe_goal)
from .plan import TASKS, StudyPlan
from .runner import CEILING, StudyOutcome
from .selection import ArmSummary, Spread, ratio


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def _spread(s: Spread, scale: float = 100.0, unit: str = " %") -> str:
    """``mean ± std [min..max] (n)``; one value: the value (n=1)."""
    if s.mean is None:
        return "-"
    if s.n == 1:
        return f"{scale * s.mean:.1f}{unit} (n=1)"
    return (f"{scale * s.mean:.1f} ± {scale * s.std:.1f}{unit} [{scale * s.min:.1f}..{scale * s.max:.1f}] "
            f"(n={s.n})")


def _hms(seconds: float | None) -> str:
    if not seconds:
        return "-"
    s = int(round(seconds))
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def goals(outcome: StudyOutcome) -> list[Goal]:
    pre, rnd = outcome.probes.get("pretrained", []), outcome.probes.get("random init", [])
    return [probe_goal(pre, rnd), headroom_goal(pre, rnd, outcome.probes.get(CEILING, [])), per_goal(outcome.arms)]


def _probe_figure(results: Sequence[dict], protocol: str, key: str) -> Spread:
    vals = []
    for r in results:
        for data in (r.get("datasets") or {}).values():
            if protocol in data:
                vals.append(data[protocol][key])
                break
    return Spread.of(vals)


def _best_layers(results: Sequence[dict]) -> str:
    layers = []
    for r in results:
        for data in (r.get("datasets") or {}).values():
            if "linear" in data:
                layers.append(data["linear"]["best_layer"])
                break
    return ", ".join(dict.fromkeys(layers)) or "-"


def probe_table(outcome: StudyOutcome) -> list[str]:
    lines = ["| upstream | n | linear phone probe, best layer (test frames) | best layer | SUPERB PR: PER (test) "
             "| SUPERB ER: accuracy (test) |", "|---|---|---|---|---|---|"]
    for kind, results in outcome.probes.items():
        lines.append(f"| {kind} | {len(results)} | {_spread(linear_best_acc(results))} | {_best_layers(results)} | "
                     f"{_spread(_probe_figure(results, 'pr', 'per'))} | "
                     f"{_spread(_probe_figure(results, 'er', 'acc'))} |")
    any_result = next(iter(outcome.probes.values()), [])
    majority = _probe_figure(any_result, "linear", "majority_acc")
    chance = _probe_figure(any_result, "er", "chance")
    if majority.mean is not None:
        lines += ["", f"Majority phone of the train frames: {_pct(majority.mean)} of the test frames"
                      + (f"; ER chance {_pct(chance.mean)}." if chance.mean is not None else ".")]
    lines += _ceiling_note(outcome)
    return lines


def _ceiling_note(outcome: StudyOutcome) -> list[str]:
    """What the ceiling row is (its runs' updates, why they stopped, dev frame accuracy) and the
    headroom read against CPC's; or, when it probes at or below the pretrained upstream, that it
    bounds nothing and how long it trained."""
    top = linear_best_acc(outcome.probes.get(CEILING, [])).mean
    pre = linear_best_acc(outcome.probes.get("pretrained", [])).mean
    rnd = linear_best_acc(outcome.probes.get("random init", [])).mean
    runs = [r for r in (outcome.runs.get("ceiling") or {}).values() if r]
    if top is None or not runs:
        return []
    trained = "; ".join(f"seed {r.get('seed')}: {r.get('updates')} updates (stopped by {r.get('stopped')}; best dev "
                        f"frame accuracy {_pct(r.get('dev_frame_acc'))} at update {r.get('best_update')}; "
                        f"{_hms(r.get('wall_s'))})" for r in runs)
    lines = ["", f"The {CEILING} row: tiny trained from random initialisation on the frame phone labels of every "
                 f"train utterance (frame cross-entropy through a linear head on the top layer, "
                 f"`experiments/study/ceiling.py`), until dev frame accuracy stopped improving or its update cap "
                 f"-- {trained}."]
    if pre is None or rnd is None:
        return lines
    rising = [r for r in runs if r.get("stopped") == "max_updates" and r.get("best_update") == r.get("updates")]
    if rising and top > pre:
        lines.append(f"Still improving at the cap ({len(rising)} of {len(runs)} runs: best dev at the last update): "
                     "a longer supervised run would raise the ceiling, so the share of headroom closed below is an "
                     "upper bound.")
    if top <= pre:
        lines.append(f"It probes at or below the pretrained upstream ({_pct(top)} <= {_pct(pre)}): it bounds nothing, "
                     "and the headroom above the pretrained model is unmeasured; a longer or larger supervised run "
                     "would be needed.")
        return lines
    lines.append(f"Headroom closed on test: ({_pct(pre)} - {_pct(rnd)}) / ({_pct(top)} - {_pct(rnd)}) = "
                 f"{100 * (pre - rnd) / (top - rnd):.0f} %; CPC on LibriSpeech-100 closed "
                 f"({_pct(CPC_PRETRAINED)} - {_pct(CPC_RANDOM)}) / ({_pct(CPC_SUPERVISED)} - {_pct(CPC_RANDOM)}) = "
                 f"{100 * CPC_SHARE:.0f} %.")
    return lines


BLANK = 0.99  # a CTC error rate this high: the output is (nearly) all blank, the row measures nothing


def _blank(a: ArmSummary) -> bool:
    return not a.higher_is_better and a.metric in ("cer", "per", "wer") and (a.test.mean or 0) >= BLANK


def _arm_row(a: ArmSummary) -> str:
    grid = ", ".join(f"{p.lr:g}: {'diverged' if p.dev is None else _pct(p.dev)}" for p in a.grid)
    mark = " †" if _blank(a) else ""
    edge = f" ‡ ({a.edge})" if a.edge else ""
    return (f"| {a.arm.init} | {a.arm.pct} | {grid} | **{a.chosen_lr:g}**{edge} | {_spread(a.dev)} | "
            f"{_spread(a.test)}{mark} | {_hms(a.wall_s)} |")


def finetune_tables(outcome: StudyOutcome) -> list[str]:
    lines = []
    for task in outcome.plan.tasks:
        arms = [a for a in outcome.arms if a.arm.task == task]
        if not arms:
            continue
        spec, budget = TASKS[task], outcome.plan.budgets[task]
        m = spec.metric.upper()
        lines += [f"### {task} ({spec.command}{' ' + ' '.join(spec.overrides) if spec.overrides else ''}), "
                  f"{m} ({'higher' if spec.higher_is_better else 'lower'} is better)", "",
                  f"Every run: {budget.updates} updates x {budget.batch_s:g} audio-s, recipe `{spec.recipe}` at the "
                  f"lr of its column; dev {m} chose the lr (seed {outcome.plan.seeds[0]}) and each run's checkpoint.",
                  "", f"| init | labels | lr grid: best dev {m} | chosen lr | dev {m} | test {m} | wall (all runs) |",
                  "|---|---|---|---|---|---|---|"]
        lines += [_arm_row(a) for a in arms]
        if any(_blank(a) for a in arms):
            lines.append(f"\n† test {m} >= {100 * BLANK:.0f} %: the CTC output is still (nearly) all blank after this "
                         "budget; such a row says nothing about pretraining.")
        if any(a.edge for a in arms):
            lines.append("\n‡ the chosen lr is the grid's lowest or highest and beats its neighbour on dev: the best "
                         "lr may lie beyond the grid, so the row may understate what its init can do.")
        for share in outcome.plan.label_shares:
            pre = next((a for a in arms if a.arm.init == "pretrained" and a.arm.labels == share), None)
            rnd = next((a for a in arms if a.arm.init == "random" and a.arm.labels == share), None)
            if pre and rnd and ratio(pre.test, rnd.test) is not None:
                lines.append(f"\n{100 * share:g} % of the labels: pretrained / random init test {m} = "
                             f"{ratio(pre.test, rnd.test):.2f}")
        lines.append("")
    return lines


def curve_lines(outcome: StudyOutcome) -> list[str]:
    lines = []
    for name, points in outcome.curves.items():
        if not points:
            continue
        cells = ", ".join(f"{p.update}: {_pct(p.acc)}" for p in points)
        slope = gain_per_update(points)
        lines.append(f"- **{name}** (best layer's dev frame accuracy, update: accuracy): {cells}")
        if slope is not None:
            lines.append(f"  - slope over the curve's last half: {100 * slope * 1000:+.2f} points per 1,000 updates; "
                         f"from update 0 to {points[-1].update}: {100 * (points[-1].acc - points[0].acc):+.1f} points")
    return lines


def scale_note(outcome: StudyOutcome, goal: Goal) -> list[str]:
    """For a missed probe goal: the evidence of what it would take, read off the curve."""
    points = outcome.curves.get("ds_w2v") or []
    if goal.passed is not False or goal.value is None or len(points) < 2:
        return []
    slope = gain_per_update(points)
    missing = PROBE_GAIN - goal.value
    out = [f"The probe goal is missed by {100 * missing:.1f} points after {points[-1].update} updates."]
    if slope and slope > 0:
        more = missing / slope
        out.append(f"At the slope of the curve's last half ({100 * slope * 1000:+.2f} points per 1,000 updates) it "
                   f"would take ~{more:,.0f} more updates of the same recipe -- a straight line drawn through a "
                   "curve that usually flattens, so a lower bound on the scale, not a forecast.")
    else:
        out.append("The curve is flat or falling at its end: more updates of this recipe alone do not close it; the "
                   "search (`--search`, SEARCH.md) is where a recipe that learns at this size is looked for.")
    return out


def pyplot():
    """matplotlib's pyplot on the Agg backend (files only, no display), or None without matplotlib:
    the reports are written without their plots then."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def plot_probe_curves(curves: dict[str, list[ProbePoint]], path: Path, *, title: str | None = None,
                      figsize: tuple[float, float] = (7, 4.5), marker: str = "o", ncol: int = 1) -> bool:
    """One line per probe curve (best layer, % dev frames, against pretraining updates) and the
    majority-phone floor when the curves carry it. False (nothing written) when no curve has a
    point or matplotlib is missing."""
    plt = pyplot()
    if plt is None or not any(curves.values()):
        return False
    fig, ax = plt.subplots(figsize=figsize)
    for name, points in curves.items():
        if points:
            ax.plot([p.update for p in points], [100 * p.acc for p in points], marker=marker, label=name)
    majority = next((p.majority for pts in curves.values() for p in pts if p.majority is not None), None)
    if majority is not None:
        ax.axhline(100 * majority, color="grey", linestyle=":", label="majority phone")
    ax.set_xlabel("pretraining update")
    ax.set_ylabel("linear phone probe, best layer (% dev frames)")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=7 if ncol > 1 else 8, ncol=ncol)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _plots(outcome: StudyOutcome, results: Path) -> list[str]:
    plt = pyplot()
    if plt is None:
        return []
    files = []
    if plot_probe_curves(outcome.curves, results / "probe_curve.png",
                         title="Probe accuracy against pretraining updates"):
        files.append("probe_curve.png")
    tasks = [t for t in outcome.plan.tasks if any(a.arm.task == t for a in outcome.arms)]
    if tasks:
        fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 4), squeeze=False)
        for ax, task in zip(axes[0], tasks):
            arms = [a for a in outcome.arms if a.arm.task == task and a.test.mean is not None]
            xs = range(len(arms))
            means = [100 * a.test.mean for a in arms]
            err = [[100 * (a.test.mean - a.test.min) for a in arms], [100 * (a.test.max - a.test.mean) for a in arms]]
            ax.bar(xs, means, yerr=err, capsize=4,
                   color=["tab:blue" if a.arm.init == "pretrained" else "tab:orange" for a in arms])
            ax.set_xticks(list(xs), [f"{a.arm.init}\n{a.arm.pct}" for a in arms], fontsize=8)
            ax.set_title(f"{task}: test {TASKS[task].metric.upper()} (bars: min..max over seeds)", fontsize=9)
        fig.tight_layout()
        fig.savefig(results / "finetune_arms.png", dpi=100)
        plt.close(fig)
        files.append("finetune_arms.png")
    return files


def _hf_budget(outcome: StudyOutcome) -> str:
    """The HF reference's updates against ours: "the same 2000 updates", or a warning that its row
    is not at equal budget (a plan that stops it early)."""
    hf = outcome.runs.get("hf_reference") or {}
    if not hf or hf.get("skipped"):
        return "not run"
    if hf.get("updates") == outcome.plan.pretrain.updates:
        return f"the same {hf.get('updates')} updates, stream, batch and schedules as ours" + _precision_note(outcome, hf)
    return (f"**{hf.get('updates')} updates against our {outcome.plan.pretrain.updates}: not an equal-budget "
            "comparison**")


def _precision_note(outcome: StudyOutcome, hf: Mapping) -> str:
    """Where the HF reference (``hf``: its results) ran at another precision than our pretraining:
    say which, since that is the one setting the two runs do not share (a reused run from before
    the reference took the trainer's precision choice ran fp32)."""
    ours = (outcome.runs.get("pretrain") or {}).get("precision")
    theirs = hf.get("precision", "")
    if not ours or not theirs or theirs.split()[0] == ours:
        return ""
    return f"; precision differs: ours {ours}, the reference {theirs}"


def _corpora_lines(outcome: StudyOutcome) -> list[str]:
    lines = []
    for name, splits in outcome.corpora.items():
        cells = ", ".join(f"{s} {n:,} utt / {h:.2f} h" for s, (n, h) in splits.items())
        lines.append(f"- `{name}`: {cells}")
    return lines


def _grids(plan: StudyPlan, task: str) -> str:
    """A task's lr grid, or its grids per init (and label share): ``pretrained 0.0005, 0.001 /
    random 0.001, 0.002``."""
    fmt = lambda lrs: ", ".join(f"{x:g}" for x in lrs)  # noqa: E731
    grids = plan.lrs[task]
    return " / ".join(f"{k} {fmt(v)}" for k, v in grids.items()) if isinstance(grids, Mapping) else fmt(grids)


def _seed_list(plan: StudyPlan, start: int = 1) -> str:
    """``plan.seeds[start:]`` (from 1: those a chosen lr runs again with), and the part-label
    rows' extra ones: ``2`` or ``2 (rows with part of the labels also 3)``."""
    again = ", ".join(map(str, plan.seeds[start:])) or "-"
    if plan.low_label_seeds:
        again += f" (rows with part of the labels also {', '.join(map(str, plan.low_label_seeds))})"
    return again


def write_study(outcome: StudyOutcome, results: str | Path) -> str:
    results = Path(results)
    results.mkdir(parents=True, exist_ok=True)
    plan = outcome.plan
    gs = goals(outcome)
    lines = ["# Study: does self-supervised pretraining help tiny at CPU scale?", "",
             f"Made by `{outcome.command}` (`python -m experiments.study`, plan `{plan.name}`); every figure below is read "
             "from the runs' `results.json` and `metrics.jsonl` by `experiments/study/`. Rerun the same command to "
             "reproduce it (finished runs are reused; delete the runs folder to start over).", "",
             "## Goals", "", "| goal | target | measured | verdict |", "|---|---|---|---|"]
    lines += [f"| {g.name} | {g.target} | {g.measured} | **{g.verdict}** |" for g in gs]
    lines.append("")
    lines += scale_note(outcome, gs[0])
    lines += ["", "## Probes of the frozen upstream", "",
              "`ds-w2v probe` (CPC linear phone probe per layer, SUPERB PR and ER heads) of the pretrained model, "
              "of random-init models (`random:tiny`, one per seed), of the HF reference pretraining "
              f"({_hf_budget(outcome)}), and the ceiling: the same linear probe of tiny trained supervised on the "
              f"frame phone labels (one per seed) -- the headroom the gap is read against. "
              f"{plan.probe.max_utterances} utterances per split; the "
              "linear probe chooses nothing on any split, PR / ER choose their epoch on dev; n = probe seeds (for "
              "random init also the weights' seed; the pretrained model is one pretraining run).", ""]
    lines += probe_table(outcome)
    lines += ["", "## Probe accuracy against pretraining updates", "",
              f"The trainer's `probe_every` ({plan.pretrain.probe_every} updates): a linear probe per layer on the "
              f"first {plan.probe.curve_utterances} train utterances, scored on as many dev utterances (a fixed "
              "subset, so the points compare like with like; update 0 is the initialisation).", ""]
    lines += curve_lines(outcome)
    lines += ["", "## Fine-tuning: pretrained vs random init, all labels vs 10 %", "",
              f"Each row: its lr chosen on dev from its grid (seed {plan.seeds[0]}, equal budget; every arm's grid "
              f"has the same number of lrs), then the chosen lr with seeds {_seed_list(plan)}; mean ± std "
              "[min..max] over the chosen runs "
              "(n seeds); test read once, from those runs' best-on-dev checkpoints. \"10 %\" keeps a seeded tenth "
              "of the train utterances (the demo's choice), dev and test whole. From random initialisation every "
              "parameter trains; the tiny recipes train the conv encoder in every row.", ""]
    lines += finetune_tables(outcome)
    lines += ["## Settings", "",
              f"- pretraining: {plan.pretrain.updates} updates x {plan.pretrain.batch_s:g} audio-s "
              f"({plan.pretrain.updates * plan.pretrain.batch_s / 3600:.1f} h of audio seen), warm-up "
              f"{plan.pretrain.warmup}, recipe `pretrain_tiny`"
              + (f" + {', '.join(plan.pretrain.overrides)}" if plan.pretrain.overrides else "")
              + ", on the labelled read speech's train split mixed with "
              + (", ".join(plan.pretrain.unlabeled) or "nothing"),
              "- lr grids: " + "; ".join(f"{t} {_grids(plan, t)}" for t in plan.tasks),
              f"- seeds: {_seed_list(plan, start=0)}; probe seeds: {', '.join(map(str, plan.probe.seeds))}",
              "- corpora (synthetic, `ds-w2v synth` + `prepare`):"]
    lines += ["  " + x for x in _corpora_lines(outcome)]
    hf = outcome.runs.get("hf_reference") or {}
    if hf and not hf.get("skipped"):
        lines.append(f"- HF reference: {hf.get('implementation')}, transformers {hf.get('transformers')}, "
                     f"{hf.get('updates')} updates, {hf.get('precision')} (`experiments/study/hf_reference.py`)")
    lines += ["", "## Wall time", ""]
    labels = {"data_s": "corpora (synth + prepare, or reused)", "pretrain": "pretraining", "hf_reference":
              "HF reference pretraining", "ceiling": "supervised ceiling (every seed)", "fine-tunes": "fine-tunes (every run)", "probes": "probe rows"}
    order = sorted((k for k in outcome.wall if k != "total_s"), key=lambda k: k != "data_s")
    lines += [f"- {labels.get(k, k)}: {_hms(outcome.wall[k])}" for k in order]
    # job times of every run shown (reused ones too), against this invocation's wall time, which
    # is ~0 when every run was reused: a report rewritten from finished runs must not read "0:00:00"
    jobs_s = sum(v for k, v in outcome.wall.items() if k not in ("data_s", "total_s"))
    lines.append(f"- **job times summed: {_hms(jobs_s)}**; on two run slots side by side, ~{_hms(jobs_s / 2)} of wall "
                 "time plus the corpora")
    lines.append(f"- this invocation: {_hms(outcome.wall.get('total_s'))} (finished runs are reused, not rerun)")
    if outcome.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in outcome.notes]
    plots = _plots(outcome, results)
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    lines.append("")
    text = "\n".join(lines)
    (results / "STUDY.md").write_text(text)
    (results / "study.json").write_text(json.dumps(
        {"plan": plan.name, "goals": [asdict(g) for g in gs], "arms": [asdict(a) for a in outcome.arms],
         "probes": outcome.probes, "curves": {k: [asdict(p) for p in v] for k, v in outcome.curves.items()},
         "wall": outcome.wall, "notes": outcome.notes}, indent=1, default=str))
    return text
