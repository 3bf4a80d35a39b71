"""Fine-tuning heads on the shared backbone.

* CTC (Graves et al. 2006) for speech recognition: dropout -> Linear(D, vocab) per frame; the
  blank is id 0 = ``<pad>`` and ``|`` separates words (``ds_w2v.text.CharVocab``); the
  vocabulary travels with the model so decoding never depends on the data directory.
* Sequence classification (speech emotion recognition): Linear(D, 256) -> mean over the real
  frames only (padding never enters the average) -> Linear(256, num_labels); optionally the
  pooled input is a learned softmax-weighted sum of every layer's output (SUPERB-style).

In training, both apply the fine-tuning time/channel masking of the config (SpecAugment-like,
fairseq base_100h); in evaluation nothing is masked.
"""
from __future__ import annotations

import string
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...text import BLANK_ID, SPECIAL_TOKENS, CharVocab
from .config import Wav2Vec2Config
from .model import Wav2Vec2Output, Wav2Vec2Task

# 32 symbols, as wav2vec2-base-960h: the specials, the apostrophe and a-z.
DEFAULT_VOCAB = CharVocab(list(SPECIAL_TOKENS) + ["'"] + list(string.ascii_lowercase))


class Wav2Vec2ForCTC(Wav2Vec2Task):
    task = "ctc"
    description = "speech recognition (CTC)"
    hf_architecture = "Wav2Vec2ForCTC"
    # fairseq examples/wav2vec/config/finetuning/base_100h.yaml: the conv encoder frozen,
    # SpecAugment-style time and channel masks, LayerDrop 0.1
    finetune_defaults = {"feature_grad_mult": 0.0, "mask_prob": 0.65, "mask_channel_prob": 0.5,
                         "mask_channel_length": 64, "encoder_layerdrop": 0.1, "activation_dropout": 0.1,
                         "dropout_features": 0.0}
    head_state = ("vocab",)

    def __init__(self, config: Wav2Vec2Config, vocab: CharVocab | Sequence[str]):
        super().__init__(config)
        self.vocab = vocab if isinstance(vocab, CharVocab) else CharVocab(list(vocab))
        self.dropout = nn.Dropout(config.final_dropout)
        self.lm_head = nn.Linear(config.encoder_embed_dim, len(self.vocab))
        self.reset_parameters()

    @classmethod
    def from_head_state(cls, config: Wav2Vec2Config,
                        vocab: CharVocab | Sequence[str] | str | Path | None = None) -> Wav2Vec2ForCTC:
        """``vocab``: a CharVocab, a token list or a vocab.json path; None: :data:`DEFAULT_VOCAB`."""
        if vocab is None:
            vocab = DEFAULT_VOCAB
        elif isinstance(vocab, (str, Path)):
            vocab = CharVocab.load(vocab)
        return cls(config, vocab)

    def extra_state(self) -> dict:
        return {"vocab": list(self.vocab.tokens)}

    def forward(
        self, waveform: torch.Tensor, lengths: torch.Tensor | None = None, targets: torch.Tensor | None = None
    ) -> Wav2Vec2Output:
        """``targets``: Long [B, S] label ids padded with -100 (HF convention); gives the summed
        CTC loss (fp32, zero_infinity) with ``sample_size`` = B."""
        lengths = self._validate(waveform, lengths)
        mask = self.training and self.config.mask_prob > 0
        out = self._backbone(waveform, lengths, mask_time=mask, update=self._num_updates)
        logits = self.lm_head(self.dropout(out.last_hidden_state))
        result = Wav2Vec2Output(out.last_hidden_state, out.frame_lengths, logits=logits, sample_size=waveform.shape[0])
        if targets is not None:
            result.loss = ctc_loss(logits, out.frame_lengths, targets)
        return result

    @torch.no_grad()
    def decode(self, logits: torch.Tensor, frame_lengths: torch.Tensor) -> list[str]:
        """Greedy CTC decoding: per-frame argmax, collapse repeats, drop blanks."""
        ids = logits.argmax(-1).cpu()
        return [self.vocab.decode_ctc(ids[b, : int(n)].tolist()) for b, n in enumerate(frame_lengths.cpu())]


