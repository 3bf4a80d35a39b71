import json
import logging
import math
from types import SimpleNamespace

from ds_w2v.train.flops import forward_flops, update_flops
from ds_w2v.train.metrics import MetricsLogger
from ds_w2v.models.wav2vec2 import preset_config
from ds_w2v.train.tasks import PretrainTask


def test_jsonl_tensorboard_and_the_tasks_warnings(tmp_path, caplog):
    """The logger shows what the task says: pretraining's warnings (a contrastive loss at chance,
    ln(K+1) for K = 100 negatives; a code perplexity under 2 % of its 2 x 320 codes)."""
    config = SimpleNamespace(best_metric=None, model=SimpleNamespace(
        preset="tiny", overrides={"num_negatives": 100, "latent_groups": 2, "latent_vars": 320}))
    task = PretrainTask(config, None)
    task.build_model(None)
    log = MetricsLogger(tmp_path, enabled=True, total_updates=1000, progress_keys=task.progress_keys(),
                        health=task.health_warnings)
    with caplog.at_level(logging.WARNING, logger="ds_w2v.train"):
        log.log(50, {"train/contrastive": math.log(101), "train/code_ppl": 3.0})  # too early to judge
        assert not caplog.records
        log.log(200, {"train/contrastive": math.log(101) + 0.01, "train/code_ppl": 300.0})
        assert any("at chance" in r.message for r in caplog.records)
        caplog.clear()
        log.log(300, {"train/contrastive": 2.0, "train/code_ppl": 5.0})  # below 2 % of 640 = 12.8
        assert any("collapsing" in r.message for r in caplog.records)
        assert not any("at chance" in r.message for r in caplog.records)
    log.close()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["update"] for r in rows] == [50, 200, 300]
    assert rows[2]["train/code_ppl"] == 5.0
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_disabled_logger_writes_nothing(tmp_path):
    log = MetricsLogger(tmp_path / "x", enabled=False, total_updates=10)
    log.log(1, {"train/loss": 1.0})
    log.close()
    assert not (tmp_path / "x").exists()


def test_flops_scale_with_audio_and_size():
    base, tiny = preset_config("original"), preset_config("tiny")
    one = forward_flops(base, 16000)
    assert 10e9 < one < 20e9  # BASE: ~4.9 GFLOPs conv + ~8.5 GFLOPs transformer per second of audio
    assert forward_flops(base, 32000) > 1.9 * one
    assert forward_flops(tiny, 16000) < one / 10
    assert update_flops(base, [16000, 16000]) == 3 * 2 * one
