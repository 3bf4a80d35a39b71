"""STUDY.md from hand-made outcomes: the goals' PASS / MISS come from the figures
(flip a figure, the verdict flips), rows show mean ± spread and n, the plots are written."""
import dataclasses

import pytest

from experiments.study.curves import ProbePoint
from experiments.study.goals import CPC_SHARE, headroom_goal, per_goal, probe_goal
from experiments.study.plan import Arm, default_plan
from experiments.study.report import write_study
from experiments.study.runner import CEILING, StudyOutcome
from experiments.study.selection import summarize_arm


def probe_result(linear, per=None, er=None):
    timit = {"linear": {"best_acc": linear, "best_layer": "layer2", "majority_acc": 0.30,
                        "layers": {"conv": linear - 0.05, "layer2": linear}}}
    if per is not None:
        timit["pr"] = {"per": per}
    out = {"datasets": {"shards/timit": timit}, "wall_s": 50.0}
    if er is not None:
        out["datasets"]["shards/ravdess"] = {"er": {"acc": er, "chance": 0.125}}
    return out


def arm(task, init, labels, tests, metric="per", higher=False):
    grid = {1e-3: {"best_dev": 0.9, "test": {metric: 0.0}}, 2e-3: {"best_dev": 0.5, "test": {metric: tests[0]},
                                                                  "wall_s": 60.0}}
    seeds = {2 + i: {"best_dev": 0.5, "test": {metric: t}, "wall_s": 60.0} for i, t in enumerate(tests[1:])}
    return summarize_arm(Arm(task, init, labels), metric, higher, grid, seeds, grid_seed=1)


def outcome(pre_probe=(0.62, 0.60), rnd_probe=(0.40, 0.42), pre_per=(0.50, 0.54), rnd_per=(0.80, 0.84)):
    plan = dataclasses.replace(default_plan(), tasks=("phones",))
    o = StudyOutcome(plan)
    o.arms = [arm("phones", "pretrained", 1.0, (0.40, 0.44)), arm("phones", "random", 1.0, (0.60, 0.64)),
              arm("phones", "pretrained", 0.1, pre_per), arm("phones", "random", 0.1, rnd_per)]
    o.probes = {"pretrained": [probe_result(a, per=0.6, er=0.5) for a in pre_probe],
                "random init": [probe_result(a, per=0.9, er=0.2) for a in rnd_probe],
                CEILING: [probe_result(0.81), probe_result(0.79)]}
    o.curves = {"ds_w2v": [ProbePoint(0, 0.40, 1), ProbePoint(100, 0.45, 2), ProbePoint(200, 0.50, 3)]}
    o.corpora = {"timit": {"train": [1136, 1.04], "dev": [128, 0.12]}}
    o.runs = {"ceiling": {"1": {"seed": 1, "updates": 1500, "stopped": "patience", "dev_frame_acc": 0.83,
                                "best_update": 1000, "wall_s": 600.0},
                          "2": {"seed": 2, "updates": 1700, "stopped": "patience", "dev_frame_acc": 0.82,
                                "best_update": 1200, "wall_s": 640.0}},
              "pretrain": {"updates": 2000}, "hf_reference": {"updates": 2000}}
    o.wall = {"pretrain": 900.0, "fine-tunes": 3000.0, "data_s": 60.0, "total_s": 4000.0}
    return o


def test_goals_are_computed_from_the_figures():
    o = outcome()
    assert probe_goal(o.probes["pretrained"], o.probes["random init"]).verdict == "PASS"  # 61 - 41 = 20 points
    assert per_goal(o.arms).verdict == "PASS" and per_goal(o.arms).value == pytest.approx(0.52 / 0.82)
    o = outcome(pre_probe=(0.50, 0.52), pre_per=(0.70, 0.74))
    assert probe_goal(o.probes["pretrained"], o.probes["random init"]).verdict == "MISS"  # 10 points
    assert per_goal(o.arms).verdict == "MISS"  # 0.72 / 0.82 = 0.88
    assert per_goal([]).verdict == "n/a" and probe_goal([], []).verdict == "n/a"


def test_the_headroom_share_needs_a_ceiling_that_bounds():
    o = outcome()  # pretrained 61, random 41, ceiling 80: (61 - 41) / (80 - 41) = 51 %
    g = headroom_goal(o.probes["pretrained"], o.probes["random init"], o.probes[CEILING])
    assert g.value == pytest.approx(20 / 39) and g.verdict == "MISS" and "= 51 %" in g.measured
    g = headroom_goal(o.probes["pretrained"], o.probes["random init"], [probe_result(0.70)])
    assert g.value == pytest.approx(20 / 29) and g.verdict == "PASS"  # 69 % >= 60 %
    # a "ceiling" at or below the pretrained model bounds nothing: no share, no verdict
    g = headroom_goal(o.probes["pretrained"], o.probes["random init"], [probe_result(0.58)])
    assert g.verdict == "n/a" and "does not bound" in g.measured
    assert headroom_goal(o.probes["pretrained"], o.probes["random init"], []).verdict == "n/a"
    assert CPC_SHARE == pytest.approx((0.646 - 0.276) / (0.746 - 0.276))


