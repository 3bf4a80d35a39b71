"""``ds-w2v average``: a tiny classification run saved at every update (ZeRO-2 choosing its best
by dev accuracy, higher is better; ZeRO-3 by dev loss, lower is better) with ``keep_best=3``;
``--last N`` / ``--best N`` write the mean of the chosen tags' consolidated fp32 weights, ``--best``
picks the updates whose dev values in ``metrics.jsonl`` are the best, ``--last 1`` is ``export``,
the output loads and runs, and each refusal is one line naming the run directory."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from ds_w2v import load_model
from ds_w2v.cli import main as cli
from ds_w2v.train import average as avg
from ds_w2v.train import checkpoint_tags as ckpt_tags
from ds_w2v.train import checkpoint_export as ckpt_export

from .zero_configs import zero_stage_config

pytest.importorskip("deepspeed")

UPDATES, KEEP_LAST, KEEP_BEST = 6, 2, 3



@pytest.fixture(scope="module", params=[(2, "acc"), (3, "loss")], ids=["zero2-acc", "zero3-loss"])
def run(request, ravdess_shards, tmp_path_factory) -> Path:
    from ds_w2v.train.config import load_config
    from ds_w2v.train.trainer import Trainer

    stage, metric = request.param
    root = tmp_path_factory.mktemp(f"average_zero{stage}")
    run = root / "cls"
    trainer = Trainer(load_config("finetune_cls_tiny", [
        f"data.shards={ravdess_shards}", f"run_dir={run}", f"deepspeed_config={zero_stage_config(root, stage)}",
        "precision=fp32", "data.batch_s=12", "global_batch_s=12", "data.shuffle_buffer=16", "device=cpu",
        f"max_updates={UPDATES}", "freeze_transformer_updates=0", "optim.lr=3e-3", "log_every=1", "eval_every=1",
        "save_every=1", "eval_max_batches=2", f"keep_last={KEEP_LAST}", f"keep_best={KEEP_BEST}",
        f"best_metric={metric}", "model.overrides.encoder_layerdrop=0.0"]))
    assert trainer.zero_stage == stage
    trainer.train()
    return run


def _dev(run: Path) -> tuple[dict[int, float], bool]:
    """update -> the dev value of the run's best metric, as metrics.jsonl holds it; its direction."""
    metric = yaml.safe_load((run / "config.yaml").read_text())["best_metric"]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["update"]: r[f"dev/{metric}"] for r in rows if f"dev/{metric}" in r}, metric == "acc"


def _consolidated_mean(run: Path, tags: list[str]) -> dict[str, torch.Tensor]:
    states = [ckpt_export.consolidated_state_dict(run, t) for t in tags]
    return {k: torch.stack([s[k] for s in states]).mean(0) for k, v in states[0].items() if v.is_floating_point()}


def _average(run: Path, out: Path, *rule: str) -> dict[str, torch.Tensor]:
    assert cli(["average", str(run), *rule, "--out", str(out)]) == 0
    return load_model(out).state_dict()


# -- keep_best: the N best stay on disk ----------------------------------------------------------
def test_the_run_keeps_its_n_best_tags_and_the_last_update_tags(run):
    dev, higher = _dev(run)
    assert sorted(dev) == list(range(1, UPDATES + 1))  # evaluated at every update
    record = ckpt_tags.kept_bests(run)
    assert len(record) == KEEP_BEST
    best_tags = sorted(p.name for p in ckpt_tags.ckpt_dir(run).iterdir() if ckpt_tags.BEST_TAG_RE.match(p.name))
    assert best_tags == sorted(e["tag"] for e in record)  # no best tag the record does not name
    # the record holds the three best values metrics.jsonl logged, best first; best names the first
    ordered = sorted(dev.values(), reverse=higher)
    assert [e["value"] for e in record] == pytest.approx(ordered[:KEEP_BEST])
    assert all(dev[e["update"]] == pytest.approx(e["value"]) for e in record)
    assert ckpt_tags.best_tag(run) == record[0]["tag"]
    update_tags = sorted(p.name for p in ckpt_tags.ckpt_dir(run).iterdir() if ckpt_tags.TAG_RE.match(p.name))
    assert update_tags == [ckpt_tags.tag_for(u) for u in range(UPDATES - KEEP_LAST + 1, UPDATES + 1)]


# -- the mean ----------------------------------------------------------------------------------------
def test_last_n_is_the_mean_of_the_newest_update_tags(run, tmp_path):
    tags = [ckpt_tags.tag_for(u) for u in range(UPDATES - KEEP_LAST + 1, UPDATES + 1)]
    got = _average(run, tmp_path / "last.pt", "--last", str(KEEP_LAST))
    want = _consolidated_mean(run, tags)
    newest = ckpt_export.consolidated_state_dict(run, tags[-1])
    assert want.keys() <= got.keys() and any(not torch.equal(want[k], newest[k]) for k in want)  # a real mean
    for k in want:
        assert torch.allclose(got[k], want[k], rtol=1e-6, atol=1e-7), k
    assert int(got["num_updates"]) == UPDATES  # the integer buffer: the newest chosen tag's
    sidecar = json.loads((tmp_path / "last.pt.average.json").read_text())
    assert sidecar["rule"] == "last" and [t["tag"] for t in sidecar["tags"]] == tags


def test_last_1_is_a_plain_export_of_the_newest_tag(run, tmp_path):
    got = _average(run, tmp_path / "last1.pt", "--last", "1")
    assert cli(["export", str(run), str(tmp_path / "export.pt"), "--tag", ckpt_tags.tag_for(UPDATES)]) == 0
    want = load_model(tmp_path / "export.pt").state_dict()
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)


