"""Every preset's parameter counts are within ±3 % of the figures documented in the code and
in README.md, and the presets are what they claim to be."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from ds_w2v.models.wav2vec2 import DOCUMENTED_PARAMS_M, PRESETS, count_parameters, preset_config

README = Path(__file__).resolve().parents[3] / "README.md"


def _readme_table() -> dict[str, tuple[float, float]]:
    rows = {}
    for line in README.read_text().splitlines():
        m = re.match(r"\|\s*(\w+)\s*\|.*\|\s*([\d.]+)M\s*\|\s*([\d.]+)M\s*\|\s*$", line)
        if m and m.group(1) in PRESETS:
            rows[m.group(1)] = (float(m.group(2)), float(m.group(3)))
    return rows


@pytest.mark.parametrize("name", PRESETS)
def test_counts_match_documentation(name):
    counts = count_parameters(preset_config(name))
    total_m, ctc_m = counts["pretrain_total"] / 1e6, counts["ctc_trainable"] / 1e6
    for doc_total, doc_ctc in (DOCUMENTED_PARAMS_M[name], _readme_table()[name]):
        assert total_m == pytest.approx(doc_total, rel=0.03)
        assert ctc_m == pytest.approx(doc_ctc, rel=0.03)


def test_study_figures():
    """The study's figures: BASE 95.0M whole / 90.2M CTC-trainable, medium 61.8M, small ~36M."""
    assert count_parameters(preset_config("original"))["pretrain_total"] / 1e6 == pytest.approx(95.0, rel=0.03)
    assert count_parameters(preset_config("original"))["ctc_trainable"] / 1e6 == pytest.approx(90.2, rel=0.03)
    assert count_parameters(preset_config("medium"))["ctc_trainable"] / 1e6 == pytest.approx(61.8, rel=0.03)
    assert count_parameters(preset_config("small"))["ctc_trainable"] / 1e6 == pytest.approx(36.0, rel=0.03)
    assert count_parameters(preset_config("tiny"))["pretrain_total"] <= 6e6


def test_original_is_base_and_large_is_large():
    base = preset_config("original")
    assert (base.encoder_layers, base.encoder_embed_dim, base.encoder_ffn_embed_dim, base.encoder_attention_heads) == (12, 768, 3072, 12)
    assert not base.layer_norm_first and base.extractor_mode == "group" and not base.conv_bias
    assert [c for c, _, _ in base.conv_layers] == [512] * 7
    assert [k for _, k, _ in base.conv_layers] == [10, 3, 3, 3, 3, 2, 2]
    assert [s for _, _, s in base.conv_layers] == [5, 2, 2, 2, 2, 2, 2]
    assert base.receptive_field == 400 and base.total_stride == 320
    assert (base.latent_groups, base.latent_vars, base.latent_dim, base.num_negatives) == (2, 320, 256, 100)
    large = preset_config("large")
    assert (large.encoder_layers, large.encoder_embed_dim, large.encoder_ffn_embed_dim, large.encoder_attention_heads) == (24, 1024, 4096, 16)
    assert large.layer_norm_first and large.extractor_mode == "layer" and large.conv_bias and large.final_dim == 768
    assert preset_config("medium").encoder_layers == 8 and preset_config("medium").encoder_embed_dim == 768


def test_small_keeps_head_width():
    small = preset_config("small")
    assert small.encoder_embed_dim // small.encoder_attention_heads == 64
    assert small.encoder_ffn_embed_dim == 4 * small.encoder_embed_dim


def test_overrides_and_unknown_preset():
    assert preset_config("tiny", encoder_layers=2).encoder_layers == 2
    with pytest.raises(ValueError, match="known presets: tiny, small, medium, original, large"):
        preset_config("base")


@pytest.mark.parametrize("preset", ["tiny", "original"])
def test_num_frames_agrees_with_the_conv_encoder(preset):
    """The host-side frame count (batch arithmetic, benches) is the encoder's own, at edge lengths."""
    import torch

    from ds_w2v import build_model

    model = build_model(preset, "pretrain")
    cfg = model.config
    lengths = [cfg.receptive_field, cfg.receptive_field + 1, 16000, 16000 + cfg.total_stride - 1, 250_000]
    want = model.wav2vec2.feature_extractor.output_lengths(torch.tensor(lengths)).tolist()
    assert [cfg.num_frames(n) for n in lengths] == want
    assert cfg.num_frames(cfg.receptive_field) == 1
