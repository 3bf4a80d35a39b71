"""The wav2vec 2.0 network and its pretraining model.

``Wav2Vec2Backbone``: waveform -> feature encoder -> projection -> (masking) -> transformer.
``Wav2Vec2ForPretraining``: backbone + quantizer + the contrastive objective (paper §3).
The CTC and classification models in ``heads`` share the backbone and the ``Wav2Vec2Task``
base, which holds what every task model has: its config, its update counter (which drives the
Gumbel temperature and LayerDrop, and is saved in the state dict so a resumed run continues
both) and input validation.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import nn

from .config import Wav2Vec2Config
from .feature_encoder import FeatureEncoder
from .frontend import FeatureProjection, lengths_to_mask
from .masking import compute_channel_mask, compute_time_mask, masked_positions
from .init import init_weights
from .objective import contrastive_logits, contrastive_loss, diversity_loss, sample_negatives
from .quantizer import GumbelQuantizer
from .transformer import TransformerEncoder


@dataclass
class Wav2Vec2Output:
    """What every task model returns. ``loss`` is a *sum* over the batch; divide by
    ``sample_size`` (masked frames for pretraining, utterances for the heads) for a mean."""

    last_hidden_state: torch.Tensor  # [B, T, D]
    frame_lengths: torch.Tensor  # [B] valid frames per utterance
    hidden_states: list[torch.Tensor] = field(default_factory=list)  # when requested
    logits: torch.Tensor | None = None  # [B, T, V] (CTC), [B, num_labels] (cls), [B, M, K+1] (pretrain)
    loss: torch.Tensor | None = None
    sample_size: int = 0
    # pretraining parts (all fp32 scalars)
    contrastive_loss: torch.Tensor | None = None
    diversity_loss: torch.Tensor | None = None
    feature_penalty: torch.Tensor | None = None
    accuracy: torch.Tensor | None = None  # fraction of masked frames whose target scored highest
    code_perplexity: torch.Tensor | None = None
    prob_perplexity: torch.Tensor | None = None
    temperature: float | None = None
    mask_time: torch.Tensor | None = None  # [B, T] bool, frames that were masked


class BackboneOutput(NamedTuple):  # a tuple, so ZeRO-3's backward hooks see its tensors
    last_hidden_state: torch.Tensor
    frame_lengths: torch.Tensor
    frame_mask: torch.Tensor | None  # None when no utterance is padded
    features: torch.Tensor  # [B, T, C] LayerNorm-ed conv features (the quantizer's input)
    feature_penalty: torch.Tensor  # mean squared conv feature over real frames (fp32)
    mask_time: torch.Tensor | None
    hidden_states: list[torch.Tensor]


def check_inputs(waveform: torch.Tensor, lengths: torch.Tensor | None, min_samples: int) -> torch.Tensor:
    """Validate a batch and return its lengths (all full when ``lengths`` is None)."""
    if not isinstance(waveform, torch.Tensor):
        raise TypeError(f"waveform must be a torch.Tensor, got {type(waveform).__name__}")
    if waveform.dim() != 2:
        raise ValueError(
            f"waveform must be [batch, samples], got shape {tuple(waveform.shape)}"
            + ("; use waveform.unsqueeze(0) for one utterance" if waveform.dim() == 1 else "")
        )
    if not waveform.is_floating_point():
        raise TypeError(f"waveform must be float audio in [-1, 1], got {waveform.dtype} (int16 PCM: divide by 32768)")
    batch, num_samples = waveform.shape
    if batch == 0:
        raise ValueError("empty batch: waveform has 0 utterances")
    if lengths is None:
        lengths = torch.full((batch,), num_samples, dtype=torch.long, device=waveform.device)
    else:
        if not isinstance(lengths, torch.Tensor):
            lengths = torch.as_tensor(lengths)
        if lengths.shape != (batch,) or lengths.is_floating_point():
            raise ValueError(f"lengths must be an integer tensor of shape [{batch}], got {lengths.dtype} {tuple(lengths.shape)}")
        lengths = lengths.to(device=waveform.device, dtype=torch.long)
        if int(lengths.max()) > num_samples:
            raise ValueError(f"lengths exceed the padded length {num_samples}: max {int(lengths.max())}")
    shortest = int(lengths.min())
    if shortest < min_samples:
        raise ValueError(
            f"audio shorter than the receptive field: {shortest} samples < {min_samples} "
            f"({min_samples / 16:.0f} ms at 16 kHz)"
        )
    return lengths


def normalize_waveform(waveform: torch.Tensor, lengths: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Zero mean, unit variance per utterance over its real samples (padding stays 0):
    (x - mean) / sqrt(var + eps) with the biased variance, which is transformers' feature extractor
    for eps 1e-7 and fairseq's ``F.layer_norm(wav, wav.shape)`` for eps 1e-5
    (``Wav2Vec2Config.normalize_audio_eps``)."""
    mask = lengths_to_mask(lengths, waveform.shape[1]).to(waveform.dtype)
    n = lengths.to(waveform.dtype)[:, None]
    mean = (waveform * mask).sum(1, keepdim=True) / n
    var = (((waveform - mean) * mask) ** 2).sum(1, keepdim=True) / n
    return (waveform - mean) / torch.sqrt(var + eps) * mask


