"""Typed configuration of a wav2vec 2.0 model.

Field names follow fairseq's ``Wav2Vec2Config`` where one exists, so that a reader of the paper
(Baevski et al. 2020, "wav2vec 2.0", arXiv:2006.11477) or of fairseq recipes finds them; the
defaults are the BASE model's pretraining values. Sizes are built from these defaults by the
presets in :mod:`ds_w2v.models.wav2vec2.presets`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

# (channels, kernel, stride) per conv layer of the BASE feature encoder (paper §4.2): 7 layers,
# strides multiply to 320 samples = 20 ms at 16 kHz, receptive field 400 samples = 25 ms.
BASE_CONV_LAYERS: tuple[tuple[int, int, int], ...] = (
    (512, 10, 5),
    (512, 3, 2),
    (512, 3, 2),
    (512, 3, 2),
    (512, 3, 2),
    (512, 2, 2),
    (512, 2, 2),
)


@dataclass
class Wav2Vec2Config:
    # --- feature encoder (paper §2, "Feature encoder") -------------------------------------
    conv_layers: tuple[tuple[int, int, int], ...] = BASE_CONV_LAYERS
    """(channels, kernel, stride) of each 1-D conv layer over the raw waveform."""
    extractor_mode: str = "group"
    """"group": GroupNorm on layer 0 only, no conv bias (BASE); "layer": LayerNorm after every
    conv layer, with conv bias (LARGE)."""
    conv_bias: bool = False
    """Bias in the feature encoder convolutions (fairseq: False for BASE, True for LARGE)."""
    feature_grad_mult: float = 0.1
    """Scale of the gradient flowing into the feature encoder (fairseq BASE pretraining: 0.1;
    0 freezes it, which is also how fine-tuning treats it)."""
    normalize_audio: bool = False
    """Normalise each waveform to zero mean, unit variance over its valid samples (fairseq
    ``normalize``: False for BASE, True for LARGE)."""
    normalize_audio_eps: float = 1e-7
    """Added to the variance (in squared sample units, audio in [-1, 1]) before the square root
    when ``normalize_audio``: 1e-7 is transformers' Wav2Vec2FeatureExtractor (the models built here
    and read from HF), 1e-5 fairseq's (``F.layer_norm``'s default eps in its audio dataset), set when
    a fairseq checkpoint is read. It matters for quiet audio: at RMS 0.01 (variance 1e-4) 1e-5 scales
    the waveform by 1/sqrt(1.1e-4) instead of 1/sqrt(1.001e-4), 5 % apart."""

    # --- transformer (paper §2, "Contextualized representations") --------------------------
    encoder_layers: int = 12
    """Transformer blocks (BASE 12, LARGE 24; this package's medium 8, small 11, tiny 4)."""
    encoder_embed_dim: int = 768
    """Width of the transformer (and of the projected conv features): BASE 768, LARGE 1024."""
    encoder_ffn_embed_dim: int = 3072
    """Inner width of each block's feed-forward layer (4 x the width in every preset)."""
    encoder_attention_heads: int = 12
    """Self-attention heads per block (head size = width / heads: 64 in BASE and LARGE)."""
    layer_norm_first: bool = False
    """False: post-LN blocks and a LayerNorm before the first block (BASE); True: pre-LN blocks
    and a final LayerNorm (LARGE; more stable when deep)."""
    layer_norm_eps: float = 1e-5
    """Epsilon of the transformer's LayerNorms (fairseq and transformers: 1e-5)."""
    conv_pos: int = 128
    """Kernel width (frames) of the convolutional positional embedding (paper §4.2)."""
    conv_pos_groups: int = 16
    """Groups of the convolutional positional embedding (paper §4.2: 16)."""
    activation_fn: str = "gelu"
    """The feed-forward layer's activation: gelu, the one wav2vec 2.0 uses and the only one the blocks
    run (fairseq's and HF's config files carry the key; another value is refused)."""

    # --- dropouts (fairseq BASE pretraining values) -----------------------------------------
    dropout: float = 0.1
    """Residual dropout in the transformer."""
    attention_dropout: float = 0.1
    """Dropout on the attention probabilities."""
    activation_dropout: float = 0.0
    """Dropout after the feed-forward activation."""
    dropout_input: float = 0.1
    """Dropout on the projected features fed to the transformer."""
    dropout_features: float = 0.1
    """Dropout on the unmasked features fed to the quantizer."""
    encoder_layerdrop: float = 0.05
    """Probability of skipping a whole transformer block per update (Fan et al. 2019)."""
    final_dropout: float = 0.0
    """Dropout before the CTC / classification head."""

    # --- masking (paper §3.1; fairseq compute_mask_indices) ---------------------------------
    mask_prob: float = 0.65
    """Fraction of frames chosen as span starts: mask_prob * T / mask_length spans."""
    mask_length: int = 10
    """Span length in frames (10 frames = 200 ms)."""
    mask_min_spans: int = 2
    """At least this many time-mask spans per utterance (fairseq ``mask_min_masks``: 2 in pretraining)."""
    mask_channel_prob: float = 0.0
    """Channel masking for fine-tuning (fairseq base_100h: 0.25 with length 64)."""
    mask_channel_length: int = 10
    """Width (feature channels) of each channel-mask span (fine-tuning's SpecAugment-like masking)."""
    mask_channel_min_spans: int = 0
    """At least this many channel-mask spans per utterance when ``mask_channel_prob`` > 0."""

    # --- quantizer (paper §2, "Quantization module") ----------------------------------------
    latent_vars: int = 320
    """Entries per codebook (V)."""
    latent_groups: int = 2
    """Codebooks (G); the quantized vector is the concatenation of one entry per group."""
    latent_dim: int = 256
    """Dimension of a quantized vector (each group contributes latent_dim / G)."""
    final_dim: int = 256
    """Dimension of the space where contrastive similarity is computed."""
    latent_temp: tuple[float, float, float] = (2.0, 0.5, 0.999995)
    """Gumbel temperature (start, floor, decay per update): max(start * decay**update, floor)."""

    # --- pretraining objective (paper §3.2) -------------------------------------------------
    num_negatives: int = 100
    """Distractors per masked frame, drawn from masked frames of the same utterance."""
    logit_temp: float = 0.1
    """kappa: cosine similarities are divided by it."""
    diversity_weight: float = 0.1
    """alpha: weight of the codebook diversity loss."""
    feature_pen_weight: float = 10.0
    """Weight of the L2 penalty on feature-encoder outputs (fairseq BASE recipe)."""

    # --- heads ------------------------------------------------------------------------------
    classifier_proj_size: int = 256
    """Width of the projection before mean pooling in the classification head."""
    use_weighted_layer_sum: bool = False
    """Classification head pools a learned softmax-weighted sum of all layer outputs."""

    # derived -------------------------------------------------------------------------------
    @property
    def conv_dim(self) -> int:
        return self.conv_layers[-1][0]

    @property
    def receptive_field(self) -> int:
        """Samples of audio one output frame sees (400 for BASE)."""
        rf = 1
        for _, k, s in reversed(self.conv_layers):
            rf = (rf - 1) * s + k
        return rf

    def num_frames(self, num_samples: int) -> int:
        """Frames the conv encoder makes of ``num_samples`` samples: L <- floor((L - k) / s) + 1 per
        layer (49 per second for BASE). ``FeatureEncoder.output_lengths`` is the same on tensors."""
        length = int(num_samples)
        for _, k, s in self.conv_layers:
            length = (length - k) // s + 1
        return length

    @property
    def total_stride(self) -> int:
        """Samples between output frames (320 = 20 ms at 16 kHz for BASE)."""
        out = 1
        for _, _, s in self.conv_layers:
            out *= s
        return out

    def __post_init__(self) -> None:
        self.conv_layers = tuple(tuple(int(x) for x in layer) for layer in self.conv_layers)
        self.latent_temp = tuple(float(x) for x in self.latent_temp)
        errors = []
        if self.activation_fn != "gelu":  # the blocks run GELU: another name would be silently ignored
            errors.append(f"activation_fn must be 'gelu' (the only one the blocks run), got {self.activation_fn!r}")
        if self.extractor_mode not in ("group", "layer"):
            errors.append(f"extractor_mode must be 'group' or 'layer', got {self.extractor_mode!r}")
        if self.encoder_embed_dim % self.encoder_attention_heads:
            errors.append("encoder_embed_dim must be divisible by encoder_attention_heads")
        if self.encoder_embed_dim % self.conv_pos_groups:
            errors.append("encoder_embed_dim must be divisible by conv_pos_groups")
        if self.latent_dim % self.latent_groups:
            errors.append("latent_dim must be divisible by latent_groups")
        if not 0 <= self.mask_prob < 1 or not 0 <= self.mask_channel_prob < 1:
            errors.append("mask_prob and mask_channel_prob must be in [0, 1)")
        if not self.normalize_audio_eps > 0:
            errors.append(f"normalize_audio_eps must be > 0, got {self.normalize_audio_eps}")
        if self.num_negatives < 1:
            errors.append("num_negatives must be >= 1")
        if any(len(layer) != 3 for layer in self.conv_layers) or not self.conv_layers:
            errors.append("conv_layers must be a non-empty list of (channels, kernel, stride)")
        if errors:
            raise ValueError("invalid Wav2Vec2Config: " + "; ".join(errors))

    # serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["conv_layers"] = [list(x) for x in self.conv_layers]
        d["latent_temp"] = list(self.latent_temp)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Wav2Vec2Config":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown Wav2Vec2Config keys: {unknown}")
        return cls(**d)

    def replace(self, **overrides: Any) -> "Wav2Vec2Config":
        """A copy with ``overrides`` applied; unknown keys are an error naming them."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown Wav2Vec2Config keys: {unknown}")
        return dataclasses.replace(self, **overrides)


__all__ = ["Wav2Vec2Config", "BASE_CONV_LAYERS"]
