"""A plan, run: corpora, then the job graph (``demo.run_jobs``, two at a time on a CPU), then the
selection, aggregation and report. Every job is a subprocess through a real entry point
(``launch/_launch.sh pretrain|finetune-ctc|finetune-cls``, ``python -m ds_w2v probe``,
``python -m experiments.study.hf_reference``); a finished one (its ``results.json``) is reused, so a
rerun of the same command resumes the study where it stopped.

Run directories (``--runs``, default ``runs/study``)::

    pretrain/                       ds-w2v pretrain, probe curve in metrics.jsonl
    hf_reference/                   the HF twin's plain-torch pretraining (same curve keys)
    ceiling/seed<s>/                the supervised ceiling (ceiling.py), one per seed
    ft/<task>_<init>_<N>pct/lr<lr>_seed<s>/   fine-tunes: the grid (seed 1), then the chosen lr's seeds
    probe/<upstream>_seed<s>/results.json     ds-w2v probe rows (no feature cache: ~1 GB an upstream)
    search/<variant>/               --search: one pretraining per variant
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ds_w2v.data.subset import subset_split
from ..demo import run_jobs
from . import corpora as corpora_mod
from .curves import ProbePoint, curve, probe_curve, read_metrics
from .jobs import ChosenJob, StudyJob, python_job, train_job
from .plan import PRETRAIN_RECIPE, TASKS, Arm, PretrainSpec, StudyPlan
from .selection import ArmSummary, choose_lr, grid_points, summarize_arm

CEILING = "ceiling (supervised)"
"""The probe row of the supervised ceiling: tiny trained from random init on the frame phone labels."""


@dataclass
class StudyOutcome:
    """Everything the report shows, gathered from the runs' files."""

    plan: StudyPlan
    arms: list[ArmSummary] = field(default_factory=list)
    probes: dict[str, list[dict]] = field(default_factory=dict)
    """kind (pretrained, random init, HF reference, ceiling) -> ``ds-w2v probe`` results, one per seed."""
    curves: dict[str, list[ProbePoint]] = field(default_factory=dict)
    """run name -> its probe curve during pretraining."""
    runs: dict[str, dict] = field(default_factory=dict)
    """run name -> its results.json (pretrain, hf_reference, search variants)."""
    corpora: dict[str, dict] = field(default_factory=dict)
    """corpus name -> {split: [utterances, hours]}."""
    wall: dict[str, float] = field(default_factory=dict)
    """data_s, total_s, and the sum of each kind of job's wall times."""
    notes: list[str] = field(default_factory=list)
    command: str = "bash launch/study.sh"


def _fmt_lr(lr: float) -> str:
    return f"{lr:g}"


