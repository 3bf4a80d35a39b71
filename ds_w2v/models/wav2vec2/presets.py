"""Model sizes by name, each a parent plus the fields it changes.

==========  =======================================================================  =========
preset      architecture                                                              parent
==========  =======================================================================  =========
original    BASE exactly (paper §4.2): 12 blocks, 768 wide, FFN 3072, 12 heads,        --
            post-LN, group-norm conv encoder, 2 x 320 codebooks of 256-d
medium      BASE with 8 blocks (the study's "Medium": BASE cut to its first 8 layers)  original
small       12 -> 11 blocks at 512 wide, 8 heads of 64 (BASE's head width), FFN 4x    original
tiny        4 blocks, 256 wide, 4 heads, FFN 1024, 128-channel conv encoder, pre-LN   original
large       24 blocks, 1024 wide, FFN 4096, 16 heads, pre-LN, layer-norm conv         original
            encoder with bias, 768-d codevectors and final space, normalised audio
==========  =======================================================================  =========

``small`` scales BASE's *width* (768 -> 512, FFN kept at 4x, head width kept at 64) rather than
its depth alone, because depth carries wav2vec 2.0's contextualisation (medium already
studies depth), and 11 blocks put it at the study's ~36M budget under its counting rule.
Dimensions stay multiples of 128 so GEMMs tile cleanly on tensor cores and AVX-512.

``tiny`` is pre-LN (LARGE's block order, BASE's group-norm encoder) because its runs are short:
the CPU demo needs lr 1e-3, at which a post-LN tiny collapsed to all-blank CTC output even when
over-fitting five utterances (3e-4 trains; measured 2026-11-24), while pre-LN trains at 1e-3.

**Counting rule** (:func:`count_parameters`): the study counted the trainable parameters of a
CTC model (32-token character vocabulary, as wav2vec2-base-960h) with the conv feature encoder
frozen: BASE is 90.2M that way, and 95.0M as a whole pretraining model (quantizer and
projections included). Both figures are given for every preset.
"""
from __future__ import annotations

from typing import Any

from .config import Wav2Vec2Config

# name -> (parent, deltas)
_PRESETS: dict[str, tuple[str | None, dict[str, Any]]] = {
    "original": (None, {}),
    "medium": ("original", {"encoder_layers": 8}),
    "small": (
        "original",
        {"encoder_layers": 11, "encoder_embed_dim": 512, "encoder_ffn_embed_dim": 2048, "encoder_attention_heads": 8},
    ),
    "tiny": (
        "original",
        {
            "conv_layers": tuple((128, k, s) for _, k, s in Wav2Vec2Config().conv_layers),
            "encoder_layers": 4,
            "encoder_embed_dim": 256,
            "encoder_ffn_embed_dim": 1024,
            "encoder_attention_heads": 4,
            "latent_dim": 128,
            "final_dim": 128,
            "layer_norm_first": True,
        },
    ),
    "large": (
        "original",
        {
            "extractor_mode": "layer",
            "conv_bias": True,
            "normalize_audio": True,
            "encoder_layers": 24,
            "encoder_embed_dim": 1024,
            "encoder_ffn_embed_dim": 4096,
            "encoder_attention_heads": 16,
            "layer_norm_first": True,
            "latent_dim": 768,
            "final_dim": 768,
            "encoder_layerdrop": 0.0,
            "dropout_features": 0.1,
        },
    ),
}

PRESETS = ("tiny", "small", "medium", "original", "large")

# Documented parameter counts in millions: (whole pretraining model, CTC trainable with the conv
# encoder frozen). README.md carries the same table; tests/models/wav2vec2/test_presets.py checks
# both the code and the README against the built models (±3 %).
DOCUMENTED_PARAMS_M: dict[str, tuple[float, float]] = {
    "tiny": (4.2, 3.7),
    "small": (41.8, 37.1),
    "medium": (66.7, 61.8),
    "original": (95.0, 90.2),
    "large": (317.4, 311.3),
}

def preset_config(name: str, **overrides: Any) -> Wav2Vec2Config:
    """The config of preset ``name`` (parents' deltas applied first), then ``overrides``."""
    if name not in _PRESETS:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}")
    chain = []
    while name is not None:
        parent, deltas = _PRESETS[name]
        chain.append(deltas)
        name = parent
    merged: dict[str, Any] = {}
    for deltas in reversed(chain):
        merged.update(deltas)
    merged.update(overrides)
    return Wav2Vec2Config().replace(**merged)


def count_parameters(config: Wav2Vec2Config, vocab_size: int = 32) -> dict[str, int]:
    """{"pretrain_total": all parameters of the pretraining model,
    "ctc_trainable": parameters of the CTC model minus the conv feature encoder (the study's rule)}."""
    import torch

    from .heads import Wav2Vec2ForCTC
    from .model import Wav2Vec2ForPretraining

    with torch.device("meta"):
        pre = Wav2Vec2ForPretraining(config)
        ctc = Wav2Vec2ForCTC(config, _vocab(vocab_size))
    conv = sum(p.numel() for p in ctc.wav2vec2.feature_extractor.parameters())
    return {
        "pretrain_total": sum(p.numel() for p in pre.parameters()),
        "ctc_trainable": sum(p.numel() for p in ctc.parameters()) - conv,
    }


def _vocab(size: int) -> list[str]:
    from ...text import SPECIAL_TOKENS

    return list(SPECIAL_TOKENS) + [chr(ord("a") + i) if i < 26 else f"c{i}" for i in range(size - len(SPECIAL_TOKENS))]
