"""Helpers to build the HF transformers twin of one of our models (test-only dependency)."""
from __future__ import annotations

import torch

transformers = __import__("pytest").importorskip("transformers")

from ds_w2v.models.wav2vec2.interop_hf import to_hf_config, to_hf_state_dict  # noqa: E402

HF_CLASSES = {
    "pretrain": "Wav2Vec2ForPreTraining",
    "ctc": "Wav2Vec2ForCTC",
    "cls": "Wav2Vec2ForSequenceClassification",
}


def hf_twin(model, attn_implementation: str = "sdpa"):
    """An HF model with ``model``'s config and weights (strict load: every tensor mapped)."""
    d = to_hf_config(model.config, model.task, model.extra_state())
    d = {k: v for k, v in d.items() if k not in ("model_type", "architectures", "ds_w2v")}
    cfg = transformers.Wav2Vec2Config(**d)
    cfg._attn_implementation = attn_implementation
    hf = getattr(transformers, HF_CLASSES[model.task])(cfg)
    hf.load_state_dict(to_hf_state_dict(model.state_dict()), strict=True)
    return hf.train(model.training)


def deterministic_gumbel(logits, tau=1.0, hard=False, eps=1e-10, dim=-1):
    """Noise-free straight-through 'Gumbel' sample: the same in both implementations."""
    soft = (logits / tau).softmax(dim)
    hard_ = torch.zeros_like(soft).scatter_(dim, soft.argmax(dim, keepdim=True), 1.0)
    return hard_ - soft.detach() + soft if hard else soft


def padded_batch(lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(lengths)
    x = torch.randn(len(lengths), int(lengths.max()), generator=g) * 0.1
    x = x * (torch.arange(x.shape[1])[None] < lengths[:, None])
    return x, lengths


def attention_mask(lengths, total):
    return (torch.arange(total)[None] < lengths[:, None]).long()