class Study:
    def __init__(self, plan: StudyPlan, data: Path, runs: Path, results: Path, parallel: int = 2,
                 command: str = "bash launch/study.sh"):
        self.plan, self.data, self.runs, self.results = plan, Path(data), Path(runs), Path(results)
        self.parallel, self.command = parallel, command
        self.shards: dict[str, Path] = {}
        self.jobs: dict[str, Any] = {}

    # -- corpora --------------------------------------------------------------------------------
    def make_data(self) -> None:
        self.shards = corpora_mod.make_corpora(self.plan.corpora, self.data)
        for name in ("timit", "ravdess"):
            for share in self.plan.label_shares:
                if share < 1:
                    tag = f"{name}_train{100 * share:g}"
                    self.shards[tag] = subset_split(self.shards[name], self.data / "shards" / tag, share)

    def shards_for(self, arm: Arm) -> Path:
        corpus = TASKS[arm.task].corpus
        return self.shards[corpus] if arm.labels == 1 else self.shards[f"{corpus}_train{100 * arm.labels:g}"]

    # -- pretraining ----------------------------------------------------------------------------
    def pretrain_overrides(self, spec: PretrainSpec) -> list[str]:
        entries = corpora_mod.unlabeled_entries(self.shards, "timit", spec.unlabeled)
        p = self.plan.probe
        return [f"data.shards={self.shards['timit']}", f"data.train=[{','.join(entries)}]",
                f"probe.max_utterances={p.curve_utterances}", *([f"probe.epochs={p.epochs}"] if p.epochs else []),
                *spec.trainer_overrides()]

    def pretrain_job(self, spec: PretrainSpec, run_dir: Path, name: str) -> StudyJob:
        return train_job(name, "pretrain", PRETRAIN_RECIPE, run_dir, self.pretrain_overrides(spec))

    # -- fine-tunes -----------------------------------------------------------------------------
    def ft_dir(self, arm: Arm, lr: float, seed: int) -> Path:
        return self.runs / "ft" / arm.tag / f"lr{_fmt_lr(lr)}_seed{seed}"

    def ft_overrides(self, arm: Arm, lr: float, seed: int) -> list[str]:
        spec, budget = TASKS[arm.task], self.plan.budgets[arm.task]
        # from scratch every parameter trains (the demo's rule; the tiny recipes train the conv
        # encoder in every row anyway)
        init = [f"model.init={self.runs / 'pretrain'}"] if arm.init == "pretrained" \
            else ["model.overrides.feature_grad_mult=1.0"]
        return [f"data.shards={self.shards_for(arm)}", *init, *spec.overrides, f"optim.lr={_fmt_lr(lr)}",
                f"seed={seed}", f"best_metric={spec.metric}", *budget.overrides()]

    def grid_results(self, arm: Arm) -> dict[float, dict] | None:
        """lr -> results.json of the arm's grid runs, or None while one is missing."""
        out = {}
        for lr in self.plan.grid(arm):
            path = self.ft_dir(arm, lr, self.plan.seeds[0]) / "results.json"
            if not path.is_file():
                return None
            out[lr] = json.loads(path.read_text())
        return out

    def chosen_lr(self, arm: Arm) -> float | str | None:
        grid = self.grid_results(arm)
        if grid is None:
            return None
        try:
            return choose_lr(grid_points(grid), TASKS[arm.task].higher_is_better)
        except ValueError as e:
            return str(e)

    def _resolve_seed(self, arm: Arm, seed: int):
        def resolve():
            lr = self.chosen_lr(arm)
            if lr is None or isinstance(lr, str):
                return lr
            return self.ft_dir(arm, lr, seed), self.ft_overrides(arm, lr, seed)
        return resolve

    def finetune_jobs(self) -> list:
        jobs = []
        for arm in self.plan.arms:
            spec = TASKS[arm.task]
            needs = ("pretrain",) if arm.init == "pretrained" else ()
            grid = []
            for lr in self.plan.grid(arm):
                name = f"{arm.tag} lr={_fmt_lr(lr)} seed={self.plan.seeds[0]}"
                grid.append(name)
                jobs.append(train_job(name, spec.command, spec.recipe, self.ft_dir(arm, lr, self.plan.seeds[0]),
                                      self.ft_overrides(arm, lr, self.plan.seeds[0]), needs=needs))
            for seed in self.plan.seeds_for(arm)[1:]:
                jobs.append(ChosenJob(f"{arm.tag} chosen lr seed={seed}", spec.command, spec.recipe,
                                      self._resolve_seed(arm, seed), needs=tuple(grid),
                                      placeholder=self.runs / "ft" / arm.tag / f"unresolved_seed{seed}"))
        return jobs

    # -- probes ---------------------------------------------------------------------------------
    def probe_job(self, name: str, upstream: str | Callable[[], str], seed: int, needs: tuple[str, ...],
                  protocol: str = "all", corpora: tuple[str, ...] = ("timit", "ravdess"), skip=None,
                  current=None) -> StudyJob:
        """``ds-w2v probe UPSTREAM`` (``upstream`` may be a callable: decided when the job starts)."""
        p = self.plan.probe
        out = self.runs / "probe" / name

        def argv() -> list[str]:
            return ["-m", "ds_w2v", "probe", upstream() if callable(upstream) else upstream,
                    *[a for c in corpora for a in ("--data", str(self.shards[c]))],
                    "--protocol", protocol, "--max-utterances", str(p.max_utterances), "--seed", str(seed),
                    "--device", "cpu", "--out", str(out / "results.json"),
                    *(["--epochs", str(p.epochs)] if p.epochs else [])]
        return python_job(f"probe {name}", argv, out, needs=needs, skip=skip, current=current)

    def probe_jobs(self) -> list:
        jobs = []
        for s in self.plan.probe.seeds:
            jobs.append(self.probe_job(f"random_seed{s}", "random:tiny", s, ()))
            jobs.append(self.probe_job(f"pretrained_seed{s}", str(self.runs / "pretrain"), s, ("pretrain",)))
        if self.plan.hf_reference:
            hf = self.runs / "hf_reference"

            def hf_skipped():
                r = json.loads((hf / "results.json").read_text())
                return f"the HF reference run was skipped: {r['skipped']}" if r.get("skipped") else None
            jobs.append(self.probe_job(f"hf_reference_seed{self.plan.probe.seeds[0]}", str(hf / "model.pt"),
                                       self.plan.probe.seeds[0], ("hf_reference",), skip=hf_skipped))
        return jobs

    def ceiling_dir(self, seed: int) -> Path:
        return self.runs / "ceiling" / f"seed{seed}"

    def ceiling_jobs(self) -> list:
        """Per seed: the supervised ceiling (``ceiling.py``: tiny from random init, frame phone
        cross-entropy on every train utterance until dev stops improving), then its linear probe
        row, as the other upstreams' (read speech only: the bound is on the phone probe)."""
        c = self.plan.ceiling
        if c is None:
            return []
        jobs = []
        for seed in self.plan.seeds:
            run_dir = self.ceiling_dir(seed)
            train = python_job(f"ceiling seed={seed}", ["-m", "experiments.study.ceiling", "--data",
                                                        str(self.shards["timit"]), "--out", str(run_dir),
                                                        "--seed", str(seed), *c.args()], run_dir)
            jobs.append(train)
            jobs.append(self.probe_job(f"ceiling_seed{seed}", str(run_dir / "model.pt"), seed, (train.name,),
                                       protocol="linear", corpora=("timit",)))
        return jobs

    # -- the graph ------------------------------------------------------------------------------
    def build_jobs(self) -> list:
        plan = self.plan
        jobs: list = []
        if plan.search:
            for v in plan.search:
                jobs.append(self.pretrain_job(v, self.runs / "search" / v.name, f"search {v.name}"))
            self.jobs = {j.name: j for j in jobs}
            return jobs
        jobs.append(self.pretrain_job(plan.pretrain, self.runs / "pretrain", "pretrain"))
        if plan.hf_reference:
            hf = self.runs / "hf_reference"
            self._forget_skipped_hf(hf)
            argv = ["-m", "experiments.study.hf_reference", "--recipe", PRETRAIN_RECIPE,
                    *(["--stop-after", str(plan.hf_updates)] if plan.hf_updates else []),
                    *self.pretrain_overrides(plan.pretrain), f"run_dir={hf}"]
            jobs.append(python_job("hf_reference", argv, hf))
        jobs += self.ceiling_jobs()
        jobs += self.probe_jobs()
        jobs += self.finetune_jobs()
        self.jobs = {j.name: j for j in jobs}
        return jobs

    @staticmethod
    def _forget_skipped_hf(hf: Path) -> None:
        """A reference run skipped for want of transformers is run when transformers is there."""
        path = hf / "results.json"
        if path.is_file() and json.loads(path.read_text()).get("skipped"):
            try:
                import transformers  # noqa: F401
            except ImportError:
                return
            path.unlink()

    def run(self) -> StudyOutcome:
        t0 = time.time()
        self.runs.mkdir(parents=True, exist_ok=True)
        self.results.mkdir(parents=True, exist_ok=True)
        self.make_data()
        data_s = time.time() - t0
        jobs = self.build_jobs()
        print(f"[study {self.plan.name}] {len(jobs)} jobs, {self.parallel} at a time; runs in {self.runs}", flush=True)
        run_jobs(jobs, self.parallel)
        outcome = self.collect()
        outcome.wall = {**outcome.wall, "data_s": data_s, "total_s": time.time() - t0}
        return outcome

    # -- results --------------------------------------------------------------------------------
    def collect(self) -> StudyOutcome:
        plan = self.plan
        out = StudyOutcome(plan, command=self.command)
        for name, path in self.shards.items():
            index = json.loads((path / "dataset.json").read_text())
            out.corpora[name] = {s: [v["num_samples"], v["hours"]] for s, v in index["splits"].items()}
        kinds: dict[str, float] = {}

        def add_wall(kind: str, result: dict | None) -> None:
            if result:
                kinds[kind] = kinds.get(kind, 0.0) + float(result.get("wall_s", 0.0))

        if plan.search:
            for v in plan.search:
                run_dir = self.runs / "search" / v.name
                out.runs[v.name] = _read(run_dir)
                out.curves[v.name] = probe_curve(run_dir)
                dev_acc = curve(read_metrics(run_dir), "dev/acc")
                if dev_acc and out.runs[v.name]:
                    out.runs[v.name]["last_dev_acc"] = dev_acc[-1][1]
                add_wall("search", out.runs[v.name])
            out.wall = kinds
            return out
        out.runs["pretrain"] = _read(self.runs / "pretrain")
        out.curves["ds_w2v"] = probe_curve(self.runs / "pretrain")
        add_wall("pretrain", out.runs["pretrain"])
        if plan.ceiling is not None:
            out.runs["ceiling"] = {str(s): _read(self.ceiling_dir(s)) for s in plan.seeds}
            for r in out.runs["ceiling"].values():
                add_wall("ceiling", r)
        if plan.hf_reference:
            out.runs["hf_reference"] = _read(self.runs / "hf_reference")
            add_wall("hf_reference", out.runs["hf_reference"])
            if out.runs["hf_reference"].get("skipped"):
                out.notes.append(f"HF reference: skipped ({out.runs['hf_reference']['skipped']}).")
            else:
                out.curves["HF Wav2Vec2ForPreTraining"] = probe_curve(self.runs / "hf_reference")
        for arm in plan.arms:
            spec = TASKS[arm.task]
            grid = self.grid_results(arm) or {}
            lr = self.chosen_lr(arm)
            seed_runs = {}
            if isinstance(lr, float):
                for seed in plan.seeds_for(arm)[1:]:
                    seed_runs[seed] = _read(self.ft_dir(arm, lr, seed))
            try:
                summary = summarize_arm(arm, spec.metric, spec.higher_is_better, grid, seed_runs, plan.seeds[0])
            except ValueError as e:
                out.notes.append(f"{arm.name}: no chosen lr ({e}).")
                continue
            out.arms.append(summary)
            kinds["fine-tunes"] = kinds.get("fine-tunes", 0.0) + summary.wall_s
        seeds = plan.probe.seeds
        for kind, names in (("pretrained", [f"pretrained_seed{s}" for s in seeds]),
                            ("random init", [f"random_seed{s}" for s in seeds]),
                            ("HF reference", [f"hf_reference_seed{seeds[0]}"] if plan.hf_reference else []),
                            (CEILING, [f"ceiling_seed{s}" for s in plan.seeds])):
            results = []
            for name in names:
                r = _read(self.runs / "probe" / name)
                add_wall("probes", r)
                if r.get("skipped"):
                    out.notes.append(f"probe {kind}: skipped ({r['skipped']}).")
                elif r:
                    results.append(r)
            if results:
                out.probes[kind] = results
        out.wall = kinds
        return out


def _read(run_dir: Path) -> dict:
    path = Path(run_dir) / "results.json"
    return json.loads(path.read_text()) if path.is_file() else {}

