"""Span masking over time (the pretraining task, paper §3.1) and over channels (fine-tuning).

Semantics follow fairseq's ``compute_mask_indices`` with ``require_same_masks=True``:

* an utterance of L valid frames gets ``n = int(mask_prob * L / mask_length + u)`` spans
  (u ~ U[0, 1) rounds probabilistically), at least ``min_spans``, at most the number of valid
  start positions; starts are drawn without replacement, spans may overlap;
* spans never start where they would cover padding;
* every utterance of the batch then keeps the same number of masked frames: the batch minimum,
  chosen uniformly among its own masked frames. Equal counts let the objective work on a dense
  [B, M] tensor of masked positions instead of ragged lists.

Everything is vectorised on the tensors' device with the torch RNG, so a seeded run (and a
resumed one, which restores RNG state) draws the same masks.
"""
from __future__ import annotations

import torch


def _span_mask(
    lengths: torch.Tensor, width: int, prob: float, span: int, min_spans: int, device: torch.device
) -> torch.Tensor:
    """Bool [B, width]: spans of ``span`` positions inside each row's first ``lengths[b]``."""
    batch = lengths.shape[0]
    num_starts = (lengths - span + 1).clamp(min=0)  # valid start positions per row
    num_spans = (prob * lengths.float() / span + torch.rand(batch, device=device)).long()
    num_spans = torch.minimum(num_spans.clamp(min=min_spans), num_starts)
    max_spans = int(num_spans.max())
    if max_spans == 0:
        return torch.zeros(batch, width, dtype=torch.bool, device=device)
    # random scores; positions that are not valid starts can never win
    pos = torch.arange(width, device=device)
    scores = torch.rand(batch, width, device=device).masked_fill(pos[None, :] >= num_starts[:, None], -1.0)
    starts = scores.topk(max_spans, dim=1).indices  # [B, max_spans], a random valid subset first
    keep = torch.arange(max_spans, device=device)[None, :] < num_spans[:, None]
    idx = starts[:, :, None] + torch.arange(span, device=device)  # [B, max_spans, span]
    sink = width + span  # dropped spans are scattered into a column that is cut off
    idx = torch.where(keep[:, :, None], idx, torch.full_like(idx, sink))
    buf = torch.zeros(batch, sink + 1, dtype=torch.bool, device=device)
    buf.scatter_(1, idx.view(batch, -1), True)
    return buf[:, :width]


def compute_time_mask(
    frame_lengths: torch.Tensor,
    num_frames: int,
    mask_prob: float,
    mask_length: int,
    min_spans: int = 2,
) -> torch.Tensor:
    """Bool [B, T] time mask with the same number of masked frames in every row."""
    device = frame_lengths.device
    mask = _span_mask(frame_lengths, num_frames, mask_prob, mask_length, min_spans, device)
    counts = mask.sum(1)
    target = int(counts.min())
    if target == 0:
        return torch.zeros_like(mask)
    if int(counts.max()) == target:
        return mask
    # keep `target` of each row's masked frames, uniformly at random
    scores = torch.rand(mask.shape, device=device).masked_fill(~mask, -1.0)
    keep = scores.topk(target, dim=1).indices
    return torch.zeros_like(mask).scatter_(1, keep, True)


def compute_channel_mask(
    batch: int, num_channels: int, mask_prob: float, mask_length: int, min_spans: int = 0, device=None
) -> torch.Tensor:
    """Bool [B, C]: channels zeroed for the whole utterance (SpecAugment-style, fine-tuning)."""
    lengths = torch.full((batch,), num_channels, dtype=torch.long, device=device)
    return _span_mask(lengths, num_channels, mask_prob, mask_length, min_spans, lengths.device)


def masked_positions(mask: torch.Tensor) -> torch.Tensor:
    """Long [B, M]: the frame indices of an equal-count mask, ascending per row."""
    batch = mask.shape[0]
    count = int(mask[0].sum()) if batch else 0
    return mask.nonzero()[:, 1].view(batch, count)