class Wav2Vec2Backbone(nn.Module):
    def __init__(self, config: Wav2Vec2Config):
        super().__init__()
        self.config = config
        self.feature_extractor = FeatureEncoder(config)
        self.feature_projection = FeatureProjection(config)
        self.mask_emb = nn.Parameter(torch.empty(config.encoder_embed_dim).uniform_())  # U(0, 1)
        self.encoder = TransformerEncoder(config)

    def forward(
        self,
        waveform: torch.Tensor,
        lengths: torch.Tensor,
        mask_time: torch.Tensor | bool = False,
        update: int = 0,
        return_all_layers: bool = False,
    ) -> BackboneOutput:
        """``mask_time``: a bool [B, T] frame mask, True to draw one, False for none."""
        cfg = self.config
        if cfg.normalize_audio:
            waveform = normalize_waveform(waveform, lengths, cfg.normalize_audio_eps)
        feats = self.feature_extractor(waveform)  # [B, T, C]
        batch, num_frames, _ = feats.shape
        frame_lengths = self.feature_extractor.output_lengths(lengths)
        padded = bool((frame_lengths < num_frames).any())
        frame_mask = lengths_to_mask(frame_lengths, num_frames) if padded else None

        sq = feats.float().pow(2).mean(-1)  # [B, T]
        if frame_mask is not None:
            feature_penalty = (sq * frame_mask).sum() / frame_lengths.sum()
        else:
            feature_penalty = sq.mean()

        x, normed = self.feature_projection(feats)
        if mask_time is True:
            mask_time = compute_time_mask(frame_lengths, num_frames, cfg.mask_prob, cfg.mask_length, cfg.mask_min_spans)
        if isinstance(mask_time, torch.Tensor):
            if mask_time.shape != (batch, num_frames):
                raise ValueError(f"mask_time must be [{batch}, {num_frames}], got {tuple(mask_time.shape)}")
            x = torch.where(mask_time[:, :, None], self.mask_emb.to(x.dtype), x)
        else:
            mask_time = None
        if self.training and cfg.mask_channel_prob > 0:
            ch = compute_channel_mask(batch, x.shape[-1], cfg.mask_channel_prob, cfg.mask_channel_length,
                                      cfg.mask_channel_min_spans, x.device)
            x = x.masked_fill(ch[:, None, :], 0.0)
        x, states = self.encoder(x, frame_mask, update=update, return_all_layers=return_all_layers)
        return BackboneOutput(x, frame_lengths, frame_mask, normed, feature_penalty, mask_time, states)


