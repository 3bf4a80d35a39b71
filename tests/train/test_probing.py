"""The linear phone probe during training (``probe_every``): logged at the initialisation, every
``probe_every`` updates and at the end, without changing the training itself."""
from __future__ import annotations

import json

import pytest

from ds_w2v.probe import load_upstream, layer_names
from ds_w2v.train.config import load_config
from ds_w2v.train.trainer import Trainer

pytest.importorskip("deepspeed")

FAST = ["precision=fp32", "data.batch_s=12", "global_batch_s=24", "log_every=1", "eval_every=1000", "save_every=1000",
        "data.shuffle_buffer=16", "model.overrides.encoder_layerdrop=0.0", "device=cpu"]
PROBE = ["probe.max_utterances=8", "probe.epochs=3"]


def _rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_probe_curve_is_logged_and_leaves_training_unchanged(timit_shards, tmp_path):
    opts = [f"data.shards={timit_shards}", "max_updates=3", *FAST]
    Trainer(load_config("pretrain_tiny", [*opts, f"run_dir={tmp_path / 'plain'}"])).train()
    Trainer(load_config("pretrain_tiny", [*opts, f"run_dir={tmp_path / 'probed'}", "probe_every=2", *PROBE])).train()
    probes = [r for r in _rows(tmp_path / "probed") if "dev/probe_phone_acc" in r]
    assert [r["update"] for r in probes] == [0, 2, 3]  # the initialisation, every 2, the end
    names = layer_names(load_upstream("random:tiny"))
    for r in probes:
        accs = [r[f"dev/probe/{n}"] for n in names]
        assert all(0.0 <= a <= 1.0 for a in accs)
        assert r["dev/probe_phone_acc"] == max(accs) and names[int(r["dev/probe_best_layer"])] in names
        assert 0 < r["dev/probe_majority_acc"] < 1
    # the probe reads no global random state and changes no parameter: the same losses
    losses = [{r["update"]: r["train/loss"] for r in _rows(tmp_path / run) if "train/loss" in r}
              for run in ("plain", "probed")]
    assert losses[0] == losses[1] and len(losses[0]) == 3


def test_probe_on_a_corpus_without_phone_timings_is_refused_before_training(timit_shards, ravdess_shards, tmp_path):
    config = load_config("pretrain_tiny", [f"data.shards={timit_shards}", f"run_dir={tmp_path / 'r'}", "probe_every=5",
                                           f"probe.data={ravdess_shards}", "probe.eval_split=test", *FAST])
    with pytest.raises(ValueError, match=r"probe.data: .*no phone transcription"):
        Trainer(config)
    assert not (tmp_path / "r").exists()
    with pytest.raises(ValueError, match="config key probe_every: must be >= 0"):
        load_config("pretrain_tiny", [f"data.shards={timit_shards}", "probe_every=-1"]).validate()
