"""The study's plan, typed: which corpora, which pretraining, which fine-tune arms with which
learning-rate grid, seeds and budgets, which probes. Nothing here runs anything; ``runner.py``
turns a plan into jobs, ``estimate`` turns it into minutes.

Three plans ship: :func:`quick_plan` (minutes; the test runs it end to end), :func:`default_plan`
(~2.5-3 h on 2 CPU cores, ~1.5 h rerun: ``bash launch/study.sh``) and :func:`search_plan` (``--search``: the
small recorded search over pretraining settings, one factor at a time around the tiny recipe).

Fairness rules every plan keeps (issue 12, item 4): within a task every arm (pretrained / random
init x 100 % / 10 % labels) has the same recipe, updates and audio per update; each arm's lr is
chosen by its own dev metric (seed ``seeds[0]``) from a grid of the same size (one grid per task,
or one per init where the inits' optima lie apart: the same tuning effort, each where its
optimum is), then the chosen lr runs again with the other seeds; test is read only from the
chosen runs.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Mapping


@dataclass(frozen=True)
class TaskSpec:
    """A fine-tuning task of the study: a trainer command on one of the corpora."""

    name: str
    command: str
    """The ``ds-w2v`` sub-command (``finetune-ctc``, ``finetune-cls``)."""
    recipe: str
    corpus: str
    """``timit`` (read speech) or ``ravdess`` (emotion): a key of :class:`Corpora`' shard dirs."""
    metric: str
    """The dev metric choosing the lr and checkpoint, and the test metric reported (results.json)."""
    higher_is_better: bool
    overrides: tuple[str, ...] = ()


TASKS: dict[str, TaskSpec] = {
    "chars": TaskSpec("chars", "finetune-ctc", "finetune_ctc_tiny", "timit", "cer", False),
    "phones": TaskSpec("phones", "finetune-ctc", "finetune_ctc_tiny", "timit", "per", False, ("data.target=phones",)),
    "emotion": TaskSpec("emotion", "finetune-cls", "finetune_cls_tiny", "ravdess", "acc", True),
}
INITS = ("pretrained", "random")
PRETRAIN_RECIPE = "pretrain_tiny"


@dataclass(frozen=True)
class Arm:
    """One row of the ablation: a task, an initialisation, a share of the labelled utterances."""

    task: str
    init: str
    labels: float
    """Share of the train utterances kept (1.0 or 0.1; dev and test stay whole)."""

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"arm task {self.task!r} is not one of {', '.join(TASKS)}")
        if self.init not in INITS:
            raise ValueError(f"arm init {self.init!r} is not one of {', '.join(INITS)}")
        if not 0 < self.labels <= 1:
            raise ValueError(f"arm labels {self.labels} is not a share in (0, 1]")

    @property
    def pct(self) -> str:
        return f"{100 * self.labels:g} %"

    @property
    def name(self) -> str:
        return f"{self.task}, {self.init}, {self.pct}"

    @property
    def tag(self) -> str:
        """A file-name form of :attr:`name`: ``phones_random_10pct``."""
        return f"{self.task}_{self.init}_{100 * self.labels:g}pct"


