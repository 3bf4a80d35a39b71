"""The demo report reads every figure from the runs' files and writes the two tables + plots,
the ablation and the probe rows (from ``ds-w2v probe --out`` files)."""
import json

from experiments.report import write_report

LAYERS = ["conv", "layer0", "layer1", "layer2", "layer3", "layer4"]


def _run(tmp_path, name, task, test, metrics):
    d = tmp_path / name
    d.mkdir()
    (d / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    (d / "config.yaml").write_text(
        "max_updates: 3\nglobal_batch_s: 64\nprecision: bf16\ndeepspeed_config: ds_configs/cpu.json\nseed: 1\n"
        "model: {preset: tiny, init: null}\noptim: {lr: 0.001}\nschedule: {kind: tri_stage}\n")
    res = {"task": task, "test": test, "best_dev": 0.5, "train_time_s": 10.0}
    if task == "cls":
        res["test_confusion"] = {"labels": ["a", "b"], "matrix": [[3, 1], [0, 4]]}
    return str(d), res


def _probe_file(path, upstream, accs, seed=1):
    """A ``ds-w2v probe --protocol linear --out`` file (the layout tests/probe/test_command.py checks)."""
    best = max(accs, key=accs.get)
    linear = {"layers": accs, "best_layer": best, "best_acc": accs[best], "majority_acc": 0.334,
              "majority_phone": "sil", "num_train_frames": 16000, "num_eval_frames": 16622, "num_classes": 39,
              "epochs": 20, "lr": 0.002, "seed": seed}
    splits = {role: {"split": role, "utterances": 100, "audio_s": 335.0, "frames": 16700, "cache": "miss",
                     "seconds": 5.0} for role in ("train", "test")}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"upstream": upstream, "upstream_fingerprint": "0" * 64, "task": "pretrain",
                                "layers": list(accs), "device": "cpu", "seed": seed,
                                "datasets": {"shards/timit": {"protocols": ["linear"], "splits": splits,
                                                              "linear": linear}}}))
    return {"results": str(path), "command": f"ds-w2v probe {upstream} --protocol linear", "wall_s": 31.0}


def test_report_tables_and_plots(tmp_path):
    pt, pt_res = _run(tmp_path, "pt", "pretrain", {}, [{"update": 1, "train/loss": 4.6}, {"update": 2, "dev/loss": 4.4}])
    ctc, ctc_res = _run(tmp_path, "ctc", "ctc", {"wer": 0.4321, "cer": 0.1234, "loss": 12.5},
                        [{"update": 1, "train/loss": 50.0}, {"update": 2, "dev/wer": 0.6}])
    cls, cls_res = _run(tmp_path, "cls", "cls", {"acc": 0.875, "f1": 0.8667, "loss": 0.4},
                        [{"update": 1, "train/loss": 2.0}, {"update": 2, "dev/acc": 0.7}])
    rows = {"tiny": {"params_m": 3.73, "pretrain": pt_res, "pretrain_s": 61.0, "ctc": ctc_res, "ctc_s": 3725.0,
                     "cls": cls_res, "cls_s": 30.0, "runs": {"pretrain": pt, "ctc": ctc, "cls": cls}}}
    ablation = {"tiny": {"pretrained, 100 %": ctc_res, "random init, 100 %": {"test": {"wer": 0.5, "cer": 0.1300}},
                         "pretrained, 10 %": {"test": {"wer": 1.0, "cer": 0.95}},
                         "random init, 10 %": {"test": {"wer": 1.0, "cer": 0.9, "loss": 99.0}}}}
    # the greedy-vs-LM rows: greedy from the CTC run (dev WER at its best update), the LM row from
    # `ds-w2v evaluate --tune-lm --out`
    ctc_res["best_update"] = 2
    rows["tiny"]["ctc_lm"] = {
        "splits": {"dev": {"wer": 0.41, "cer": 0.2}, "test": {"wer": 0.3456, "cer": 0.1111}},
        "decoding": {"decoder": "beam", "lm": "/x/timit4.arpa", "beam": 50, "lm_weight": 2.0, "word_score": -1.0},
        "tuning": {"split": "dev", "grid": []}, "command": "ds-w2v evaluate --tune-lm ...", "wall_s": 9.0}
    out = tmp_path / "results"
    out.mkdir()
    text = write_report(rows, ablation, out, total_s=4000)
    assert "| tiny | 3.7M | 43.21 % | 12.34 % | 12.500 | 0:01:01 | 1:02:05 | 1:03:06 |" in text
    assert "| tiny | greedy | 43.21 % | 12.34 % | - | 60.00 % |" in text
    assert "| tiny | beam 50 + timit4.arpa | 34.56 % | 11.11 % | 2, -1 | 41.00 % |" in text
    assert "`ds-w2v evaluate --tune-lm ...`" in text
    assert "| tiny | 87.50 % | 86.67 % | 0.400 | 0:01:01 | 0:00:30 | 0:01:31 |" in text
    assert "| random init, 10 % | 100.00 % | 90.00 % | 99.000 |" in text
    # one seed at one lr: the figures and their difference, never a sign ("helped", "hurt")
    assert ("- 10 % of the labels: test CER 95.00 % pretrained vs 90.00 % from random init (+5.0 points). "
            "One seed at one learning rate: no sign is claimed from it.") in text
    assert "- 100 % of the labels: test CER 12.34 % pretrained vs 13.00 % from random init (-0.7 points)." in text
    assert "hurt" not in text and "helped" not in text
    # the machine the figures came from, as ds-w2v env names it
    from ds_w2v.hardware import Machine

    assert f"Machine: {Machine.read().line()}." in text
    assert "The fair comparison, recorded by" not in text  # no results/study.json beside it
    assert "Pretraining here saw 0.1 h of audio (3 updates)" in text and "622,222 h" in text
    assert "seeded tenth" in text and "`bash launch/study.sh`" in text
    assert (out / "RESULTS.md").read_text() == text
    for png in ("loss_curves.png", "dev_metrics.png", "confusion_tiny.png"):
        assert (out / png).stat().st_size > 1000


