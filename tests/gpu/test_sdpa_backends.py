"""Our encoder's attention on each SDPA backend, with a padded batch (a [B, 1, 1, T] key-padding
mask): flash, memory-efficient, cuDNN and math (``torch.nn.attention.sdpa_kernel`` allows only
the one). Each must give what the math backend gives, or refuse: a refusal (no kernel for this
mask or dtype) is recorded as an xfail with torch's reason, never passed over silently.

fp32 (TF32 off) within 1e-4 of math; bf16 (autocast) within a relative 2e-2 (see
test_hf_parity_gpu.py for that bound). On the CPU dry run math and torch's CPU flash kernel run;
memory-efficient and cuDNN are CUDA kernels and skip."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from ds_w2v import build_model

pytestmark = pytest.mark.gpu

BACKENDS = {"flash": SDPBackend.FLASH_ATTENTION, "efficient": SDPBackend.EFFICIENT_ATTENTION,
            "cudnn": SDPBackend.CUDNN_ATTENTION, "math": SDPBackend.MATH}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
CUDA_ONLY = ("efficient", "cudnn")  # torch has a CPU flash kernel (with masks), and math
LENGTHS = [16000, 11200, 6400, 3900]  # 49, 34, 19 and 11 of 49 frames: every row but one padded


def _valid(t: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
    return torch.cat([t[i, :n] for i, n in enumerate(frame_lengths.tolist())]).float()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("backend", BACKENDS)
def test_padded_attention_on_each_backend_equals_math(backend, dtype, device, strict_fp32):
    if device.type != "cuda" and backend in CUDA_ONLY:
        pytest.skip(f"the {backend} SDPA kernel is CUDA's (CPU dry run)")
    torch.manual_seed(0)
    model = build_model("tiny", "ctc").eval().to(device)  # eval: no dropout, no masking
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor(LENGTHS)
    x = torch.randn(len(LENGTHS), max(LENGTHS), generator=g) * 0.1 * (torch.arange(max(LENGTHS)) < lengths[:, None])
    x, lengths = x.to(device), lengths.to(device)
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16")
    with torch.no_grad(), amp:
        with sdpa_kernel(SDPBackend.MATH):
            want = model.wav2vec2(x, lengths)
        assert want.frame_mask is not None and not bool(want.frame_mask.all())  # the mask is in play
        with sdpa_kernel(BACKENDS[backend]), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                got = model.wav2vec2(x, lengths)
            except RuntimeError as e:
                if not any(s in str(e) for s in ("No available kernel", "No viable backend")):
                    raise
                why = "; ".join(dict.fromkeys(str(w.message).strip() for w in caught)) or str(e).splitlines()[0]
                pytest.xfail(f"{backend} has no kernel for {dtype} with a [B, 1, 1, T] bool key-padding mask: {why}")
    fl = want.frame_lengths
    a, b = _valid(got.last_hidden_state, fl), _valid(want.last_hidden_state, fl)
    if dtype == "fp32":
        assert float((a - b).abs().max()) < 1e-4
    else:
        assert float((a - b).norm() / b.norm()) <= 2e-2