@dataclass(frozen=True)
class FinetuneBudget:
    """Updates and audio per update of every run of a task (the same for all its arms)."""

    updates: int
    batch_s: float
    """Audio-seconds per update, one micro-batch (global_batch_s = data.batch_s)."""
    evals: int = 4
    """Dev evaluations per run, evenly spaced; the best one's checkpoint is scored on test."""

    def overrides(self) -> list[str]:
        every = max(1, self.updates // self.evals)
        return [f"max_updates={self.updates}", f"global_batch_s={self.batch_s:g}", f"data.batch_s={self.batch_s:g}",
                f"eval_every={every}", f"save_every={every}", "log_every=10", "keep_last=1"]


@dataclass(frozen=True)
class PretrainSpec:
    """One self-supervised pretraining run of tiny, probed every ``probe_every`` updates."""

    name: str
    updates: int
    probe_every: int
    batch_s: float = 32.0
    """Audio-seconds per update (two 16 s micro-batches, as pretrain_tiny)."""
    warmup: int = 50
    overrides: tuple[str, ...] = ()
    """Recipe changes (``model.overrides.mask_prob=0.5``): the search's variants."""
    unlabeled: tuple[str, ...] = ("extra",)
    """Unlabelled corpora mixed with the labelled read speech's train split (:class:`Corpora`)."""
    note: str = ""
    base: str = "base"
    """--search: the variant this one is compared with (its round's starting point)."""

    def trainer_overrides(self) -> list[str]:
        return [f"max_updates={self.updates}", f"global_batch_s={self.batch_s:g}", f"data.batch_s={self.batch_s / 2:g}",
                f"schedule.warmup_updates={self.warmup}", f"probe_every={self.probe_every}",
                f"eval_every={self.probe_every}", f"save_every={self.probe_every}", "keep_last=1", *self.overrides]


@dataclass(frozen=True)
class UnlabeledSet:
    """Extra read speech for pretraining only: a TIMIT-layout synthesis with its own seed (other
    voices and sentences than the labelled set), every split of it used as unlabelled audio."""

    name: str
    speakers: int
    sentences_per_speaker: int
    seed: int


@dataclass(frozen=True)
class Corpora:
    """What ``ds-w2v synth`` makes: the labelled read speech (TIMIT layout), the unlabelled
    sets, the emotion corpus (RAVDESS layout)."""

    timit_speakers: int | None = None
    """None: ``timit_hours`` (the demo's 2 h, 215 speakers, ~1 h of train)."""
    timit_hours: float = 2.0
    unlabeled: tuple[UnlabeledSet, ...] = (UnlabeledSet("extra", 600, 6, 1),)
    ravdess_actors: str | None = None
    """None: all 24 actors (18 train, 2 dev, 4 test)."""


@dataclass(frozen=True)
class ProbeSpec:
    """The probe rows (``ds-w2v probe``) and the curve during pretraining."""

    max_utterances: int = 300
    """Per split of each corpus for the ``ds-w2v probe`` rows (train fits, test scores; PR/ER's
    epochs chosen on dev)."""
    seeds: tuple[int, ...] = (0, 1)
    """Probe seeds; for ``random:tiny`` also the weights' seed (two random-init models)."""
    curve_utterances: int = 60
    """``probe.max_utterances`` of the curve during pretraining (train -> dev frames)."""
    epochs: int | None = None
    """None: each protocol's own."""


@dataclass(frozen=True)
class CeilingSpec:
    """The supervised ceiling (``ceiling.py``): the tiny architecture trained from random init on
    the frame phone labels of every train utterance, one run per seed of :attr:`StudyPlan.seeds`,
    stopped when its dev frame accuracy has not improved for ``patience`` evaluations."""

    max_updates: int = 4000
    eval_every: int = 100
    patience: int = 5
    lr: float = 1e-3
    """One lr, not a grid: the run is an upper bound for the probe rows, not an arm compared with
    another; a too low bound would show as a ceiling below the pretrained row (the report says so)."""
    batch_s: float = 8.0

    def args(self) -> list[str]:
        return ["--max-updates", str(self.max_updates), "--eval-every", str(self.eval_every),
                "--patience", str(self.patience), "--lr", f"{self.lr:g}", "--batch-s", f"{self.batch_s:g}"]


@dataclass(frozen=True)
class StudyPlan:
    name: str
    corpora: Corpora
    pretrain: PretrainSpec
    budgets: Mapping[str, FinetuneBudget]
    lrs: Mapping[str, tuple[float, ...] | Mapping[str, tuple[float, ...]]]
    """The lr grid of each task: one for every arm of the task, or grids of one size keyed by an
    init (``"random"``) or an init and label share (``"pretrained 10 %"``, before the init's):
    :meth:`grid`."""
    seeds: tuple[int, ...] = (1, 2)
    """The grid runs with ``seeds[0]``; the chosen lr runs again with each of the others."""
    low_label_seeds: tuple[int, ...] = ()
    """More seeds for the chosen lr of the arms with part of the labels, whose runs spread most
    (:meth:`seeds_for`)."""
    tasks: tuple[str, ...] = tuple(TASKS)
    inits: tuple[str, ...] = INITS
    label_shares: tuple[float, ...] = (1.0, 0.1)
    probe: ProbeSpec = field(default_factory=ProbeSpec)
    hf_reference: bool = True
    """A plain-torch pretraining of HF's Wav2Vec2ForPreTraining on the same recipe and stream."""
    hf_updates: int | None = None
    """The HF reference's first that many updates of the pretraining's schedule (None: all of
    it, the equal budget the probe table compares at): it runs ~2x slower than ours on a CPU, ~4x
    with 2 x 320 codes (:class:`Timings`)."""
    ceiling: CeilingSpec | None = field(default_factory=CeilingSpec)
    """The supervised ceiling of the probe rows (None: none)."""
    search: tuple[PretrainSpec, ...] = ()
    """``--search``: pretraining variants probed side by side (no fine-tunes)."""

    def __post_init__(self) -> None:
        for task in self.tasks:
            if task not in self.budgets or not self.lrs.get(task):
                raise ValueError(f"plan {self.name}: task {task} needs a budget and a non-empty lr grid")
            arms = [a for a in self.arms if a.task == task]
            missing = [a.name for a in arms if not self.grid(a)]
            if missing:
                raise ValueError(f"plan {self.name}: no lr grid for {'; '.join(missing)}")
            if len({len(self.grid(a)) for a in arms}) > 1:
                raise ValueError(f"plan {self.name}: task {task}'s lr grids differ in size "
                                 "(each arm gets the same tuning effort)")
        if not self.seeds:
            raise ValueError(f"plan {self.name}: no seeds")
        if set(self.low_label_seeds) & set(self.seeds):
            raise ValueError(f"plan {self.name}: low_label_seeds repeat a seed of seeds")

    def grid(self, arm: Arm) -> tuple[float, ...]:
        """The lrs ``arm`` is tuned over: its task's grid, or the one of its init and label share,
        or else of its init (empty: none given)."""
        grids = self.lrs[arm.task]
        if not isinstance(grids, Mapping):
            return tuple(grids)
        return tuple(grids.get(f"{arm.init} {arm.pct}") or grids.get(arm.init) or ())

    def seeds_for(self, arm: Arm) -> tuple[int, ...]:
        """The seeds of ``arm``'s chosen lr: :attr:`seeds`, plus :attr:`low_label_seeds` when the
        arm keeps part of the labels."""
        return self.seeds + (self.low_label_seeds if arm.labels < 1 else ())

    @property
    def arms(self) -> list[Arm]:
        return [Arm(t, i, s) for t, s, i in itertools.product(self.tasks, self.label_shares, self.inits)]

    @property
    def num_finetunes(self) -> int:
        return sum(len(self.grid(a)) + len(self.seeds_for(a)) - 1 for a in self.arms)


# --- the plans ---------------------------------------------------------------------------------
def quick_plan() -> StudyPlan:
    """Minutes on 2 cores: small corpora, every kind of job once with tiny budgets, 1 lr, 2 seeds
    (so the spread code runs), the HF reference included. Its numbers mean nothing."""
    return StudyPlan(
        name="quick",
        corpora=Corpora(timit_speakers=30, unlabeled=(UnlabeledSet("extra", 40, 4, 1),), ravdess_actors="1,19,21"),
        pretrain=PretrainSpec("pretrain", updates=6, probe_every=3, batch_s=16.0, warmup=2),
        budgets={t: FinetuneBudget(updates=3, batch_s=8.0, evals=1) for t in TASKS},
        lrs={"chars": (2e-3,), "phones": (2e-3,), "emotion": (1e-3,)},
        seeds=(1, 2),
        probe=ProbeSpec(max_utterances=12, seeds=(0,), curve_utterances=8, epochs=2),
        ceiling=CeilingSpec(max_updates=4, eval_every=2, patience=1),
    )


# Measured on 2 CPU cores (2026-12-01, two runs side by side, one torch thread each, bf16; the
# figures of :class:`Timings`): pretraining 0.65 s per 32 audio-s update, a curve probe 5-6 s
# (60 + 60 utterances); fine-tuning at 8 audio-s per update 0.30 s (CTC) and 0.28 s
# (classification); a run's start-up ~12 s; a dev evaluation 3-5 s; the HF reference 2.3 s per
# 32 audio-s update; a `ds-w2v probe` row 128 s. What the fine-tune budgets buy (random init,
# finetune_ctc_tiny at lr 2e-3): phones leave the all-blank plateau after ~2,000 audio-s (dev
# PER 98 % at update 200, 78 % at 250, 75 % at 400 of 8 s updates); characters had not left it
# after 3,200 audio-s (400 x 8 s: dev CER 100 %) nor 4,000 (250 x 16 s), so their rows may stay
# at 100 % CER from random init at this budget -- the demo's 9,600 audio-s reach 72 %.
def default_plan() -> StudyPlan:
    """``bash launch/study.sh``: on 2 CPU cores ~140 min the first time by this estimate (the run
    of 2026-12-07 took ~170: its pretraining and HF reference ran slower side by side than the
    figures below), ~85-95 min for a rerun that reuses the HF reference and the ceilings (they
    depend on no fine-tune). ``estimate`` (``python -m experiments.study --estimate``) from the
    figures above, in run-slot minutes:

        pretraining   2,000 x 32 s x 0.9/32 s/s = 30.0 + 11 probes x 6 s + 10 evals x 4 s     = 32.0
        HF reference  2,000 x 32 s x 0.9/32 x 1.7 = 51.0 + 11 probes x 12 s + start-up       = 53.4
        ceilings      2 x (4,000 x 8 s x 0.43/8 s/s = 28.7 + 40 evals x 4 s + start-up)       = 63.1
        fine-tunes    per arm 3 lrs + 1 seed (10 % of the labels: 2) = 4 or 5 runs; per run 12 s
                      + 5 evals x 4 s + chars / phones 400 x 8 s x 0.30/8 = 120 s (2.5 min),
                      emotion 250 x 8 s x 0.28/8 = 70 s (1.7 min); 18 runs each:
                      45.6 + 45.6 + 30.6                                                     = 121.8
        probe rows    (2 pretrained + 2 random + 1 HF) x 128 s + 2 ceilings x 51 s            =  12.4
        total 282.6 slot-min / 2 slots + 1 min of corpora                                    = ~142 min
        (without the HF reference and the ceilings: 166.2 / 2 + 1                            = ~84 min)

    Measured, 2026-12-07 (results/STUDY.md, "Wall time"): 5:37:36 of job time, ~2:49 on two
    slots: pretraining 55 min, HF reference (fp32) 89, ceilings 62, fine-tunes 120, probes 11;
    without the HF reference and the ceilings ~93 min. The run of 2026-12-03 (HF reference 300
    updates, no supervised ceiling) took 2:49:21 of job time, ~85 min on two slots.
    """
    return StudyPlan(
        name="default",
        corpora=Corpora(),
        # 2,000 updates x 32 audio-s = 17.8 h of audio seen (the demo: 300 updates, 2.7 h): where the
        # search's run of the recipe to 4,000 updates levelled off (results/SEARCH.md)
        pretrain=PretrainSpec("pretrain", updates=2000, probe_every=200, warmup=100),
        # 8 audio-s updates: at equal audio, twice the updates of 16 s ones for the same compute
        budgets={"chars": FinetuneBudget(updates=400, batch_s=8.0),
                 "phones": FinetuneBudget(updates=400, batch_s=8.0),
                 "emotion": FinetuneBudget(updates=250, batch_s=8.0)},
        # Factor-2 grids of three lrs for every arm, each placed around its own optimum on dev:
        # the same tuning effort, and a rerun stays near 90 min (one grid of five or six for every
        # arm would cost +20-30 min). The 2026-12-03 runs placed them: the grids around the tiny
        # recipes' lrs (CTC 1e-3..4e-3, emotion 5e-4..2e-3) bracket random init's optimum (or
        # all of it is on the blank / chance plateau), but every pretrained arm chose their
        # lowest lr, its higher lrs staying on the plateau (dev CER 100 %, PER 95 %, accuracy
        # 13 %); one step down, phones and emotion with 10 % of the labels chose the lowest again
        lrs={"chars": {"pretrained": (5e-4, 1e-3, 2e-3), "random": (1e-3, 2e-3, 4e-3)},
             "phones": {"pretrained": (2.5e-4, 5e-4, 1e-3), "random": (1e-3, 2e-3, 4e-3)},
             "emotion": {"pretrained 10 %": (1.25e-4, 2.5e-4, 5e-4), "pretrained": (2.5e-4, 5e-4, 1e-3),
                         "random": (1e-3, 2e-3, 4e-3)}},
        seeds=(1, 2),
        # 10 % of the labels: the two seeds' test PER differed by 13-27 points (2026-12-03)
        low_label_seeds=(3,),
        probe=ProbeSpec(max_utterances=300, seeds=(0, 1)),
        # the HF reference runs the whole 2,000-update schedule (~2x ours per update, Timings): a
        # row beside ours in the probe table is a comparison only at the same budget
    )


SEARCH_BASE = ("model.overrides.latent_temp=[2.0,0.5,0.99]", "model.overrides.latent_vars=320")
"""The search's starting point: pretrain_tiny before the search chose decay 0.999 (2 -> 0.5 by
update ~140) and 2 x 64 codes (tiny's preset: 2 x 320)."""


def search_plan(updates: int = 800, probe_every: int = 100) -> StudyPlan:
    """``--search``: one factor at a time around the tiny recipe (``base``), each variant one
    pretraining of ``updates`` with its probe curve; ranked by the last probe (dev frames)."""
    base = default_plan()
    # The search's base is the tiny recipe as it was searched (2026-12-03), pinned, so that the
    # recorded runs stay what they were when the recipe takes the winner (its decay is now 0.999)
    p = PretrainSpec("base", updates=updates, probe_every=probe_every, warmup=100, overrides=SEARCH_BASE)
    # BASE's seven conv layers (kernel, stride) at 256 channels (tiny: 128)
    kernels = ((10, 5), (3, 2), (3, 2), (3, 2), (3, 2), (2, 2), (2, 2))
    wide_conv = "[" + ",".join(f"[256,{k},{s}]" for k, s in kernels) + "]"

    def variant(spec: PretrainSpec, **changes) -> PretrainSpec:
        return replace(spec, **{**changes, "overrides": spec.overrides + changes.get("overrides", ())})

    variants = [
        p,
        variant(p, name="lr5e-4", overrides=("optim.lr=5.0e-4",)),
        variant(p, name="lr2e-3", overrides=("optim.lr=2.0e-3",)),
        variant(p, name="warmup25", warmup=25),
        variant(p, name="warmup300", warmup=300),
        variant(p, name="mask0.5x5", overrides=("model.overrides.mask_prob=0.5", "model.overrides.mask_length=5")),
        variant(p, name="mask0.8x10", overrides=("model.overrides.mask_prob=0.8",)),
        variant(p, name="codebook2x64", overrides=("model.overrides.latent_vars=64",)),
        variant(p, name="codebook1x320", overrides=("model.overrides.latent_groups=1",)),
        variant(p, name="codedim256", overrides=("model.overrides.latent_dim=256", "model.overrides.final_dim=256")),
        variant(p, name="negatives20", overrides=("model.overrides.num_negatives=20",)),
        variant(p, name="negatives50", overrides=("model.overrides.num_negatives=50",)),
        variant(p, name="featgrad1.0", overrides=("model.overrides.feature_grad_mult=1.0",)),
        # base anneals 2 -> 0.5 by update ~140 (decay 0.99); slower: by ~1,390; BASE's: never here
        variant(p, name="gumbel0.999", overrides=("model.overrides.latent_temp=[2.0,0.5,0.999]",)),
        variant(p, name="gumbel_base", overrides=("model.overrides.latent_temp=[2.0,0.5,0.999995]",)),
        variant(p, name="conv256", overrides=(f"model.overrides.conv_layers={wide_conv}",)),
        variant(p, name="labelled_only", unlabeled=()),
        variant(p, name="more_speakers", unlabeled=("extra", "extra_more")),
    ]
    # Round 2 (2026-12-03): around round 1's winner, the recipe since (decay 0.999, pinned so the
    # runs stay what they were): its run to 5x the updates (is the curve still rising, and where
    # does it go?), the next two winners on top of it alone and together, more speakers, fewer
    # negatives. The long run decays its lr over 4,000 updates, so at update 800 it is not the
    # 800-update run; the report compares variants at the updates they share.
    g = next(v for v in variants if v.name == "gumbel0.999")
    variants += [
        variant(g, name="long4000", updates=4000, probe_every=200, base="gumbel0.999"),
        variant(g, name="g999+lr5e-4", overrides=("optim.lr=5.0e-4",), base="gumbel0.999"),
        variant(g, name="g999+mask0.5x5", base="gumbel0.999",
                overrides=("model.overrides.mask_prob=0.5", "model.overrides.mask_length=5")),
        variant(g, name="g999+lr5e-4+mask0.5x5", base="gumbel0.999",
                overrides=("optim.lr=5.0e-4", "model.overrides.mask_prob=0.5", "model.overrides.mask_length=5")),
        variant(g, name="g999+more_speakers", unlabeled=("extra", "extra_more"), base="gumbel0.999"),
        variant(g, name="g999+negatives20", overrides=("model.overrides.num_negatives=20",), base="gumbel0.999"),
        # long4000 levels off at ~50 % from update ~2,000 (lr still at half its peak): capacity?
        variant(g, name="g999+conv256", overrides=(f"model.overrides.conv_layers={wide_conv}",), base="gumbel0.999"),
        variant(g, name="g999+codebook2x64", overrides=("model.overrides.latent_vars=64",), base="gumbel0.999"),
        # long4000's codebook: code perplexity 38-46 of 640 from update 2,000 (the probe's plateau);
        # BASE's diversity weight 0.1 may be too weak at this size
        variant(g, name="g999+diversity1.0", overrides=("model.overrides.diversity_weight=1.0",), base="gumbel0.999"),
    ]
    # 2 x 64 codes led round 2 by update 400 (44.6 % vs 39.4 %): is it a faster start or a higher
    # plateau? The same run to 2,000 updates, where long4000 had levelled off (50.1 %)
    c = next(v for v in variants if v.name == "g999+codebook2x64")
    variants.append(variant(c, name="codebook2x64_long2000", updates=2000, probe_every=200, base=c.name))
    corpora = replace(base.corpora, unlabeled=(*base.corpora.unlabeled, UnlabeledSet("extra_more", 1200, 6, 2)))
    return replace(base, name="search", corpora=corpora, search=tuple(variants), hf_reference=False, ceiling=None)


def select_variants(plan: StudyPlan, names: list[str]) -> StudyPlan:
    """``--search --variants a,b``: only those variants, in the plan's order, and only the
    unlabelled sets they read (an unused set is not synthesised)."""
    known = [v.name for v in plan.search]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ValueError(f"{unknown or 'none given'}: not among {', '.join(known)}")
    chosen = tuple(v for v in plan.search if v.name in names)
    used = {u for v in chosen for u in v.unlabeled}
    corpora = replace(plan.corpora, unlabeled=tuple(u for u in plan.corpora.unlabeled if u.name in used))
    return replace(plan, search=chosen, corpora=corpora)


PLANS = {"quick": quick_plan, "default": default_plan, "search": search_plan}


# --- cost ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Timings:
    """Measured seconds on 2 CPU cores, one torch thread per run, two runs side by side (the
    comment above :func:`default_plan`). Per-update figures scale with the audio per update."""

    pretrain_update_per_audio_s: float = 0.9 / 32
    """0.65 s per 32 audio-s update measured alone for a few hundred updates (2026-12-01); the
    study's and search's runs side by side took 0.85-1.0 s (the search: 742-825 s per 800-update
    variant with its 9 probes and evaluations, 2026-12-03). The study of 2026-12-07 took 1.54 s
    (3,078 s for 2,000 updates) beside the fp32 HF reference: the other slot's job moves this
    figure by half."""
    ctc_update_per_audio_s: float = 0.30 / 8
    cls_update_per_audio_s: float = 0.28 / 8
    hf_over_ours: float = 1.7
    """HF's Wav2Vec2ForPreTraining in ``hf_reference.py`` (bf16 autocast, fp32 weights) vs ours
    under DeepSpeed bf16, side by side in the study. With 2 x 64 codes (the recipe since
    2026-12-03): 1.71 s per 32 audio-s update (513 s of training for 300 updates) against ours'
    0.92 s, ~2x. With 2 x 320 codes it was ~4x (3.7 s per update, 1,474 s for 400): HF scores
    every frame against its negatives where ours scores the masked ones, and the codebook's
    size multiplies that. At 2,000 updates side by side (2026-12-07, the reference in fp32, ours
    bf16): 5,223 s of training against 3,078 s, 1.7x."""
    curve_probe_s: float = 6.0
    startup_s: float = 12.0
    eval_s: float = 4.0
    probe_row_s: float = 128.0
    """One ``ds-w2v probe`` row of tiny, 300 utterances per split of both corpora (features ~80 s
    of it, then linear + PR + ER), measured alone; a ceiling row (linear protocol, read speech
    only) ~40 % of it."""
    ceiling_update_per_audio_s: float = 0.43 / 8
    """The supervised ceiling (frame cross-entropy, conv encoder training): 1,870 s and 1,807 s
    of training for 4,000 updates of 8 audio-s with 40 evaluations, beside fine-tunes, one thread
    (2026-12-07)."""
    ceiling_updates: int = 4000
    """What a ceiling run takes before its dev accuracy stops improving: both runs of 2026-12-07
    reached ``max_updates`` (4,000) first."""
    data_s: float = 60.0
    """Synthesis + preparation of the default corpora (2 h + 2.2 h of read speech, RAVDESS)."""


def estimate(plan: StudyPlan, t: Timings = Timings(), slots: int = 2) -> dict[str, float]:
    """Seconds of each part of ``plan`` in run-slot time, and the wall time on ``slots`` side by
    side (run-slot total / slots, plus the data, which runs first with every core); ``rerun_wall_s``:
    the same without the HF reference and the ceilings, which a later invocation reuses."""
    pt = plan.pretrain
    pt_probes = pt.updates // pt.probe_every + 1
    pretrain_s = (t.startup_s + pt.updates * pt.batch_s * t.pretrain_update_per_audio_s + pt_probes * t.curve_probe_s
                  + (pt_probes - 1) * t.eval_s)
    hf_updates = min(plan.hf_updates or pt.updates, pt.updates)
    hf_s = (hf_updates * pt.batch_s * t.pretrain_update_per_audio_s * t.hf_over_ours
            + (hf_updates // pt.probe_every + 1) * 2 * t.curve_probe_s + t.startup_s) if plan.hf_reference else 0.0
    per_update = {"finetune-ctc": t.ctc_update_per_audio_s, "finetune-cls": t.cls_update_per_audio_s}
    finetune_s = 0.0
    for arm in plan.arms:
        b, task = plan.budgets[arm.task], TASKS[arm.task]
        run_s = t.startup_s + b.updates * b.batch_s * per_update[task.command] + (b.evals + 1) * t.eval_s
        finetune_s += run_s * (len(plan.grid(arm)) + len(plan.seeds_for(arm)) - 1)
    search_s = sum(t.startup_s + v.updates * v.batch_s * t.pretrain_update_per_audio_s
                   + (v.updates // v.probe_every + 1) * (t.curve_probe_s + t.eval_s) for v in plan.search)
    if plan.search:  # the search plan runs only its variants
        pretrain_s = hf_s = finetune_s = 0.0
    c = plan.ceiling
    ceiling = len(plan.seeds) if c is not None and not plan.search else 0
    ceiling_updates = min(t.ceiling_updates, c.max_updates) if c else 0
    ceiling_s = ceiling * (t.startup_s + ceiling_updates * c.batch_s * t.ceiling_update_per_audio_s
                           + ceiling_updates // c.eval_every * t.eval_s) if c else 0.0
    row_s = t.startup_s + (t.probe_row_s - t.startup_s) * plan.probe.max_utterances / 300  # measured at 300
    probes_s = 0.0 if plan.search else row_s * (2 * len(plan.probe.seeds) + bool(plan.hf_reference)) \
        + 0.4 * row_s * ceiling
    slot_s = pretrain_s + hf_s + finetune_s + ceiling_s + probes_s + search_s
    return {"data_s": t.data_s, "pretrain_s": pretrain_s, "hf_reference_s": hf_s, "finetune_s": finetune_s,
            "ceiling_s": ceiling_s, "probes_s": probes_s, "search_s": search_s, "slot_s": slot_s, "wall_s": t.data_s + slot_s / slots,
            # the HF reference and the ceilings depend on no fine-tune: run once, they are reused
            # by every later invocation (a study rerun after a change to the fine-tunes)
            "rerun_wall_s": t.data_s + (slot_s - hf_s - ceiling_s) / slots}
