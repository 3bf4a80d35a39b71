"""The timing harness of ``bench step`` and ``bench train``: what both benches measure alike.

* the machine (GPU name; CPU model, cores and torch threads) and its 1-minute load average at
  the start and end of a run (other jobs slow every figure alike, so a figure says how many ran);
* the fixed random batch (``[B, T]`` at 16 kHz, seed 0) and HF's span masks and negatives for
  it, drawn once outside the timer (HF leaves them to the data collator, which favours HF);
* :class:`MemoryProbe`: peak memory over a model's build and first update (GPU:
  ``torch.cuda.max_memory_allocated``; CPU: growth of the process's max RSS);
* :func:`time_models`: per model, the first runner that builds and updates once (its memory
  taken), then warm-up and timed updates with the models alternating, so that a machine whose
  load changes during the run (a shared CPU) slows both alike; the figure is the median;
* :class:`TorchUpdates`: a model updated by plain PyTorch (fused AdamW, clipping, autocast).

A runner is what :func:`time_models` updates: ``via`` (a word for the table), ``build()``,
``update()`` (one timed update), ``skipped()`` (updates skipped as non-finite), ``close()``.
torch, numpy and transformers are imported inside the functions: the CLI imports the benches
to build its parser.
"""
from __future__ import annotations

import gc
import math
import os
import resource
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

SAMPLE_RATE = 16_000


# -- machine, load, memory --------------------------------------------------------------------------
def machine_name(device) -> str:
    """The machine a figure came from, as ``ds-w2v env`` names it (CPU model and ISA, cores; the
    GPU first on CUDA), and the torch threads the benchmark ran with."""
    import torch

    from ..hardware import Machine

    line = Machine.read().line()
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}; {line}"
    return f"{line}, {torch.get_num_threads()} torch threads"


def load_average() -> str:
    """The 1-minute load average (runnable processes), or "?" where the OS does not say."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except (AttributeError, OSError):
        return "?"


def load_since(at_start: str) -> str:
    """``load_average()`` taken at the start of a run, and now."""
    return f"{at_start} at the start, {load_average()} at the end"


def _max_rss_bytes() -> int:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024  # Linux reports KiB


def _reset_rss_high_water() -> bool:
    """Linux: writing 5 to clear_refs resets the high-water mark that ru_maxrss reads."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class MemoryProbe:
    """Peak memory in bytes between ``start()`` and ``peak()``, above what was in use at the start."""

    def __init__(self, device):
        self.device = device
        self.reset_ok = True

    def label(self) -> str:
        if self.device.type == "cuda":
            return "peak GPU memory, torch.cuda.max_memory_allocated minus allocated before the build"
        how = "high-water mark reset first" if self.reset_ok else "high-water mark NOT resettable here: a lower bound"
        return f"max RSS delta of the process, resource.getrusage ru_maxrss ({how})"

    def start(self) -> None:
        import torch

        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
        else:
            self.reset_ok = _reset_rss_high_water()
            self._base = _max_rss_bytes()

    def peak(self) -> int:
        import torch

        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) - self._base
        return _max_rss_bytes() - self._base


# -- the workload --------------------------------------------------------------------------------------
def fixed_batch(batch: int, seconds: float, device):
    """(waveform [B, T], lengths [B]): ``batch`` utterances of ``seconds`` of N(0, 0.1²) noise, seed 0."""
    import torch

    num_samples = int(seconds * SAMPLE_RATE)
    torch.manual_seed(0)
    wave = (torch.randn(batch, num_samples) * 0.1).to(device)
    return wave, torch.full((batch,), num_samples, device=device)


def hf_masks(model_config, batch: int, num_samples: int, device):
    """HF's span masks [B, T'] and negatives [B, T', K] for the batch, drawn once with
    transformers' own functions and the config's masking (HF's data collator's job)."""
    import numpy as np
    import torch
    from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices, _sample_negative_indices

    frames = model_config.num_frames(num_samples)
    np.random.seed(0)
    mask = _compute_mask_indices((batch, frames), model_config.mask_prob, model_config.mask_length,
                                 min_masks=model_config.mask_min_spans)
    neg = _sample_negative_indices((batch, frames), model_config.num_negatives, mask)
    return torch.tensor(mask, device=device), torch.tensor(neg, device=device, dtype=torch.long)


# -- plain PyTorch updates -----------------------------------------------------------------------------
class TorchUpdates:
    """A model updated by plain PyTorch: fused AdamW with ``optim``'s hyper-parameters (an
    ``OptimConfig``), clipping to ``optim.clip_norm`` (0: none), autocast for bf16/fp16 and a
    gradient scaler for fp16. ``loss_fn(model, dtype)`` gives the loss of the fixed batch."""

    via = "torch"

    def __init__(self, make_model, loss_fn, precision: str, optim, device):
        self.make_model, self.loss_fn, self.precision, self.optim, self.device = (
            make_model, loss_fn, precision, optim, device)
        self.model = self.opt = self.scaler = None

    def build(self) -> None:
        import torch

        o = self.optim
        self.model = self.make_model().to(self.device).train()
        # fused AdamW exists for CPU and CUDA tensors since torch 2.4 (HF Trainer's default since 2.8)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=o.lr, betas=o.betas, eps=o.eps,
                                     weight_decay=o.weight_decay, fused=True)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")

    def update(self) -> None:
        import torch

        amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        with torch.autocast(self.device.type, dtype=amp or torch.float32, enabled=amp is not None):
            loss = self.loss_fn(self.model, torch.float32)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.opt)
        if self.optim.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.optim.clip_norm)
        self.scaler.step(self.opt)
        self.scaler.update()
        self.opt.zero_grad(set_to_none=True)

    def skipped(self) -> int:
        return 0

    def close(self) -> None:
        self.model = self.opt = self.scaler = None


