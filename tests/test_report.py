"""The demo report reads every figure from the runs' files and writes the two tables + plots."""
import json

from ds_w2v.report import write_report


def _run(tmp_path, name, task, test, metrics):
    d = tmp_path / name
    d.mkdir()
    (d / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    (d / "config.yaml").write_text(
        "max_updates: 3\nglobal_batch_s: 64\nprecision: bf16\ndeepspeed_config: ds_configs/cpu.json\n"
        "model: {preset: tiny, init: null}\noptim: {lr: 0.001}\nschedule: {kind: tri_stage}\n")
    res = {"task": task, "test": test, "best_dev": 0.5, "train_time_s": 10.0}
    if task == "cls":
        res["test_confusion"] = {"labels": ["a", "b"], "matrix": [[3, 1], [0, 4]]}
    return str(d), res


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
    out = tmp_path / "results"
    out.mkdir()
    text = write_report(rows, ablation, out, total_s=4000)
    assert "| tiny | 3.7M | 43.21 % | 12.34 % | 12.500 | 0:01:01 | 1:02:05 | 1:03:06 |" in text
    assert "| tiny | 87.50 % | 86.67 % | 0.400 | 0:01:01 | 0:00:30 | 0:01:31 |" in text
    assert "| random init, 10 % | 100.00 % | 90.00 % | 99.000 |" in text
    # the verdict is read from the numbers: within 1 CER point = no difference; 95 % vs 90 % = hurt
    assert "- 100 % of the labels: pretraining made no difference (within 1 point): test CER 12.34 %" in text
    assert "- 10 % of the labels: pretraining hurt: test CER 95.00 % pretrained vs 90.00 % from random init." in text
    assert "Pretraining here saw 0.1 h of audio (3 updates)" in text and "622,222 h" in text
    assert (out / "RESULTS.md").read_text() == text
    for png in ("loss_curves.png", "dev_metrics.png", "confusion_tiny.png"):
        assert (out / png).stat().st_size > 1000
