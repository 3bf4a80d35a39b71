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
  input gradient; ignored) — of what ran and has gradients flowing through it:

  - LayerDrop: only the blocks kept at the update count (``layers``: the number run);
  - a frozen conv feature encoder (``feature_grad_mult = 0``, fine-tuning's default: its
    parameters are out of the optimizer and nothing below it needs a gradient) runs forward only;
  - a frozen backbone (fine-tuning's first ``freeze_transformer_updates``, under ``no_grad``) runs
    forward only, and its head's cost is left out with the other heads'.

  Counting those backward passes anyway would put MFU 27 % too high for CTC fine-tuning of BASE
  (its conv encoder is 32 % of the forward FLOPs: 71.6 of 222 GFLOPs for 14.6 s of audio), and
  LayerDrop 0.1 another ~10 %.

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


def encoder_flops(config: Wav2Vec2Config, num_samples: int) -> tuple[float, int]:
    """(forward FLOPs of the conv feature encoder over ``num_samples`` samples, frames it outputs)."""
    flops = 0.0
    length, in_ch = num_samples, 1
    for ch, k, s in config.conv_layers:
        length = (length - k) // s + 1
        flops += 2.0 * in_ch * k * ch * length
        in_ch = ch
    return flops, length


def backbone_flops(config: Wav2Vec2Config, frames: int, layers: int | None = None) -> float:
    """Forward FLOPs above the conv encoder for ``frames`` frames: projection, positional conv and
    ``layers`` transformer blocks (default: all of them)."""
    d, ffn = config.encoder_embed_dim, config.encoder_ffn_embed_dim
    blocks = config.encoder_layers if layers is None else layers
    flops = 2.0 * config.conv_dim * d * frames
    flops += 2.0 * d * (d / config.conv_pos_groups) * config.conv_pos * frames
    return flops + blocks * (2.0 * frames * (4 * d * d + 2 * d * ffn) + 4.0 * frames * frames * d)


def pretrain_head_flops(config: Wav2Vec2Config, frames: int, mask_fraction: float = 0.5) -> float:
    """Forward FLOPs of pretraining's projections, quantizer and similarities."""
    m = mask_fraction * frames
    gv = config.latent_groups * config.latent_vars
    flops = 2.0 * m * (config.encoder_embed_dim * config.final_dim + config.latent_dim * config.final_dim
                       + config.conv_dim * gv)
    return flops + 2.0 * m * m * config.final_dim


def forward_flops(config: Wav2Vec2Config, num_samples: int, mask_fraction: float = 0.5, pretrain: bool = True,
                  layers: int | None = None) -> float:
    """Forward FLOPs for one utterance of ``num_samples`` samples (``layers``: blocks run, default all)."""
    conv, frames = encoder_flops(config, num_samples)
    flops = conv + backbone_flops(config, frames, layers)
    if pretrain:
        flops += pretrain_head_flops(config, frames, mask_fraction)
    return flops


def update_flops(config: Wav2Vec2Config, lengths: list[int], pretrain: bool = True, *, layers: int | None = None,
                 encoder_backward: bool | None = None, backbone_backward: bool = True) -> float:
    """Forward + backward FLOPs of one batch: 3 x the forward of what gradients flow through, 1 x
    the rest. ``layers``: transformer blocks run (LayerDrop; default all); ``encoder_backward``:
    whether the conv encoder has gradients (default: unless ``feature_grad_mult`` is 0, which the
    trainer freezes); ``backbone_backward``: False while the whole backbone is frozen."""
    if encoder_backward is None:
        encoder_backward = config.feature_grad_mult != 0.0
    encoder_backward = encoder_backward and backbone_backward
    total = 0.0
    for n in lengths:
        conv, frames = encoder_flops(config, n)
        rest = backbone_flops(config, frames, layers)
        head = pretrain_head_flops(config, frames) if pretrain else 0.0
        total += (3.0 if encoder_backward else 1.0) * conv
        total += (3.0 if backbone_backward else 1.0) * rest + 3.0 * head
    return total


def peak_flops(device_name: str, dtype: str) -> float | None:
    for key, table in PEAK_FLOPS.items():
        if key in device_name.upper():
            return table.get(dtype) or None
    return None