class Wav2Vec2Task(nn.Module):
    """Base of the task models: config, update counter, validation, freezing.

    A task model class also states what the model package knows of its task, read through
    ``registry.MODEL_TASKS`` (which checks that every one is stated):"""

    task: str
    """Its name in the registry and in model files (``"ctc"``)."""
    description: str
    """What the model does, in a user's words, for messages (``"speech recognition (CTC)"``)."""
    hf_architecture: str | None
    """transformers' class of the same model, for ``export_hf`` and loading an HF folder; None
    says that the task has no HF export."""
    finetune_defaults: dict[str, Any]
    """``Wav2Vec2Config`` deltas for this head when it is built from a preset or onto another
    task's backbone (fairseq's fine-tuning configs); the recipe's overrides come after them."""
    head_state: tuple[str, ...]
    """The keys of :meth:`extra_state`: what the head carries beside its weights (``vocab``,
    ``labels``) and :meth:`from_head_state` is given back."""

    @classmethod
    def from_head_state(cls, config: Wav2Vec2Config, **head: Any) -> Wav2Vec2Task:
        """A fresh model of ``config`` with the head state :meth:`extra_state` returns."""
        return cls(config, **head)

    def __init__(self, config: Wav2Vec2Config):
        super().__init__()
        self.config = config
        self.wav2vec2 = Wav2Vec2Backbone(config)
        # updates done so far; a buffer so that checkpoints carry it (Gumbel temperature, LayerDrop)
        self.register_buffer("num_updates", torch.zeros((), dtype=torch.long))
        self._num_updates = 0
        self.register_load_state_dict_post_hook(lambda module, _: module._sync_updates())
        # fine-tuning's first updates train the head only (fairseq freeze_finetune_updates)
        self.backbone_frozen = False

    def _sync_updates(self) -> None:
        self._num_updates = int(self.num_updates)

    def set_num_updates(self, num_updates: int) -> None:
        self.num_updates.fill_(num_updates)
        self._num_updates = int(num_updates)

    def freeze_feature_encoder(self) -> None:
        for p in self.wav2vec2.feature_extractor.parameters():
            p.requires_grad_(False)
        self.wav2vec2.feature_extractor.grad_mult = 0.0

    def _backbone(self, *args, **kwargs) -> BackboneOutput:
        """The backbone's forward; without autograd while ``backbone_frozen``."""
        if self.backbone_frozen:
            with torch.no_grad():
                return self.wav2vec2(*args, **kwargs)
        return self.wav2vec2(*args, **kwargs)

    def _validate(self, waveform: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        return check_inputs(waveform, lengths, self.config.receptive_field)

    def extra_state(self) -> dict:
        """Task data saved with the model file beside the weights (vocabulary, labels)."""
        return {}

    def reset_parameters(self) -> None:
        init_weights(self)


class Wav2Vec2ForPretraining(Wav2Vec2Task):
    task = "pretrain"
    description = "pretraining (no task head)"
    hf_architecture = "Wav2Vec2ForPreTraining"
    finetune_defaults: dict[str, Any] = {}  # pretraining continues with its own config
    head_state = ()

    def __init__(self, config: Wav2Vec2Config):
        super().__init__(config)
        self.dropout_features = nn.Dropout(config.dropout_features)
        self.quantizer = GumbelQuantizer(config.conv_dim, config.latent_vars, config.latent_groups, config.latent_dim)
        self.project_q = nn.Linear(config.latent_dim, config.final_dim)
        self.final_proj = nn.Linear(config.encoder_embed_dim, config.final_dim)
        self.reset_parameters()

    @property
    def temperature(self) -> float:
        start, floor, decay = self.config.latent_temp
        return max(start * decay**self._num_updates, floor)

    def forward(
        self,
        waveform: torch.Tensor,
        lengths: torch.Tensor | None = None,
        mask_time: torch.Tensor | None = None,
        negatives: torch.Tensor | None = None,
    ) -> Wav2Vec2Output:
        """Pretraining forward: masks (or uses ``mask_time``), quantizes the masked frames'
        features, draws (or uses ``negatives``, Long [B, M, K] into the M masked frames) and
        returns the loss and its parts. Masking applies in eval mode too (validation loss)."""
        cfg = self.config
        lengths = self._validate(waveform, lengths)
        out = self.wav2vec2(waveform, lengths, mask_time=True if mask_time is None else mask_time,
                            update=self._num_updates)
        mask = out.mask_time
        positions = masked_positions(mask)  # [B, M]
        batch, num_masked = positions.shape
        if num_masked < 2:
            raise ValueError(
                f"utterances too short to mask: {num_masked} masked frames (need >= 2 per utterance; "
                f"shortest has {int(out.frame_lengths.min())} frames, mask_length {cfg.mask_length})"
            )
        idx = positions[:, :, None]
        context = out.last_hidden_state.gather(1, idx.expand(-1, -1, out.last_hidden_state.shape[-1]))
        predicted = self.final_proj(context)  # [B, M, final_dim]
        feats = self.dropout_features(out.features).gather(1, idx.expand(-1, -1, out.features.shape[-1]))
        q = self.quantizer(feats.reshape(batch * num_masked, -1), self.temperature)
        targets = self.project_q(q.quantized.to(self.project_q.weight.dtype)).view(batch, num_masked, -1)
        if negatives is None:
            negatives = sample_negatives(batch, num_masked, cfg.num_negatives, device=waveform.device)
        logits = contrastive_logits(predicted, targets, q.codes.view(batch, num_masked, -1), negatives, cfg.logit_temp)
        closs, correct = contrastive_loss(logits)
        total = batch * num_masked
        div = diversity_loss(q.prob_perplexity, cfg.latent_groups * cfg.latent_vars, total)
        pen = out.feature_penalty * total
        loss = closs + cfg.diversity_weight * div + cfg.feature_pen_weight * pen
        return Wav2Vec2Output(
            last_hidden_state=out.last_hidden_state,
            frame_lengths=out.frame_lengths,
            logits=logits,
            loss=loss,
            sample_size=total,
            contrastive_loss=closs,
            diversity_loss=div,
            feature_penalty=pen,
            accuracy=correct.float() / total,
            code_perplexity=q.code_perplexity,
            prob_perplexity=q.prob_perplexity,
            temperature=self.temperature,
            mask_time=mask,
        )
