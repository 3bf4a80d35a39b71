"""SUPERB phone recognition (PR): frozen upstream, weighted sum of its layers, a linear layer per
frame trained with CTC over the 39 folded TIMIT phones (+ blank), greedy decoding, phone error
rate on the test split.

SUPERB's PR (LibriSpeech phonemes) uses the same head -- a single linear layer, its lr 1e-2 with
Adam -- since the point is to measure how linearly accessible phone content is, not to train a
recogniser. Here the utterances are TIMIT's (the phone sequences of the shards' ``phones``);
PER = (substitutions + deletions + insertions) / reference phones, summed over the test split
(jiwer's word alignment over the space-joined phones). The dev split, when given, chooses the
epoch (lowest dev PER); the test split is scored once.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..data.sources.timit import PHONES_39
from ..text import edit_errors
from .downstream import DownstreamData, NormalizedLayerSum, fit, predict, weighted_layer_names
from .features import LayerFeatures
from .frames import PHONE_IDS
from .utterances import ProbeUtterance, require_phones

BLANK = 0  # CTC blank; phone i of PHONES_39 is id i + 1
EPOCHS = 20
LR = 1e-2  # SUPERB PR (s3prl downstream/ctc/libriphone.yaml)
BATCH_UTTERANCES = 8


class PhoneCTCHead(nn.Module):
    def __init__(self, num_layers: int, dim: int, num_phones: int = len(PHONES_39)):
        super().__init__()
        self.layers = NormalizedLayerSum(num_layers)
        self.proj = nn.Linear(dim, num_phones + 1)

    def forward(self, states: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.proj(self.layers(states))  # [B, T, 40] logits


def phone_targets(utterances: Sequence[ProbeUtterance]) -> list[list[int]]:
    return [[PHONE_IDS[p] + 1 for p in u.phones] for u in utterances]


def ctc_loss(logits: torch.Tensor, lengths: torch.Tensor, targets: list[list[int]]) -> torch.Tensor:
    """Mean over the batch of the summed CTC loss of each utterance (zero_infinity: an utterance
    with fewer frames than its phones need gives no gradient instead of inf)."""
    log_probs = F.log_softmax(logits.float(), dim=-1).transpose(0, 1)  # [T, B, V]
    flat = torch.tensor([t for seq in targets for t in seq], dtype=torch.long, device=logits.device)
    target_lengths = torch.tensor([len(t) for t in targets], dtype=torch.long, device=logits.device)
    return F.ctc_loss(log_probs, flat, lengths, target_lengths, blank=BLANK, reduction="sum",
                      zero_infinity=True) / len(targets)


def greedy_phones(logits: torch.Tensor) -> list[str]:
    """[T, V] -> phones: per-frame argmax, repeats collapsed, blanks dropped."""
    ids = logits.argmax(-1).tolist()
    out, prev = [], None
    for i in ids:
        if i != prev and i != BLANK:
            out.append(PHONES_39[i - 1])
        prev = i
    return out


def phone_error_rate(hyps: Sequence[Sequence[str]], refs: Sequence[Sequence[str]]) -> float:
    """Phone edits over reference phones, summed over the utterances (as the phone-CTC task's PER)."""
    import jiwer

    edits, phones = edit_errors([" ".join(r) for r in refs], [" ".join(h) for h in hyps], jiwer.process_words)
    return edits / max(phones, 1)


def _per(head: nn.Module, data: DownstreamData, device: torch.device) -> float:
    hyps = [greedy_phones(y) for y in predict(head, data, BATCH_UTTERANCES, device)]
    refs = [[PHONES_39[t - 1] for t in seq] for seq in data.targets]
    return phone_error_rate(hyps, refs)


def phone_recognition_probe(
    train: LayerFeatures,
    train_utterances: Sequence[ProbeUtterance],
    test: LayerFeatures,
    test_utterances: Sequence[ProbeUtterance],
    dev: LayerFeatures | None = None,
    dev_utterances: Sequence[ProbeUtterance] | None = None,
    *,
    epochs: int = EPOCHS,
    lr: float = LR,
    batch_size: int = BATCH_UTTERANCES,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> dict:
    """SUPERB PR on frozen features: ``{"per", "dev_per", "best_epoch", "layer_weights", ...}``."""
    for where, utts in (("train", train_utterances), ("test", test_utterances), ("dev", dev_utterances or [])):
        require_phones(utts, f"{where} utterances")
    device = torch.device(device)
    train_data = DownstreamData(train, phone_targets(train_utterances))
    test_data = DownstreamData(test, phone_targets(test_utterances))
    dev_data = DownstreamData(dev, phone_targets(dev_utterances)) if dev is not None else None
    names = weighted_layer_names(train)
    dim = train.layers[names[0]].shape[1]
    head, info = fit(lambda: PhoneCTCHead(len(names), dim), ctc_loss, lambda h, d: _per(h, d, device), train_data,
                     dev_data, higher_is_better=False, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
                     device=device)
    return {"per": _per(head, test_data, device), "dev_per": info["dev_score"], "best_epoch": info["best_epoch"],
            "layer_weights": dict(zip(names, head.layers.layer_weights())), "train_loss": info["train_loss"],
            "num_train_utterances": len(train_utterances), "num_test_utterances": len(test_utterances),
            "epochs": epochs, "lr": lr, "seed": seed}
