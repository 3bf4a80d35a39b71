"""The wav2vec 2.0 pretraining objective (paper §3.2), in fp32.

For each masked frame t of an utterance, the context vector c_t must pick its quantized target
q_t among K + 1 candidates: q_t and K distractors drawn uniformly from the *other masked frames
of the same utterance* (never padding, never t itself)::

    L_m = -log( exp(sim(c_t, q_t) / kappa) / sum_{q in Q_t} exp(sim(c_t, q) / kappa) )

with cosine similarity and kappa = 0.1, summed over masked frames. A distractor that is the
same codeword as the target (same entry in every codebook) is masked to -inf (fairseq,
HF). Because every utterance of a batch has the same number M of masked frames (see
``masking``), similarities are one [B, M, M] matrix per batch from which the K + 1 logits are
gathered, rather than a [B, M, K+1, D] tensor of gathered vectors.

Diversity loss (weight alpha = 0.1): (G*V - prob_perplexity) / (G*V), over the masked frames.
Feature penalty (weight 10): mean squared feature-encoder output over real frames. Both are
multiplied by the number of masked frames, as fairseq's criterion does, so that the total
``loss`` is a sum over masked frames and ``loss / num_masked`` is the per-frame objective.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def sample_negatives(batch: int, num_masked: int, num_negatives: int, device=None) -> torch.Tensor:
    """Long [B, M, K]: for masked frame i, K indices into the M masked frames, none equal to i."""
    if num_masked < 2:
        raise ValueError(f"need at least 2 masked frames per utterance to draw negatives, got {num_masked}")
    neg = torch.randint(0, num_masked - 1, (batch, num_masked, num_negatives), device=device)
    own = torch.arange(num_masked, device=device)[None, :, None]
    return neg + (neg >= own).long()  # skip over the positive, keeping the draw uniform


def contrastive_logits(
    predicted: torch.Tensor, targets: torch.Tensor, codes: torch.Tensor, negatives: torch.Tensor, logit_temp: float
) -> torch.Tensor:
    """Logits [B, M, K+1] (index 0 = the positive).

    predicted, targets: [B, M, D] at the masked frames; codes: [B, M, G] codebook entries of the
    targets; negatives: [B, M, K] indices into M.
    """
    with torch.autocast(device_type=predicted.device.type, enabled=False):  # logits in fp32
        p = F.normalize(predicted.float(), dim=-1, eps=1e-8)
        q = F.normalize(targets.float(), dim=-1, eps=1e-8)
        sim = torch.bmm(p, q.transpose(1, 2)) / logit_temp  # [B, M, M]: sim[b, i, j] = cos(c_i, q_j)
    pos = sim.diagonal(dim1=1, dim2=2).unsqueeze(-1)  # [B, M, 1]
    neg = sim.gather(2, negatives)  # [B, M, K]
    same_code = (codes[:, :, None, :] == codes[:, None, :, :]).all(-1)  # [B, M, M]
    neg = neg.masked_fill(same_code.gather(2, negatives), float("-inf"))
    return torch.cat([pos, neg], dim=-1)


def contrastive_loss(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed InfoNCE loss, number of frames whose positive scored highest)."""
    flat = logits.reshape(-1, logits.shape[-1])
    target = torch.zeros(flat.shape[0], dtype=torch.long, device=flat.device)
    loss = F.cross_entropy(flat, target, reduction="sum")
    correct = (flat.argmax(-1) == 0).sum()
    return loss, correct


def diversity_loss(prob_perplexity: torch.Tensor, num_codes: int, num_masked: int) -> torch.Tensor:
    return (num_codes - prob_perplexity) / num_codes * num_masked
