"""Behaviour of the task models: inputs, masking, quantizer state, padding invariance."""
from __future__ import annotations

import pytest
import torch

from ds_w2v import build_model


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_model("tiny")


def test_pretraining_output_parts(tiny):
    torch.manual_seed(0)
    x = torch.randn(2, 16000) * 0.1
    out = tiny.train()(x, torch.tensor([16000, 12000]))
    cfg = tiny.config
    assert out.sample_size == int(out.mask_time.sum()) and out.sample_size > 0
    total = out.contrastive_loss + cfg.diversity_weight * out.diversity_loss + cfg.feature_pen_weight * out.feature_penalty
    torch.testing.assert_close(out.loss, total)
    assert out.logits.shape == (2, out.sample_size // 2, cfg.num_negatives + 1)
    assert 0 <= float(out.accuracy) <= 1
    assert 1 <= float(out.code_perplexity) <= cfg.latent_vars * cfg.latent_groups
    assert out.temperature == 2.0
    for t in (out.loss, out.contrastive_loss, out.diversity_loss, out.feature_penalty):
        assert t.dtype == torch.float32
    out.loss.backward()
    grads = [p.grad for p in tiny.parameters() if p.requires_grad]
    assert all(g is not None for g in grads[:5])


def test_temperature_follows_updates_and_survives_state_dict(tiny):
    tiny.set_num_updates(100_000)
    assert tiny.temperature == pytest.approx(max(2.0 * 0.999995**100_000, 0.5))
    other = build_model("tiny")
    other.load_state_dict(tiny.state_dict())
    assert other.temperature == pytest.approx(tiny.temperature)
    tiny.set_num_updates(10**7)
    assert tiny.temperature == 0.5  # the floor
    tiny.set_num_updates(0)


def test_bf16_autocast_keeps_objective_fp32(tiny):
    torch.manual_seed(0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = tiny.train()(torch.randn(2, 8000) * 0.1)
    assert out.loss.dtype == torch.float32 and out.logits.dtype == torch.float32
    assert torch.isfinite(out.loss)


def test_padding_does_not_change_layer_norm_encoder_outputs():
    """With the layer-norm encoder (LARGE style) an utterance's outputs do not depend on how
    much padding its batch adds (the group-norm encoder normalises over padding, as fairseq/HF)."""
    torch.manual_seed(0)
    m = build_model("tiny", "ctc", extractor_mode="layer", conv_bias=True, layer_norm_first=True).eval()
    x = torch.randn(1, 9600) * 0.1
    padded = torch.cat([x, torch.zeros(1, 6400)], dim=1)
    with torch.no_grad():
        a = m(x).logits
        b = m(padded, torch.tensor([9600])).logits
    n = a.shape[1]
    torch.testing.assert_close(a, b[:, :n], rtol=1e-4, atol=1e-4)


def test_layerdrop_same_decision_for_same_update():
    m = build_model("tiny", encoder_layerdrop=0.5).train()
    enc = m.wav2vec2.encoder
    first = [enc.layers_to_run(u) for u in range(20)]
    again = [enc.layers_to_run(u) for u in range(20)]
    assert first == again  # any rank computes the same list for the same update
    assert len({tuple(x) for x in first}) > 1  # and it changes from update to update
    assert m.eval().wav2vec2.encoder.layers_to_run(3) == [0, 1, 2, 3]


def test_frozen_feature_encoder_gets_no_gradient():
    m = build_model("tiny", "ctc")  # fine-tuning default: feature_grad_mult 0
    m.freeze_feature_encoder()
    out = m.train()(torch.randn(2, 8000) * 0.1, targets=torch.tensor([[5, 6, 7], [8, 9, -100]]))
    out.loss.backward()
    assert all(p.grad is None for p in m.wav2vec2.feature_extractor.parameters())
    assert m.lm_head.weight.grad is not None


@pytest.mark.parametrize("bad,match", [
    (torch.randn(16000), "waveform must be \\[batch, samples\\].*unsqueeze"),
    (torch.randn(2, 1, 16000), "waveform must be \\[batch, samples\\]"),
    (torch.zeros(2, 16000, dtype=torch.int16), "must be float audio.*32768"),
    (torch.randn(0, 16000), "empty batch"),
    (torch.randn(2, 399), "shorter than the receptive field: 399 samples < 400"),
])
def test_bad_inputs_give_clear_errors(tiny, bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        tiny(bad)


def test_bad_lengths_give_clear_errors(tiny):
    x = torch.randn(2, 8000)
    with pytest.raises(ValueError, match="lengths exceed the padded length 8000"):
        tiny(x, torch.tensor([8000, 9000]))
    with pytest.raises(ValueError, match="shorter than the receptive field"):
        tiny(x, torch.tensor([8000, 100]))
    with pytest.raises(ValueError, match="integer tensor of shape \\[2\\]"):
        tiny(x, torch.tensor([8000.0, 100.0]))


def test_unknown_preset_and_task_list_known():
    with pytest.raises(ValueError, match="unknown preset 'giant'; known presets: tiny, small, medium, original, large"):
        build_model("giant")
    with pytest.raises(ValueError, match="unknown task 'asr'; known tasks: pretrain, ctc, cls"):
        build_model("tiny", "asr")
    with pytest.raises(ValueError, match="unknown Wav2Vec2Config keys: \\['encoder_layer'\\]"):
        build_model("tiny", encoder_layer=3)