# -- the alternating timer ---------------------------------------------------------------------------
def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def error_line(e: BaseException) -> str:
    """An exception in one short line, for a table row."""
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"[:160]


@dataclass
class Phase:
    """One model's figures in one configuration."""

    times_s: list[float] = field(default_factory=list)
    peak_mem_bytes: int | None = None
    skipped_updates: int = 0
    via: str = ""
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def update_s(self) -> float | None:
        return statistics.median(self.times_s) if self.times_s else None


def _timed_update(runner, device) -> float:
    sync(device)
    t0 = time.perf_counter()
    runner.update()
    sync(device)
    return time.perf_counter() - t0


def _start(candidates: list, keep_first: bool, device) -> tuple[Phase, Any]:
    """Build the first candidate that builds and updates once; its peak memory over both."""
    failures = []
    for runner in candidates:
        phase, probe = Phase(via=runner.via), MemoryProbe(device)
        try:
            probe.start()
            runner.build()
            first_s = _timed_update(runner, device)
            phase.peak_mem_bytes = probe.peak()
            phase.times_s = [first_s] if keep_first else []
            phase.notes = [f"via {f}" for f in failures]
            return phase, runner
        except Exception as e:  # noqa: BLE001 -- a failing configuration is reported, not fatal
            failures.append(f"{runner.via} failed ({error_line(e)})")
            runner.close()
    return Phase(error="; ".join(failures)), None


def time_models(candidates: dict[str, list], steps: int, warmup: int, device) -> dict[str, Phase]:
    """Per model name, its runners in order of preference. Per model: build, one update
    (memory), then ``warmup - 1`` untimed and the timed updates, models alternating; ``steps``
    timed updates in all. With ``warmup == 0`` the first update is the first timed one."""
    phases, active = {}, {}
    for name, options in candidates.items():
        phases[name], runner = _start(options, warmup == 0, device)
        if runner is not None:
            active[name] = runner
    rounds = [False] * max(warmup - 1, 0) + [True] * (steps - (1 if warmup == 0 else 0))
    for timed in rounds:
        for name, runner in list(active.items()):
            try:
                dt = _timed_update(runner, device)
            except Exception as e:  # noqa: BLE001
                phases[name].error, phases[name].times_s = error_line(e), []
                runner.close()
                del active[name]
                continue
            if timed:
                phases[name].times_s.append(dt)
    for name, runner in active.items():
        phases[name].skipped_updates = runner.skipped()  # over every update, warm-up included
        runner.close()
    gc.collect()
    return phases


# -- figures -----------------------------------------------------------------------------------------
def phase_figures(phases: dict[str, Phase], audio_s: float, flops: float | None = None,
                  peak: float | None = None) -> dict[str, Any]:
    """Per model NAME: ``NAME_error``; ``NAME_s`` (median seconds per update),
    ``NAME_audio_s_per_s`` (per device: one process), ``NAME_mfu`` (with ``flops`` per update and
    a ``peak`` FLOP/s), ``NAME_peak_mem_mib``, ``NAME_skipped_updates``, ``NAME_via``;
    ``NAME_notes``; and ``ratio`` = ours_s / hf_s (< 1: ours faster)."""
    row: dict[str, Any] = {}
    for name, phase in phases.items():
        if phase.error:
            row[f"{name}_error"] = phase.error
        if phase.update_s:
            row[f"{name}_s"] = phase.update_s
            row[f"{name}_audio_s_per_s"] = audio_s / phase.update_s
            if flops and peak:
                row[f"{name}_mfu"] = flops / phase.update_s / peak
            row[f"{name}_peak_mem_mib"] = phase.peak_mem_bytes / 2**20
            row[f"{name}_skipped_updates"] = phase.skipped_updates
            row[f"{name}_via"] = phase.via
        if phase.notes:
            row[f"{name}_notes"] = phase.notes
    if row.get("ours_s") and row.get("hf_s"):
        row["ratio"] = row["ours_s"] / row["hf_s"]
    return row


def row_notes(row: dict[str, Any]) -> list[str]:
    """The note column of a row: its error, then per model (ours, HF) its error, notes and
    skipped updates."""
    notes = [row["error"]] if "error" in row else []
    for name, label in (("ours", "ours"), ("hf", "HF")):
        if f"{name}_error" in row:
            notes.append(f"{label}: {row[f'{name}_error']}")
        notes += [f"{label} {n}" for n in row.get(f"{name}_notes", [])]
        if row.get(f"{name}_skipped_updates"):
            notes.append(f"{label}: {row[f'{name}_skipped_updates']} update(s) skipped (non-finite)")
    return notes


def fmt(value, spec: str, width: int) -> str:
    """``value`` in ``spec`` right-aligned in ``width``; "-" where there is no finite number."""
    return f"{value:{width}{spec}}" if isinstance(value, (int, float)) and math.isfinite(value) else f"{'-':>{width}}"
