"""Gumbel-softmax product quantizer (paper §2 "Quantization module", Jang et al. 2017).

G codebooks of V entries (BASE: 2 x 320); each frame picks one entry per codebook and the
picks are concatenated into a ``latent_dim`` vector. In training the pick is a straight-through
hard Gumbel-softmax sample at temperature tau (forward: one-hot; backward: the soft
distribution's gradient); in evaluation it is the argmax.

Two perplexities are reported (fairseq's names): ``code_perplexity`` of the chosen codes and
``prob_perplexity`` of the averaged softmax; the diversity loss uses the latter. Logits,
sampling, softmax and perplexities run in fp32 (autocast is switched off here): the Gumbel
noise ``-log(-log u)`` and a 320-way softmax lose too much in bf16.

Only the frames that the objective needs (the masked ones) are quantized, and the codebook
lookup is a [N, G, V] x [G, V, d] contraction, not HF's [N, G*V, d] broadcast product.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class QuantizerOutput(NamedTuple):  # a tuple, so ZeRO-3's backward hooks see its tensors
    quantized: torch.Tensor  # [N, latent_dim]
    codes: torch.Tensor  # [N, G] chosen entry per codebook
    code_perplexity: torch.Tensor  # scalar, summed over groups
    prob_perplexity: torch.Tensor  # scalar, summed over groups


def _perplexity(probs: torch.Tensor) -> torch.Tensor:
    """exp(entropy) of the mean distribution per group, summed over groups. probs [N, G, V]."""
    avg = probs.mean(dim=0)
    return torch.exp(-torch.xlogy(avg, avg).sum(dim=-1)).sum()


class Fp32Linear(nn.Linear):
    """A Linear computed in fp32 whatever the weights' and input's dtype (bf16 under DeepSpeed)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            return F.linear(x.float(), self.weight.float(), self.bias.float())


class GumbelQuantizer(nn.Module):
    def __init__(self, in_dim: int, num_vars: int, groups: int, latent_dim: int):
        super().__init__()
        self.num_vars, self.groups = num_vars, groups
        self.weight_proj = Fp32Linear(in_dim, groups * num_vars)  # a module call: ZeRO-3 gathers it
        # initialised by init.init_weights: weight_proj N(0, 1) with zero bias, codebook U(0, 1)
        self.codevectors = nn.Parameter(torch.empty(groups, num_vars, latent_dim // groups))

    def forward(self, x: torch.Tensor, temperature: float) -> QuantizerOutput:
        """x [N, in_dim] -> quantized [N, latent_dim]."""
        n = x.shape[0]
        with torch.autocast(device_type=x.device.type, enabled=False):
            logits = self.weight_proj(x).view(n, self.groups, self.num_vars)
            codes = logits.argmax(dim=-1)  # [N, G]
            hard = F.one_hot(codes, self.num_vars).float()
            prob_ppl = _perplexity(torch.softmax(logits, dim=-1))
            code_ppl = _perplexity(hard)
            if self.training:
                # looked up through the module at call time, so tests can make it deterministic
                probs = F.gumbel_softmax(logits.view(-1, self.num_vars), tau=temperature, hard=True)
                probs = probs.view(n, self.groups, self.num_vars)
                codes = probs.argmax(dim=-1)
            else:
                probs = hard
            quantized = torch.einsum("ngv,gvd->ngd", probs, self.codevectors.float()).reshape(n, -1)
        return QuantizerOutput(quantized, codes, code_ppl, prob_ppl)