def test_best_n_averages_the_tags_with_the_best_dev_values(run, tmp_path, capsys):
    dev, higher = _dev(run)
    n = KEEP_BEST
    capsys.readouterr()
    got = _average(run, tmp_path / "best.pt", "--best", str(n))
    sidecar = json.loads((tmp_path / "best.pt.average.json").read_text())
    chosen = sidecar["tags"]
    assert sidecar["rule"] == "best" and sidecar["higher_is_better"] is higher and len(chosen) == n
    # the chosen values are metrics.jsonl's at their updates, and none left out is better
    assert all(dev[c["update"]] == pytest.approx(c["value"]) for c in chosen)
    worst_chosen = min(c["value"] for c in chosen) if higher else max(c["value"] for c in chosen)
    left_out = [v for u, v in dev.items() if u not in {c["update"] for c in chosen}]
    assert all((v <= worst_chosen) if higher else (v >= worst_chosen) for v in left_out)
    want = _consolidated_mean(run, [c["tag"] for c in chosen])
    for k in want:
        assert torch.allclose(got[k], want[k], rtol=1e-6, atol=1e-7), k
    assert int(got["num_updates"]) == max(c["update"] for c in chosen)
    out = capsys.readouterr().out  # each tag printed with its value
    assert all(f"{c['tag']}  update {c['update']}  {sidecar['metric']} {c['value']:.4f}" in out for c in chosen)


def test_the_average_loads_and_runs_a_forward(run, tmp_path):
    assert cli(["average", str(run), "--best", "2", "--out", str(tmp_path / "m.pt")]) == 0
    model = load_model(tmp_path / "m.pt").eval()
    with torch.no_grad():
        out = model(torch.randn(2, 8_000))  # 0.5 s at 16 kHz
    assert out.logits.shape == (2, len(model.labels)) and torch.isfinite(out.logits).all()


def test_through_the_console_entry_point(run, tmp_path):
    out = tmp_path / "entry.pt"
    proc = subprocess.run([sys.executable, "-m", "ds_w2v", "average", str(run), "--last", "2", "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert f"averaged the last 2 checkpoint(s) of {run}:" in proc.stdout
    assert f"  {ckpt_tags.tag_for(UPDATES)}  update {UPDATES}" in proc.stdout and out.is_file()
    proc = subprocess.run([sys.executable, "-m", "ds_w2v", "average", str(run), "--best", "0", "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 1 and proc.stderr.strip() == f"ds-w2v average: error: {run}: --best must be >= 1, got 0"


# -- refusals: one line naming the run ------------------------------------------------------------
def _refused(capsys, *argv: str) -> str:
    capsys.readouterr()
    assert cli(["average", *argv]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    return err


def test_refusals(run, tmp_path, capsys):
    out = str(tmp_path / "x.pt")
    last = [ckpt_tags.tag_for(u) for u in range(UPDATES - KEEP_LAST + 1, UPDATES + 1)]
    assert _refused(capsys, str(run), "--last", str(KEEP_LAST + 1), "--out", out) == (
        f"ds-w2v average: error: {run}: --last {KEEP_LAST + 1} needs {KEEP_LAST + 1} update checkpoints, the run has "
        f"{KEEP_LAST} ({', '.join(last)}); keep_last decides how many a run keeps")
    assert _refused(capsys, str(run), "--last", "0", "--out", out) == (
        f"ds-w2v average: error: {run}: --last must be >= 1, got 0")
    # --best: every distinct update on disk with a dev value is a candidate, no more
    updates = set(range(UPDATES - KEEP_LAST + 1, UPDATES + 1)) | {e["update"] for e in ckpt_tags.kept_bests(run)}
    n = len(updates) + 1
    err = _refused(capsys, str(run), "--best", str(n), "--out", out)
    assert err.startswith(f"ds-w2v average: error: {run}: --best {n} needs {n} checkpoints with a dev/")
    assert f"the run has {len(updates)} (" in err and err.endswith(f"train with keep_best={n} to keep the {n} best")
    assert not Path(out).exists()
    not_run = tmp_path / "nothing"
    not_run.mkdir()
    assert _refused(capsys, str(not_run), "--last", "1", "--out", out) == (
        f"ds-w2v average: error: {not_run}: not a run directory (no model.json and checkpoints/)")


def test_checkpoints_of_different_models_are_refused(tmp_path, monkeypatch):
    """Tags of one run that hold different shapes or keys (a run directory reused for another model)."""
    states = {"update_00000001": {"w": torch.zeros(2, 3), "num_updates": torch.tensor(1)},
              "update_00000002": {"w": torch.zeros(3, 3), "num_updates": torch.tensor(2)},
              "update_00000003": {"v": torch.zeros(2, 3), "num_updates": torch.tensor(3)}}
    monkeypatch.setattr(avg, "consolidated_state_dict", lambda run_dir, tag: states[tag])
    run = tmp_path / "run"
    with pytest.raises(ValueError) as e:
        avg.average_state(run, ["update_00000001", "update_00000002"])
    assert str(e.value) == (f"{run}: checkpoints update_00000001 and update_00000002 hold different models "
                            "(w: (2, 3) vs (3, 3)); they cannot be averaged")
    with pytest.raises(ValueError) as e:
        avg.average_state(run, ["update_00000001", "update_00000003"])
    assert str(e.value) == (f"{run}: checkpoints update_00000001 and update_00000003 hold different models "
                            "(v only in update_00000003); they cannot be averaged")
    mean = avg.average_state(run, ["update_00000001", "update_00000001"])
    assert torch.equal(mean["w"], torch.zeros(2, 3)) and int(mean["num_updates"]) == 1