def test_probe_rows_come_from_the_probe_files(tmp_path):
    pt, pt_res = _run(tmp_path, "pt", "pretrain", {}, [{"update": 1, "train/loss": 4.6}])
    ctc, ctc_res = _run(tmp_path, "ctc", "ctc", {"wer": 0.9, "cer": 0.7, "loss": 100.0}, [{"update": 1, "train/loss": 9.0}])
    cls, cls_res = _run(tmp_path, "cls", "cls", {"acc": 0.5, "f1": 0.4, "loss": 1.0}, [{"update": 1, "train/loss": 2.0}])
    (tmp_path / "pt" / "config.yaml").write_text(  # the pretraining run: preset tiny, seed 1
        "max_updates: 3\nglobal_batch_s: 64\nprecision: bf16\ndeepspeed_config: ds_configs/cpu.json\nseed: 1\n"
        "model: {preset: tiny}\noptim: {lr: 0.001}\nschedule: {kind: polynomial}\n")
    pre_accs = dict(zip(LAYERS, [0.41, 0.45, 0.512, 0.5, 0.47, 0.46]))
    rnd_accs = dict(zip(LAYERS, [0.404, 0.403, 0.401, 0.399, 0.398, 0.40]))
    probes = {"pretrained": _probe_file(tmp_path / "probe_pre" / "results.json", pt, pre_accs),
              "random init": _probe_file(tmp_path / "probe_rnd" / "results.json", "random:tiny", rnd_accs)}
    rows = {"tiny": {"params_m": 3.73, "pretrain": pt_res, "pretrain_s": 60.0, "ctc": ctc_res, "ctc_s": 60.0,
                     "cls": cls_res, "cls_s": 60.0, "runs": {"pretrain": pt, "ctc": ctc, "cls": cls}, "probes": probes}}
    ablation = {"tiny": {"pretrained, 100 %": ctc_res, "random init, 100 %": {"test": {"wer": 0.95, "cer": 0.75}}}}
    out = tmp_path / "results"
    out.mkdir()
    text = write_report(rows, ablation, out, total_s=400)
    assert "| upstream | conv | layer0 | layer1 | layer2 | layer3 | layer4 | best layer |" in text
    assert "| pretrained | 41.00 % | 45.00 % | 51.20 % | 50.00 % | 47.00 % | 46.00 % | layer1: 51.20 % |" in text
    assert "| random init | 40.40 % | 40.30 % | 40.10 % | 39.90 % | 39.80 % | 40.00 % | conv: 40.40 % |" in text
    assert "| majority class ('sil' for every frame) | - | - | - | - | - | - | 33.40 % |" in text
    assert ("pretraining raised it: 51.20 % (layer1) pretrained vs 40.40 % (conv) at random init, +10.80 points; "
            "always guessing the majority phone scores 33.40 %.") in text
    assert "trained on 100 train utterances" in text and "16,622 frames" in text
    assert "`random:tiny`, fresh weights drawn with seed 1, the pretraining run's seed: the very weights" in text
    assert "- tiny probe, random init: `ds-w2v probe random:tiny --protocol linear` (0:00:31)" in text
    # the one-seed ablation points to the study, and only mentions 10 % rows when there are some
    assert "`bash launch/study.sh`" in text and "results/STUDY.md" in text and "2 seeds" in text
    assert "seeded tenth" not in text

    # the rows are read from the files: another probe result, another report
    _probe_file(tmp_path / "probe_rnd" / "results.json", "random:tiny", {**rnd_accs, "layer4": 0.52}, seed=7)
    text = write_report(rows, ablation, out, total_s=400)
    assert "| random init | 40.40 % | 40.30 % | 40.10 % | 39.90 % | 39.80 % | 52.00 % | layer4: 52.00 % |" in text
    assert "made no difference to it (within 1 point): 51.20 % (layer1) pretrained vs 52.00 % (layer4)" in text
    assert "fresh weights drawn with seed 7." in text  # no longer the pretraining run's seed

    # the study's recorded goals (results/study.json) are quoted beside the one-seed rows
    (out / "study.json").write_text(json.dumps({"goals": [
        {"name": "PER with 10 % labels", "target": "pretrained PER <= 0.7 x random init's", "measured": "64.8 % / 82.9 % = 0.78 x",
         "value": 0.78, "passed": False},
        {"name": "headroom closed", "target": "share >= 60 %", "measured": "n/a: the ceiling does not bound",
         "value": None, "passed": None}]}))
    text = write_report(rows, ablation, out, total_s=400)
    assert "The fair comparison, recorded by `bash launch/study.sh` in `results/STUDY.md`" in text
    assert "- PER with 10 % labels: 64.8 % / 82.9 % = 0.78 x (goal: pretrained PER <= 0.7 x random init's: missed)." in text
    # a goal the study could not measure is not called missed
    assert "- headroom closed: n/a: the ceiling does not bound (goal: share >= 60 %: not measured)." in text

    # the default demo runs no CTC ablation: the probe rows, and where the ablation is
    text = write_report(rows, {}, out, total_s=400)
    assert "## Does pretraining help? tiny" in text and "| random init | 40.40 %" in text
    assert "### CTC fine-tuning from each initialisation" not in text
    assert "`python -m experiments.demo --ablation on`" in text and "`bash launch/study.sh`" in text


