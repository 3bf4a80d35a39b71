"""Analytic FLOPs of a wav2vec 2.0 pretraining update, for throughput and MFU figures.

Counted as 2 FLOPs per multiply-accumulate of the matrix products (norms, activations and
softmaxes are left out: they are memory-bound and under 2 % here). Per utterance of T samples
with F = frames:

* conv encoder: sum over layers of 2 * C_in * k * C_out * T_out(layer);
* feature projection: 2 * C * D * F;
* positional conv: 2 * D * (D / groups) * kernel * F;
* each transformer block: 2 * F * (4 D^2 + 2 D * FFN) for the projections and FFN, plus
  2 * 2 * F^2 * D for the attention scores and the weighted sum;
* pretraining head: final_proj 2 D d F_m and project_q, quantizer logits 2 C (G V) F_m and the
  [M, M] similarity matrix 2 M^2 d, with M = masked frames (about half of F);
* backward = 2 x forward, so an update is 3 x forward (the conv encoder's first layer has no
  input gradient; ignored).

MFU = (FLOPs per update / seconds per update) / the device's peak dense FLOP/s.
"""
from __future__ import annotations

from ..models.wav2vec2.config import Wav2Vec2Config

# dense peak FLOP/s of one device, by dtype (vendor data sheets, no sparsity)
PEAK_FLOPS = {
    "H100": {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12},
    "H200": {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12},
    "A100": {"bf16": 312e12, "fp16": 312e12, "fp32": 19.5e12},
    "V100": {"bf16": 0.0, "fp16": 125e12, "fp32": 15.7e12},
}


def forward_flops(config: Wav2Vec2Config, num_samples: int, mask_fraction: float = 0.5, pretrain: bool = True) -> float:
    """Forward FLOPs for one utterance of ``num_samples`` samples."""
    flops = 0.0
    length, in_ch = num_samples, 1
    for ch, k, s in config.conv_layers:
        length = (length - k) // s + 1
        flops += 2.0 * in_ch * k * ch * length
        in_ch = ch
    frames = length
    d, ffn = config.encoder_embed_dim, config.encoder_ffn_embed_dim
    flops += 2.0 * config.conv_dim * d * frames
    flops += 2.0 * d * (d / config.conv_pos_groups) * config.conv_pos * frames
    flops += config.encoder_layers * (2.0 * frames * (4 * d * d + 2 * d * ffn) + 4.0 * frames * frames * d)
    if pretrain:
        m = mask_fraction * frames
        gv = config.latent_groups * config.latent_vars
        flops += 2.0 * m * (d * config.final_dim + config.latent_dim * config.final_dim + config.conv_dim * gv)
        flops += 2.0 * m * m * config.final_dim
    return flops


def update_flops(config: Wav2Vec2Config, lengths: list[int], pretrain: bool = True) -> float:
    """Forward + backward FLOPs of one batch (3 x forward)."""
    return 3.0 * sum(forward_flops(config, n, pretrain=pretrain) for n in lengths)


def peak_flops(device_name: str, dtype: str) -> float | None:
    for key, table in PEAK_FLOPS.items():
        if key in device_name.upper():
            return table.get(dtype) or None
    return None