def ctc_loss(logits: torch.Tensor, frame_lengths: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    valid = targets >= 0
    target_lengths = valid.sum(-1)
    log_probs = F.log_softmax(logits.float(), dim=-1).transpose(0, 1)  # [T, B, V]
    return F.ctc_loss(log_probs, targets[valid], frame_lengths, target_lengths, blank=BLANK_ID,
                      reduction="sum", zero_infinity=True)


class LayerWeightedSum(nn.Module):
    """softmax(w)-weighted sum of the transformer input and every block's output (SUPERB)."""

    def __init__(self, num_layers: int):
        super().__init__()
        self.weights = nn.Parameter(torch.full((num_layers,), 1.0 / num_layers))

    def forward(self, states: list[torch.Tensor]) -> torch.Tensor:
        if len(states) != self.weights.numel():  # LayerDrop skipped blocks
            raise RuntimeError("use_weighted_layer_sum needs encoder_layerdrop = 0")
        w = torch.softmax(self.weights, dim=-1)
        return (torch.stack(states, dim=0) * w[:, None, None, None]).sum(0)


class Wav2Vec2ForSequenceClassification(Wav2Vec2Task):
    task = "cls"
    description = "classification"
    hf_architecture = "Wav2Vec2ForSequenceClassification"
    # base_100h's frozen conv encoder, with light time masking, no channel masks and no LayerDrop
    finetune_defaults = {"feature_grad_mult": 0.0, "mask_prob": 0.05, "mask_channel_prob": 0.0,
                         "encoder_layerdrop": 0.0, "activation_dropout": 0.1, "dropout_features": 0.0}
    head_state = ("labels",)

    def __init__(self, config: Wav2Vec2Config, labels: Sequence[str]):
        super().__init__(config)
        if isinstance(labels, str) or not all(isinstance(x, str) and x for x in labels):
            # ["neutral", "calm", ...] copied from a docs snippet has an Ellipsis in it: say so
            raise ValueError(f"labels must be a list of non-empty strings (the class names), got {list(labels)!r}")
        if len(set(labels)) != len(labels):
            raise ValueError(f"labels name a class twice: {list(labels)}")
        if len(labels) < 2:
            raise ValueError(f"classification needs at least 2 labels, got {list(labels)}")
        self.labels = list(labels)
        num_layers = config.encoder_layers + 1  # the transformer input + every block's output
        if config.use_weighted_layer_sum:
            self.layer_weighting = LayerWeightedSum(num_layers)
        self.dropout = nn.Dropout(config.final_dropout)
        self.projector = nn.Linear(config.encoder_embed_dim, config.classifier_proj_size)
        self.classifier = nn.Linear(config.classifier_proj_size, len(self.labels))
        self.reset_parameters()

    @classmethod
    def from_head_state(cls, config: Wav2Vec2Config, labels: Sequence[str] | None = None,
                        num_labels: int | None = None) -> Wav2Vec2ForSequenceClassification:
        """``labels``, or ``num_labels`` for labels named ``0 .. N-1``."""
        if labels is None:
            if num_labels is None:
                raise ValueError(f"task {cls.task!r} needs labels=[...] or num_labels=N")
            labels = [str(i) for i in range(num_labels)]
        elif num_labels is not None and num_labels != len(labels):
            raise ValueError(f"num_labels={num_labels} but {len(labels)} labels given")
        return cls(config, labels)

    def extra_state(self) -> dict:
        return {"labels": list(self.labels)}

    def forward(
        self, waveform: torch.Tensor, lengths: torch.Tensor | None = None, labels: torch.Tensor | None = None
    ) -> Wav2Vec2Output:
        """``labels``: Long [B] class ids; gives the summed cross-entropy with ``sample_size`` = B."""
        lengths = self._validate(waveform, lengths)
        mask = self.training and self.config.mask_prob > 0
        weighted = self.config.use_weighted_layer_sum
        out = self._backbone(waveform, lengths, mask_time=mask, update=self._num_updates, return_all_layers=weighted)
        if weighted:
            hidden = self.layer_weighting(out.hidden_states)
        else:
            hidden = out.last_hidden_state
        h = self.projector(self.dropout(hidden))  # [B, T, P]
        if out.frame_mask is not None:
            pooled = (h * out.frame_mask[:, :, None]).sum(1) / out.frame_lengths[:, None].to(h.dtype)
        else:
            pooled = h.mean(1)
        logits = self.classifier(pooled)
        result = Wav2Vec2Output(out.last_hidden_state, out.frame_lengths, logits=logits, sample_size=waveform.shape[0])
        if labels is not None:
            result.loss = F.cross_entropy(logits.float(), labels.long(), reduction="sum")
        return result