def test_a_ctc_on_its_blank_plateau_is_said_so_and_the_lm_row_is_a_line(tmp_path):
    pt, pt_res = _run(tmp_path, "pt", "pretrain", {}, [{"update": 1, "train/loss": 4.6}])
    ctc, ctc_res = _run(tmp_path, "ctc", "ctc", {"wer": 1.0, "cer": 1.0, "loss": 125.0}, [{"update": 1, "train/loss": 9.0}])
    cls, cls_res = _run(tmp_path, "cls", "cls", {"acc": 0.5, "f1": 0.4, "loss": 1.0}, [{"update": 1, "train/loss": 2.0}])
    rows = {"tiny": {"params_m": 3.73, "pretrain": pt_res, "pretrain_s": 60.0, "ctc": ctc_res, "ctc_s": 60.0,
                     "cls": cls_res, "cls_s": 60.0, "runs": {"pretrain": pt, "ctc": ctc, "cls": cls},
                     "ctc_lm": {"skipped": "not run: the CTC model's best dev CER is 100.0 %", "command": "x",
                                "wall_s": 0.1}}}
    out = tmp_path / "results"
    out.mkdir()
    text = write_report(rows, {"tiny": {"pretrained, 100 %": ctc_res, "random init, 100 %": {"test": {"cer": 1.0}}}},
                        out, total_s=100)
    assert "at this budget CTC has not left its all-blank plateau" in text
    assert "- tiny: not run: the CTC model's best dev CER is 100.0 %." in text and "| tiny | greedy |" not in text
    ctc_res["test"]["cer"] = 0.8  # one row off the plateau: no such note
    assert "all-blank plateau (the model" not in write_report(rows, {}, out, total_s=100)


def test_the_lm_job_is_skipped_while_the_ctc_model_writes_only_blanks(tmp_path):
    import sys

    from experiments.demo import LMEvalJob, run_jobs

    ctc_dir = tmp_path / "ctc"
    ctc_dir.mkdir()
    (ctc_dir / "results.json").write_text(json.dumps({"best_dev": 1.0}))
    job = LMEvalJob("lm", ["--nope"], tmp_path / "lm", ctc_dir, needs=())
    run_jobs([job], parallel=1)  # would fail (`evaluate --nope`) if it ran
    assert job.result["skipped"].startswith("not run: the CTC model's best dev CER is 100.0 %")
    (ctc_dir / "results.json").write_text(json.dumps({"best_dev": 0.7}))
    job = LMEvalJob("lm2", ["--nope"], tmp_path / "lm2", ctc_dir, needs=())
    import pytest

    with pytest.raises(RuntimeError, match="evaluate failed"):
        run_jobs([job], parallel=1)
    assert sys.executable
