"""MFU's FLOPs count what ran (``flops.py``): no backward through a frozen conv encoder (fine-tuning's
``feature_grad_mult = 0``) nor through a frozen backbone, only the blocks LayerDrop kept; and the
tasks pass that on (pretraining counts its head, fine-tuning does not)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from ds_w2v.models.wav2vec2 import preset_config
from ds_w2v.train.config import load_config
from ds_w2v.train.flops import backbone_flops, encoder_flops, forward_flops, pretrain_head_flops, update_flops
from ds_w2v.train.tasks import TASK_CLASSES

SAMPLES = int(14.583 * 16000)  # one utterance of BASE's micro-batch
SHARDS = "data.shards=/x"  # the tasks read no shards to count FLOPs


def _parts(config, layers=None):
    conv, frames = encoder_flops(config, SAMPLES)
    return conv, backbone_flops(config, frames, layers), pretrain_head_flops(config, frames)


def test_parts_add_up_to_the_forward():
    config = preset_config("original")
    conv, rest, head = _parts(config)
    assert forward_flops(config, SAMPLES) == pytest.approx(conv + rest + head)
    assert forward_flops(config, SAMPLES, pretrain=False) == pytest.approx(conv + rest)
    assert 0.30 < conv / (conv + rest) < 0.34  # BASE's conv encoder: a third of the fine-tuning forward


def test_a_frozen_conv_encoder_runs_forward_only():
    frozen = preset_config("original", feature_grad_mult=0.0)  # what the trainer freezes
    conv, rest, _ = _parts(frozen)
    assert update_flops(frozen, [SAMPLES], pretrain=False) == pytest.approx(conv + 3 * rest)
    trained = preset_config("original", feature_grad_mult=0.1)  # pretraining's: gradients reach the encoder
    assert update_flops(trained, [SAMPLES], pretrain=False) == pytest.approx(3 * (conv + rest))


def test_layerdrop_counts_the_blocks_run_and_a_frozen_backbone_has_no_backward():
    config = preset_config("original", feature_grad_mult=0.0)
    conv, rest, _ = _parts(config)
    _, rest9, _ = _parts(config, layers=9)
    assert rest9 < rest
    assert update_flops(config, [SAMPLES], pretrain=False, layers=9) == pytest.approx(conv + 3 * rest9)
    assert update_flops(config, [SAMPLES], pretrain=False, backbone_backward=False) == pytest.approx(conv + rest)


def test_tasks_count_what_their_update_runs():
    index = SimpleNamespace(vocab={"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, "A": 5})  # a train split's
    ctc = TASK_CLASSES["ctc"](load_config("finetune_ctc_tiny", [SHARDS]), index)
    pre = TASK_CLASSES["pretrain"](load_config("pretrain_tiny", [SHARDS]), None)
    finetune = preset_config("original", feature_grad_mult=0.0)
    conv, rest, head = _parts(finetune)
    _, rest11, _ = _parts(finetune, layers=11)
    assert ctc.update_flops(finetune, [SAMPLES, SAMPLES]) == pytest.approx(2 * (conv + 3 * rest))
    assert ctc.update_flops(finetune, [SAMPLES], layers=11) == pytest.approx(conv + 3 * rest11)
    assert ctc.update_flops(finetune, [SAMPLES], backbone_frozen=True) == pytest.approx(conv + rest)
    pretrain = preset_config("original")  # feature_grad_mult 0.1
    assert pre.update_flops(pretrain, [SAMPLES]) == pytest.approx(3 * sum(_parts(pretrain)))


def test_the_trainer_counts_the_blocks_layerdrop_kept_at_each_update(timit_shards, tmp_path, monkeypatch):
    pytest.importorskip("deepspeed")
    from ds_w2v.train import trainer as trainer_mod

    monkeypatch.setattr(trainer_mod, "peak_flops", lambda device, dtype: 1e12)  # MFU on the CPU too
    asked = []
    ctc = TASK_CLASSES["ctc"]
    real = ctc.update_flops
    monkeypatch.setattr(ctc, "update_flops", lambda self, config, lengths, layers=None, backbone_frozen=False:
                        asked.append((layers, backbone_frozen)) or real(self, config, lengths, layers, backbone_frozen))
    config = load_config("finetune_ctc_tiny", [f"data.shards={timit_shards}", f"run_dir={tmp_path / 'ctc'}",
                                               "precision=fp32", "data.batch_s=12", "global_batch_s=12", "device=cpu",
                                               "max_updates=4", "log_every=1", "eval_every=1000", "save_every=1000",
                                               "freeze_transformer_updates=2", "model.overrides.encoder_layerdrop=0.5"])
    run = trainer_mod.Trainer(config)
    encoder = run.module.wav2vec2.encoder
    for update in range(4):
        assert run.train_step()
        encoder.train()  # layers_to_run answers "all" outside training
        want = len(encoder.layers_to_run(update))
        assert asked[-1] == (want, update < 2), update  # the backbone is frozen for the first 2 updates
    assert len({layers for layers, _ in asked}) > 1  # LayerDrop 0.5 over 4 updates: the count varies
    run.logger.close()
