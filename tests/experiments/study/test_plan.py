"""The plans and the job graph they make, without running anything: every arm's grid and seeds,
the dependencies, the overrides each run gets (lr, seed, budget, the dev metric that chooses),
the HF reference on the same overrides as the pretraining, and the cost estimate's arithmetic."""
import json
from dataclasses import replace

import pytest

from ds_w2v.data.shard_format import INDEX_FIELDS
from experiments.study.plan import TASKS, Arm, default_plan, estimate, quick_plan, search_plan
from experiments.study.runner import Study


def fake_shards(tmp_path, names):
    out = {}
    for name in names:
        d = tmp_path / name
        d.mkdir()
        index = {k: None for k in INDEX_FIELDS}
        (d / "dataset.json").write_text(json.dumps({**index, "splits": {"train": {}, "test": {}}}))
        out[name] = d
    return out


@pytest.fixture
def study(tmp_path):
    s = Study(default_plan(), tmp_path / "data", tmp_path / "runs", tmp_path / "results")
    s.shards = fake_shards(tmp_path, ["timit", "extra", "ravdess", "timit_train10", "ravdess_train10"])
    return s


def _args(job):
    return job.argv()


def test_default_graph(study):
    jobs = study.build_jobs()
    names = [j.name for j in jobs]
    assert names[:2] == ["pretrain", "hf_reference"]
    plan = study.plan
    grid = [j for j in jobs if " lr=" in j.name]
    chosen = [j for j in jobs if "chosen lr" in j.name]
    # 3 lrs per arm; the chosen lr again with seed 2, and with seed 3 in the six 10 %-label arms
    assert len(grid) == 12 * 3 and len(chosen) == 12 + 6 and plan.num_finetunes == 54
    assert {j.name.split(" ")[0] for j in chosen if j.name.endswith("seed=3")} == \
        {a.tag for a in plan.arms if a.labels < 1}
    # the supervised ceiling: one training per seed (from random init: it waits for nothing), each
    # probed with the linear protocol once it has run
    train = {j.name: j for j in jobs if j.name.startswith("ceiling seed=")}
    probes = [j for j in jobs if j.name.startswith("probe ceiling")]
    assert sorted(train) == ["ceiling seed=1", "ceiling seed=2"] and all(j.needs == () for j in train.values())
    assert [j.needs for j in probes] == [("ceiling seed=1",), ("ceiling seed=2",)]
    for seed, j in zip(plan.seeds, probes):
        args = _args(j)
        assert args[args.index("--protocol") + 1] == "linear"
        assert str(study.ceiling_dir(seed) / "model.pt") in args and args[args.index("--seed") + 1] == str(seed)
    c1 = _args(train["ceiling seed=1"])
    assert c1[c1.index("--data") + 1] == str(study.shards["timit"]) and c1[c1.index("--seed") + 1] == "1"
    assert c1[c1.index("--max-updates") + 1] == str(plan.ceiling.max_updates)
    for j in grid:
        tag = j.name.split(" ")[0]
        arm = next(a for a in plan.arms if a.tag == tag)
        args = _args(j)
        assert j.needs == (("pretrain",) if arm.init == "pretrained" else ())
        assert f"best_metric={TASKS[arm.task].metric}" in args and "seed=1" in args
        lr = float(next(a for a in args if a.startswith("optim.lr=")).split("=")[1])
        assert lr in plan.grid(arm) and j.name.startswith(f"{arm.tag} lr=")
        assert f"max_updates={plan.budgets[arm.task].updates}" in args
        assert (f"data.shards={study.shards['timit_train10']}" in args) == (arm.task != "emotion" and arm.labels < 1)
        assert ("data.target=phones" in args) == (arm.task == "phones")
        assert any(a.startswith("model.init=") for a in args) == (arm.init == "pretrained")
    for j in chosen:  # waits for its own arm's grid, nothing else
        tag = j.name.split(" ")[0]
        assert set(j.needs) == {g.name for g in grid if g.name.startswith(tag + " ")}
    pre, hf = _args(jobs[0]), _args(jobs[1])
    # the HF reference at the same budget: the whole schedule, no --stop-after
    assert "--stop-after" not in hf and plan.hf_updates is None and f"max_updates={plan.pretrain.updates}" in hf
    common = [a for a in pre if not a.startswith("run_dir=")][5:]  # after bash _launch.sh pretrain --recipe R
    assert all(a in hf for a in common) and f"probe_every={plan.pretrain.probe_every}" in pre
    mix = next(a for a in pre if a.startswith("data.train="))
    assert f"{study.shards['timit']}:train" in mix and f"{study.shards['extra']}:test" in mix


def test_chosen_job_resolves_from_the_grid(study):
    jobs = {j.name: j for j in study.build_jobs()}
    arm = Arm("phones", "random", 0.1)
    job = jobs[f"{arm.tag} chosen lr seed=2"]
    assert not job.cached() and not job.resolved  # the grid has not run
    for lr, dev in ((1e-3, 0.9), (2e-3, 0.7), (4e-3, None)):
        d = study.ft_dir(arm, lr, 1)
        d.mkdir(parents=True)
        (d / "results.json").write_text(json.dumps({"best_dev": dev} if dev else {"diverged": True}))
    assert not job.cached() and job.resolved
    assert job.run_dir == study.ft_dir(arm, 2e-3, 2) and "optim.lr=0.002" in job.argv() and "seed=2" in job.argv()


