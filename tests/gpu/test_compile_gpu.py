"""``compile=blocks`` on the device (inductor: Triton kernels on a GPU, C++ on the CPU dry run): the
trainer's ``compile_model`` on a tiny CTC model, a padded batch (the key-padding-mask path), forward
and backward equal to the eager model's in fp32 (TF32 off), with every block really compiled and
one graph shared by the four blocks. tests/train/test_speed_options.py runs whole trainer updates
compiled, on the CPU."""
from __future__ import annotations

import copy

import pytest
import torch

from ds_w2v import build_model
from ds_w2v.train.trainer import compile_model

pytestmark = pytest.mark.gpu

NO_DROPOUT = dict(dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, dropout_input=0.0,
                  final_dropout=0.0, encoder_layerdrop=0.0, mask_prob=0.0, mask_channel_prob=0.0)


def _step(model, x, lengths):
    model.zero_grad(set_to_none=True)
    out = model(x, lengths)
    loss = sum(out.logits[i, :n].float().pow(2).mean() for i, n in enumerate(out.frame_lengths.tolist()))
    loss.backward()
    return out.logits.detach(), {k: p.grad for k, p in model.named_parameters() if p.grad is not None}


def test_compiled_blocks_equal_eager(device, strict_fp32):
    torch._dynamo.reset()
    counters = torch._dynamo.utils.counters
    counters.clear()
    torch.manual_seed(0)
    eager = build_model("tiny", "ctc", **NO_DROPOUT).train().to(device)
    compiled = copy.deepcopy(eager)
    assert compile_model(compiled, "blocks") == list(compiled.wav2vec2.encoder.layers)
    g = torch.Generator().manual_seed(0)
    for lengths in ([16000, 12000, 7000], [14400, 9000]):  # two lengths T: dynamic shapes, no recompilation
        lengths = torch.tensor(lengths)
        x = torch.randn(len(lengths), int(lengths.max()), generator=g) * 0.1 * (torch.arange(int(lengths.max())) < lengths[:, None])
        x, lengths = x.to(device), lengths.to(device)
        want, want_grads = _step(eager, x, lengths)
        got, got_grads = _step(compiled, x, lengths)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
        assert got_grads.keys() == want_grads.keys()
        for k in want_grads:
            torch.testing.assert_close(got_grads[k], want_grads[k], rtol=1e-3, atol=1e-5, msg=k)
    assert all(layer._compiled_call_impl is not None for layer in compiled.wav2vec2.encoder.layers)
    assert counters["stats"]["unique_graphs"] == 1 and counters["frames"]["ok"] == 1
    torch._dynamo.reset()
