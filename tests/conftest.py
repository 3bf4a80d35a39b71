"""The whole suite: DeepSpeed's accelerator is pinned to the CPU before any test imports
DeepSpeed (it chooses once per process, at import: CUDA where torch sees a GPU), so that the
in-process trainers of the CPU tests (``device=cpu``, gloo) keep their engines on the CPU on a GPU
machine too. The GPU tests (``tests/gpu``, ``-m gpu``) run their DeepSpeed trainers in
subprocesses with their own environment."""
import os

os.environ.setdefault("DS_ACCELERATOR", "cpu")