def test_a_chosen_run_finished_earlier_is_reused_when_its_grid_finishes_late(study):
    """The grid ran in this invocation, the chosen run in an earlier one: never run it again (a
    resume of a finished run would evaluate test again and rewrite its results and log)."""
    jobs = {j.name: j for j in study.build_jobs()}
    arm = Arm("phones", "random", 0.1)
    job = jobs[f"{arm.tag} chosen lr seed=3"]
    assert not job.cached()  # as the runner sees it at the start: the grid is unfinished
    for lr, dev in ((1e-3, 0.9), (2e-3, 0.7), (4e-3, 0.8)):
        study.ft_dir(arm, lr, 1).mkdir(parents=True)
        (study.ft_dir(arm, lr, 1) / "results.json").write_text(json.dumps({"best_dev": dev}))
    chosen = study.ft_dir(arm, 2e-3, 3)
    chosen.mkdir(parents=True)
    before = json.dumps({"best_dev": 0.6, "test": {"per": 0.61}, "wall_s": 140.0})
    (chosen / "results.json").write_text(before)
    proc = job.start(None)
    assert proc.wait() == 0 and "finetune-ctc" not in proc.args
    job.finish(proc.returncode)
    assert (chosen / "results.json").read_text() == before and not job.log.exists()


def test_grids_per_init_keep_the_tuning_effort_equal():
    plan = default_plan()
    pre, rnd = Arm("phones", "pretrained", 0.1), Arm("phones", "random", 0.1)
    assert len(plan.grid(pre)) == len(plan.grid(rnd)) and plan.grid(pre) != plan.grid(rnd)
    assert plan.seeds_for(pre) == (1, 2, 3) and plan.seeds_for(Arm("phones", "pretrained", 1.0)) == (1, 2)
    # a grid for one label share of an init comes before the init's
    lrs = {**plan.lrs, "phones": {"pretrained 10 %": (1e-4, 2e-4), "pretrained": (1e-3, 2e-3), "random": (1, 2)}}
    assert replace(plan, lrs=lrs).grid(pre) == (1e-4, 2e-4)
    assert replace(plan, lrs=lrs).grid(Arm("phones", "pretrained", 1.0)) == (1e-3, 2e-3)
    with pytest.raises(ValueError, match="differ in size"):
        replace(plan, lrs={**plan.lrs, "phones": {"pretrained": (1e-3,), "random": (1e-3, 2e-3)}})
    with pytest.raises(ValueError, match="no lr grid for phones, random, 100 %; phones, random, 10 %"):
        replace(plan, lrs={**plan.lrs, "phones": {"pretrained": (1e-3,)}})
    with pytest.raises(ValueError, match="repeat a seed"):
        replace(plan, low_label_seeds=(2,))
    assert quick_plan().grid(pre) == (2e-3,)  # one grid for every arm of the task


def test_search_and_quick_plans(tmp_path):
    plan = search_plan()
    names = [v.name for v in plan.search]
    assert names[0] == "base" and len(set(names)) == len(names)
    s = Study(plan, tmp_path / "d", tmp_path / "r", tmp_path / "res")
    s.shards = fake_shards(tmp_path, ["timit", "extra", "extra_more", "ravdess"])
    jobs = s.build_jobs()
    assert [j.name for j in jobs] == [f"search {n}" for n in names]
    only = next(j for j in jobs if j.name == "search labelled_only")
    assert next(a for a in _args(only) if a.startswith("data.train=")) == f"data.train=[{s.shards['timit']}:train]"
    assert quick_plan().lrs["phones"] == (2e-3,) and len(quick_plan().seeds) == 2


def test_estimate_fits_the_budget():
    cost = estimate(default_plan())
    # the HF reference at the full budget and the ceilings are run once and then reused: without
    # them the study stays within 90 min on 2 cores; with them, a first run takes longer
    assert cost["rerun_wall_s"] < 90 * 60 < cost["wall_s"]
    assert cost["wall_s"] - cost["rerun_wall_s"] == pytest.approx((cost["hf_reference_s"] + cost["ceiling_s"]) / 2)
    assert cost["slot_s"] == pytest.approx(sum(cost[k] for k in ("pretrain_s", "hf_reference_s", "finetune_s",
                                                                  "ceiling_s", "probes_s", "search_s")))


def test_every_search_variant_is_a_valid_recipe(tmp_path):
    """Each variant's overrides load as the trainer loads them and build a model."""
    from ds_w2v.models.wav2vec2 import build_model
    from ds_w2v.train.config import load_config

    for v in search_plan().search:
        config = load_config("pretrain_tiny", [f"data.shards={tmp_path}", *v.trainer_overrides()])
        model = build_model(config.model.preset, "pretrain", **config.model.overrides)
        if v.name == "conv256":
            assert model.config.conv_layers[0] == (256, 10, 5)
