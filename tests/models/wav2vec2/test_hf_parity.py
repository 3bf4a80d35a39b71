"""Numerical parity with HF transformers' wav2vec2 (an implementation we did not write).

Our weights are copied into HF's Wav2Vec2ForPreTraining / ForCTC / ForSequenceClassification
built from the equivalent config; on random padded audio in fp32 the outputs must agree.
Both architectures are covered: post-LN with the group-norm encoder (BASE style) and pre-LN
with the layer-norm encoder (LARGE style).
"""
from __future__ import annotations

import pytest
import torch

from ds_w2v import build_model
from ds_w2v.models.wav2vec2.interop_hf import hf_twin
from ds_w2v.models.wav2vec2.masking import compute_time_mask, masked_positions
from ds_w2v.models.wav2vec2.model import normalize_waveform
from ds_w2v.models.wav2vec2.objective import sample_negatives

from .hf_reference import NO_DROPOUT, VARIANTS, attention_mask, deterministic_gumbel, padded_batch
LENGTHS = [16000, 11200, 6400]


def _hf_input(model, x, lengths):
    return normalize_waveform(x, lengths) if model.config.normalize_audio else x


def _max_abs_valid(a, b, frame_lengths):
    return max(float((a[i, :n] - b[i, :n]).abs().max()) for i, n in enumerate(frame_lengths.tolist()))


@pytest.mark.parametrize("variant", VARIANTS)
def test_last_hidden_state_matches_hf(variant):
    torch.manual_seed(0)
    model = build_model("tiny", "pretrain", **VARIANTS[variant]).eval()
    hf = hf_twin(model)
    x, lengths = padded_batch(LENGTHS)
    with torch.no_grad():
        ours = model.wav2vec2(x, lengths)
        ref = hf.wav2vec2(_hf_input(model, x, lengths), attention_mask=attention_mask(lengths, x.shape[1]))
    assert ours.last_hidden_state.shape == ref.last_hidden_state.shape
    assert _max_abs_valid(ours.last_hidden_state, ref.last_hidden_state, ours.frame_lengths) < 1e-4
    # the quantizer's input (LayerNorm-ed conv features) as well
    assert _max_abs_valid(ours.features, ref.extract_features, ours.frame_lengths) < 1e-4


@pytest.mark.parametrize("variant", VARIANTS)
def test_ctc_logits_match_hf(variant):
    torch.manual_seed(1)
    model = build_model("tiny", "ctc", **VARIANTS[variant]).eval()
    hf = hf_twin(model)
    x, lengths = padded_batch(LENGTHS, seed=1)
    with torch.no_grad():
        ours = model(x, lengths)
        ref = hf(_hf_input(model, x, lengths), attention_mask=attention_mask(lengths, x.shape[1]))
    assert _max_abs_valid(ours.logits, ref.logits, ours.frame_lengths) < 1e-4


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("weighted", [False, True])
def test_classification_logits_match_hf(variant, weighted):
    torch.manual_seed(2)
    model = build_model("tiny", "cls", num_labels=8, use_weighted_layer_sum=weighted, **VARIANTS[variant]).eval()
    if weighted:  # non-uniform layer weights, so a wrong layer order would show
        with torch.no_grad():
            model.layer_weighting.weights.copy_(torch.linspace(-1.0, 1.0, model.layer_weighting.weights.numel()))
    hf = hf_twin(model)
    x, lengths = padded_batch(LENGTHS, seed=2)
    with torch.no_grad():
        ours = model(x, lengths)
        ref = hf(_hf_input(model, x, lengths), attention_mask=attention_mask(lengths, x.shape[1]))
    assert float((ours.logits - ref.logits).abs().max()) < 1e-4


@pytest.mark.parametrize("variant", VARIANTS)
def test_pretraining_losses_match_hf(variant, monkeypatch):
    """Train mode, dropout off, the same mask and negatives: contrastive and diversity agree."""
    monkeypatch.setattr(torch.nn.functional, "gumbel_softmax", deterministic_gumbel)
    torch.manual_seed(3)
    model = build_model("tiny", "pretrain", **VARIANTS[variant], **NO_DROPOUT).train()
    hf = hf_twin(model)
    x, lengths = padded_batch(LENGTHS, seed=3)
    frames = model.wav2vec2.feature_extractor.output_lengths(lengths)
    num_frames = int(frames.max())
    mask = compute_time_mask(frames, num_frames, 0.65, 10, 2)
    positions = masked_positions(mask)
    b, m = positions.shape
    negatives = sample_negatives(b, m, model.config.num_negatives)
    # HF wants [B, T, K] indices into the flattened B*T frames
    hf_neg = torch.zeros(b, num_frames, negatives.shape[-1], dtype=torch.long)
    for i in range(b):
        hf_neg[i, positions[i]] = positions[i][negatives[i]] + i * num_frames
    ours = model(x, lengths, mask_time=mask, negatives=negatives)
    ref = hf(_hf_input(model, x, lengths), attention_mask=attention_mask(lengths, x.shape[1]),
             mask_time_indices=mask, sampled_negative_indices=hf_neg)
    assert ours.sample_size == int(mask.sum())
    torch.testing.assert_close(ours.contrastive_loss, ref.contrastive_loss, rtol=1e-4, atol=0)
    torch.testing.assert_close(ours.diversity_loss, ref.diversity_loss, rtol=1e-4, atol=0)
    torch.testing.assert_close(ours.prob_perplexity, ref.codevector_perplexity, rtol=1e-4, atol=0)
    # the gradients flow the same way: compare one parameter deep in the network
    ours_total = ours.contrastive_loss + 0.1 * ours.diversity_loss
    ours_total.backward()
    ref.loss.backward()
    g_ours = model.wav2vec2.encoder.layers[0].ffn.fc1.weight.grad
    g_ref = hf.wav2vec2.encoder.layers[0].feed_forward.intermediate_dense.weight.grad
    torch.testing.assert_close(g_ours, g_ref, rtol=1e-3, atol=1e-5)
