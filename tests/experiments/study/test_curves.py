"""The probe curve read from a hand-written metrics.jsonl in the trainer's format (probe_every
rows: dev/probe_phone_acc, dev/probe_best_layer, dev/probe/<layer>)."""
import json

import pytest

from experiments.study.curves import curve, gain_per_update, probe_curve, read_metrics


def _write(run_dir, rows, tail=""):
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + tail)


def _probe(update, acc, layer=2):
    return {"update": update, "time": 1.0, "dev/probe_phone_acc": acc, "dev/probe_best_layer": float(layer),
            "dev/probe_majority_acc": 0.33, "dev/probe/conv": acc - 0.02, "dev/probe/layer2": acc}


def test_probe_curve_in_update_order_last_row_of_an_update_wins(tmp_path):
    rows = [_probe(0, 0.40), {"update": 10, "train/loss": 4.6}, _probe(100, 0.41), {"update": 100, "dev/loss": 4.5},
            _probe(200, 0.45), _probe(100, 0.42)]  # a resumed run logs update 100 again
    _write(tmp_path / "run", rows, tail='{"update": 300, "dev/probe')  # killed mid-line
    points = probe_curve(tmp_path / "run")
    assert [(p.update, p.acc) for p in points] == [(0, 0.40), (100, 0.42), (200, 0.45)]
    assert points[0].best_layer == 2 and points[0].layers == {"conv": pytest.approx(0.38), "layer2": 0.40}
    assert points[0].majority == 0.33
    assert curve(read_metrics(tmp_path / "run"), "dev/loss") == [(100, 4.5)]


def test_no_metrics_no_curve(tmp_path):
    assert probe_curve(tmp_path / "absent") == [] and read_metrics(tmp_path) == []


def test_gain_per_update_is_the_slope_of_the_last_half():
    from experiments.study.curves import ProbePoint

    pts = [ProbePoint(u, a, 0) for u, a in [(0, 0.40), (100, 0.40), (200, 0.42), (300, 0.44), (400, 0.46)]]
    assert gain_per_update(pts) == pytest.approx(0.0002)  # 2 points per 100 updates over 200..400
    assert gain_per_update(pts[:1]) is None