def test_study_md(tmp_path):
    text = write_study(outcome(pre_probe=(0.50, 0.52)), tmp_path)
    assert (tmp_path / "STUDY.md").read_text() == text
    # goals: computed verdicts in the table
    assert "| linear phone probe |" in text and "**MISS**" in text and "**PASS**" in text
    assert "51.0 % - 41.0 % = +10.0 points" in text
    assert "The probe goal is missed by 5.0 points after 200 updates" in text
    # probe rows with n and spread, the ceiling beside them
    assert "| pretrained | 2 | 51.0 ± 1.4 % [50.0..52.0] (n=2) | layer2 |" in text
    assert f"| {CEILING} | 2 | 80.0 ± 1.4 % [79.0..81.0] (n=2)" in text
    # the goal read both ways: the absolute gain and the share of the headroom, beside CPC's
    assert "| headroom closed |" in text and "(51.0 - 41.0) / (80.0 - 41.0) = 26 %" in text
    assert "Headroom closed on test: (51.0 % - 41.0 %) / (80.0 % - 41.0 %) = 26 %; CPC" in text and "= 79 %" in text
    assert "seed 1: 1500 updates (stopped by patience; best dev frame accuracy 83.0 % at update 1000" in text
    assert "HF reference pretraining (the same 2000 updates" in text
    # fine-tune rows: grid, chosen lr, dev and test spread over seeds
    # its lr is the grid's top and beats the one below: marked, the best lr may lie beyond the grid
    assert "| pretrained | 10 % | 0.001: 90.0 %, 0.002: 50.0 % | **0.002** ‡ (highest) | 50.0 ± 0.0 % [50.0..50.0] " \
           "(n=2) | 52.0 ± 2.8 % [50.0..54.0] (n=2) |" in text
    assert "‡ the chosen lr is the grid's lowest or highest" in text
    assert "10 % of the labels: pretrained / random init test PER = 0.63" in text
    assert "0: 40.0 %, 100: 45.0 %, 200: 50.0 %" in text  # the curve
    assert "**job times summed: 1:05:00**; on two run slots side by side, ~0:32:30" in text
    assert "- this invocation: 1:06:40" in text and "bash launch/study.sh" in text
    assert (tmp_path / "probe_curve.png").is_file() and (tmp_path / "finetune_arms.png").is_file()
    assert (tmp_path / "study.json").is_file()
    # the settings name each init's grid and the extra seeds of the 10 %-label rows
    assert "- lr grids: phones pretrained 0.00025, 0.0005, 0.001 / random 0.001, 0.002, 0.004" in text
    assert "- seeds: 1, 2 (rows with part of the labels also 3)" in text
    assert "bounds nothing" not in text  # the ceiling (80 %) is above the pretrained upstream (51 %)


def test_a_ceiling_below_the_pretrained_upstream_is_called_so(tmp_path):
    o = outcome(pre_probe=(0.50, 0.52))
    o.probes[CEILING] = [probe_result(0.45), probe_result(0.47)]
    text = write_study(o, tmp_path)
    assert "It probes at or below the pretrained upstream (46.0 % <= 51.0 %): it bounds nothing" in text
    assert "| headroom closed |" in text and "n/a: the ceiling does not bound" in text


def test_an_hf_reference_short_of_the_budget_is_called_so(tmp_path):
    o = outcome()
    o.runs["hf_reference"] = {"updates": 300}
    text = write_study(o, tmp_path)
    assert "**300 updates against our 2000: not an equal-budget comparison**" in text


def test_an_hf_reference_at_another_precision_is_called_so(tmp_path):
    o = outcome()
    o.runs["pretrain"] = {**(o.runs.get("pretrain") or {}), "precision": "bf16"}
    o.runs["hf_reference"] = {"updates": o.plan.pretrain.updates, "precision": "fp32"}
    text = write_study(o, tmp_path)
    assert "stream, batch and schedules as ours; precision differs: ours bf16, the reference fp32" in text
    o.runs["hf_reference"]["precision"] = "bf16 autocast"
    assert "precision differs" not in write_study(o, tmp_path)


def test_a_ceiling_still_rising_at_its_cap_makes_the_share_an_upper_bound(tmp_path):
    o = outcome()
    assert "upper bound" not in write_study(o, tmp_path)  # stopped by patience
    o.runs["ceiling"]["1"].update(stopped="max_updates", updates=4000, best_update=4000)
    text = write_study(o, tmp_path)
    assert "Still improving at the cap (1 of " in text and "is an upper bound" in text
