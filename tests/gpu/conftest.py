"""The GPU tests (``pytest -m gpu``): skipped unless torch sees CUDA.

``DS_W2V_GPU_TESTS_ON_CPU=1`` runs them on the CPU instead (the GPU check's dry run, on any
machine): the same tests with the CPU DeepSpeed configs; what truly needs CUDA (the fast SDPA
kernels) skips with its reason."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

ON_CPU = os.environ.get("DS_W2V_GPU_TESTS_ON_CPU") == "1"
HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    if ON_CPU or torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (DS_W2V_GPU_TESTS_ON_CPU=1 runs it on the CPU)")
    for item in items:  # the hook sees the whole session's items: only ours
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def device() -> torch.device:
    return torch.device("cpu") if ON_CPU else torch.device("cuda", 0)


@pytest.fixture
def strict_fp32(device):
    """fp32 that is fp32: no TF32 in cuDNN convolutions (on by default) nor in matmuls, so that two
    implementations whose ops round alike agree to ~1e-6, not to TF32's ~1e-3."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
