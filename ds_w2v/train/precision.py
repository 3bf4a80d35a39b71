"""The run's precision: what ``precision`` asks for, resolved against the device it runs on.

``auto`` (every recipe's default):
- the DeepSpeed JSON's choice where it enables one (``"fp16": {"enabled": true}`` in
  ``zero2_fp16.json``, or a user's own JSON): the user chose it there;
- else on a GPU bf16 where the device supports it (Ampere and later), else fp16 with dynamic loss
  scaling;
- else on a CPU bf16 only where it is native (AVX-512 BF16 or AMX: ~1.8x the fp32 throughput
  for tiny, measured on an AMD EPYC with AVX-512 BF16), else fp32: on an AVX2-only CPU bf16 is
  emulated and a tiny pretraining update took 16.5 s instead of 0.6 s.

An explicit ``bf16`` on a CPU without native bf16 runs, with one warning; ``fp16`` on a CPU is
refused (DeepSpeed's loss scaler needs a GPU).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# measured, one thread, torch 2.13 CPU, on a 2-core AMD EPYC with AVX2 only: 512x256 @ 256x1024
# fp32 5.5 ms vs bf16 403 ms; Conv1d 256->256, k=3, 4 x 400 frames: 17 ms vs 379 ms
SLOW_BF16 = ("bf16 on this CPU is emulated: a matmul ran 74x and a conv 22x slower than fp32 on an AVX2-only "
             "AMD EPYC (torch 2.13); precision=auto would choose fp32 here")


@dataclass(frozen=True)
class Precision:
    """The precision a run uses (fp32, bf16 or fp16), why, and a warning to print (or None)."""

    name: str
    reason: str
    warning: str | None = None

    def line(self) -> str:
        return f"precision {self.name}: {self.reason}"


def json_precision(ds: dict[str, Any]) -> str | None:
    """The precision a DeepSpeed JSON enables, or None when it enables neither fp16 nor bf16."""
    if (ds.get("fp16") or {}).get("enabled"):
        return "fp16"
    if (ds.get("bf16") or {}).get("enabled"):
        return "bf16"
    return None


def _hardware(device_type: str) -> tuple[bool, str]:
    """(bf16 fast here, why) for a device type, read from the machine."""
    if device_type == "cuda":
        import torch

        if not torch.cuda.is_available():  # a dry-run plan for a GPU, made on a machine without one
            return True, "planned for a GPU (none visible here): bf16 where it has it (Ampere on), else fp16"
        name = torch.cuda.get_device_name()
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return True, f"{name} supports bf16"
        return False, f"{name} has no bf16 (before Ampere): fp16 with dynamic loss scaling"
    from ..hardware import cpu_bf16

    found = cpu_bf16()
    return found.native, found.reason


def resolve_precision(requested: str | None, ds: dict[str, Any], device_type: str,
                      bf16_fast: Callable[[str], tuple[bool, str]] | None = None) -> Precision:
    """The :class:`Precision` of a run asking ``requested`` (None: ``auto``) with DeepSpeed JSON ``ds``
    on ``device_type``. ``bf16_fast`` answers "does this device run bf16 natively, and why" (None:
    read from the machine; the tests inject both answers). Raises ValueError for a name not in :data:`PRECISIONS` or fp16 on CPU."""
    requested = requested or "auto"
    bf16_fast = bf16_fast or _hardware
    if requested not in PRECISIONS:
        raise ValueError(f"config key precision: {requested!r} is not one of {', '.join(PRECISIONS)}")
    on_gpu = device_type == "cuda"
    if requested == "auto":
        from_json = json_precision(ds)
        if from_json is not None:
            chosen = Precision(from_json, "as the DeepSpeed config enables (precision=auto)")
        else:
            fast, why = bf16_fast(device_type)
            if on_gpu:
                chosen = Precision("bf16" if fast else "fp16", f"auto: {why}")
            else:
                chosen = Precision("bf16" if fast else "fp32", f"auto: {why}")
    else:
        chosen = Precision(requested, "set in the config")
    if chosen.name == "fp16" and not on_gpu:
        raise ValueError("config key precision: fp16 needs a GPU (DeepSpeed's loss scaler); use fp32 or bf16 on a "
                         "CPU, or precision=auto")
    if chosen.name == "bf16" and not on_gpu:
        fast, why = bf16_fast(device_type)
        if not fast:
            return Precision("bf16", f"{chosen.reason}, though {why}", warning=SLOW_BF16)
    return chosen
