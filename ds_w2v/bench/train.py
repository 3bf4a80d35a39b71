"""``ds-w2v bench train``: time real DeepSpeed engine updates of our pretraining model, per size,
ZeRO stage and precision, side by side with HF transformers' ``Wav2Vec2ForPreTraining`` (sdpa).

    ds-w2v bench train --presets tiny,original --zero 2,3 --precisions fp32,bf16   # CPU
    bash launch/bench.sh                                                           # GPU or CPU defaults

Each configuration builds what ``Trainer`` builds — ``build_ds_config`` over the shipped
DeepSpeed JSON (``ds_configs/zero{1,2,3}.json`` on GPU; ``cpu.json`` / ``cpu_zero3.json`` on CPU,
stage 1 = ``cpu.json`` with the stage changed), the model from the factory, then
``trainer.build_engine`` (``deepspeed.initialize``) — and feeds it one fixed random ``[B, T]``
batch instead of the data loader. One update is what ``Trainer.train_step`` does with one
micro-batch: cast the batch, forward, ``engine.backward(loss / sample_size)``, ``engine.step()``
(gradient clipping and, in bf16, the overflow check included). Ours draws its masks and
negatives inside ``forward``; HF's are drawn once, outside the timer (HF leaves them to the data
collator), which favours HF. LayerDrop is 0 in both, so every update runs every block.

HF runs through the same DeepSpeed config (``via ds``); if its engine cannot be built or
stepped, it falls back to plain PyTorch with fused AdamW, the same clipping, and autocast for
bf16/fp16 (``via torch``).

Per configuration both models are built, each followed by one update (untimed unless
``--warmup 0``) over which its peak memory is taken; then their updates alternate, as in
``bench step``, so that a machine whose load changes (a shared CPU) slows both alike. Figures:
median seconds per update over ``--steps``; audio-seconds per second per device (one process);
MFU = ``flops.update_flops`` / median seconds / peak FLOP/s (the formula is in
``ds_w2v/train/flops.py``; the peak from its table on GPU, from ``--peak-tflops`` otherwise);
peak memory (GPU: ``torch.cuda.max_memory_allocated`` minus what was allocated before the model
was built; CPU: growth of the process's max RSS, ``resource.getrusage``, its high-water mark
reset first through ``/proc/self/clear_refs`` where Linux allows). A configuration or a model
that fails prints its reason in its row; the others still run.
"""
from __future__ import annotations

import argparse
import copy
import gc
import json
import math
import os
import platform
import resource
import shlex
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

SAMPLE_RATE = 16_000
ZERO_STAGES = (1, 2, 3)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--presets", default="tiny", help="comma-separated sizes: tiny, small, medium, original, large")
    p.add_argument("--zero", default="2", help="comma-separated ZeRO stages (1, 2, 3)")
    p.add_argument("--precisions", default=None,
                   help="comma-separated: fp32, bf16, fp16 (default: bf16 on GPU, fp32,bf16 on CPU)")
    p.add_argument("--batch", type=int, default=4, help="utterances per batch (one micro-batch per update)")
    p.add_argument("--seconds", type=float, default=4.0, help="seconds of audio per utterance")
    p.add_argument("--steps", type=int, default=5, help="timed updates per model and configuration")
    p.add_argument("--warmup", type=int, default=2, help="untimed updates first")
    p.add_argument("--peak-tflops", type=parse_peak, default=None, metavar="TFLOPS",
                   help="the device's dense peak for MFU, one number or per dtype (fp32=0.38,bf16=0.77); default: "
                        "flops.py's table on GPU; on CPU MFU is printed only with this "
                        "(cores x FMA units x SIMD lanes x 2 x GHz / 1000, docs/benchmarks.md)")
    p.add_argument("--no-hf", action="store_true", help="time ours only")
    p.add_argument("--json", help="append one JSON line per configuration to this file")


def parse_peak(text: str) -> dict[str, float]:
    """``--peak-tflops``: ``0.38`` (every dtype) or ``fp32=0.38,bf16=0.77`` -> {dtype or "*": TFLOP/s}."""
    try:
        if "=" not in text:
            return {"*": float(text)}
        return {k.strip(): float(v) for k, v in (item.split("=", 1) for item in text.split(",") if item.strip())}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected TFLOPS or DTYPE=TFLOPS,..., got {text!r}") from None


# -- machine and memory --------------------------------------------------------------------------
def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def machine_name(device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{_cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


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


# -- the two ways of running updates -----------------------------------------------------------------
def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _error(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"[:160]


class EngineUpdates:
    """A model in a DeepSpeed engine, updated as ``Trainer.train_step`` does one micro-batch."""

    via = "ds"

    def __init__(self, make_model, loss_fn, ds: dict, config, device):
        self.make_model, self.loss_fn, self.ds, self.config, self.device = make_model, loss_fn, ds, config, device
        self.engine = None

    def build(self) -> None:
        from ..train.engine import build_engine

        # a copy: the same dict serves both models, and DeepSpeed is free to fill in what it reads
        self.engine, _ = build_engine(self.make_model(), copy.deepcopy(self.ds), self.config.optim, self.device)

    def update(self) -> None:
        dtype = next(self.engine.module.parameters()).dtype  # the batch goes in as the trainer casts it
        loss = self.loss_fn(self.engine, dtype)
        self.engine.backward(loss)
        self.engine.step()

    def skipped(self) -> int:
        return self.engine.skipped_steps if self.engine is not None else 0

    def close(self) -> None:
        if self.engine is not None and hasattr(self.engine, "destroy"):
            self.engine.destroy()  # ZeRO-3: removes its hooks
        self.engine = None


class TorchUpdates:
    """HF's fallback: plain PyTorch, fused AdamW, the recipe's clipping, autocast for bf16/fp16."""

    via = "torch"

    def __init__(self, make_model, loss_fn, precision: str, config, device):
        self.make_model, self.loss_fn, self.precision, self.config, self.device = (
            make_model, loss_fn, precision, config, device)
        self.model = self.opt = self.scaler = None

    def build(self) -> None:
        import torch

        o = self.config.optim
        self.model = self.make_model().to(self.device).train()
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
        if self.config.optim.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.optim.clip_norm)
        self.scaler.step(self.opt)
        self.scaler.update()
        self.opt.zero_grad(set_to_none=True)

    def skipped(self) -> int:
        return 0

    def close(self) -> None:
        self.model = self.opt = self.scaler = None


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
    _sync(device)
    t0 = time.perf_counter()
    runner.update()
    _sync(device)
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
            failures.append(f"{runner.via} failed ({_error(e)})")
            runner.close()
    return Phase(error="; ".join(failures)), None


def time_models(candidates: dict[str, list], steps: int, warmup: int, device) -> dict[str, Phase]:
    """Per model: build, one update (memory), then ``warmup - 1`` untimed and the timed updates,
    models alternating. With ``warmup == 0`` the first update is the first timed one."""
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
                phases[name].error, phases[name].times_s = _error(e), []
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


# -- the two models --------------------------------------------------------------------------------
def _frames(model_config, num_samples: int) -> int:
    length = num_samples
    for _, k, s in model_config.conv_layers:
        length = (length - k) // s + 1
    return length


def _build_hf(model_config):
    import transformers

    from ..models.wav2vec2.interop_hf import to_hf_config

    d = to_hf_config(model_config, "pretrain", {})
    for key in ("model_type", "architectures", "ds_w2v"):
        d.pop(key)
    hf_config = transformers.Wav2Vec2Config(**d)
    hf_config._attn_implementation = "sdpa"
    return transformers.Wav2Vec2ForPreTraining(hf_config)


def _hf_masks(model_config, batch: int, num_samples: int, device):
    """HF's span masks and negatives for the batch, drawn once (HF's data collator's job)."""
    import numpy as np
    import torch
    from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices, _sample_negative_indices

    frames = _frames(model_config, num_samples)
    np.random.seed(0)
    mask = _compute_mask_indices((batch, frames), model_config.mask_prob, model_config.mask_length,
                                 min_masks=model_config.mask_min_spans)
    neg = _sample_negative_indices((batch, frames), model_config.num_negatives, mask)
    return torch.tensor(mask, device=device), torch.tensor(neg, device=device, dtype=torch.long)


def bench_config(stage: int, precision: str, batch_s: float, device):
    """(TrainConfig, DeepSpeed dict) for one ZeRO stage and precision, as the trainer builds them."""
    from ..train.config import TrainConfig
    from ..train.deepspeed_config import build_ds_config

    name = ("cpu_zero3.json" if stage == 3 else "cpu.json") if device.type == "cpu" else f"zero{stage}.json"
    config = TrainConfig(task="pretrain", precision=precision, deepspeed_config=name, global_batch_s=batch_s)
    config.data.batch_s = batch_s  # one batch = one micro-batch = one update (no accumulation)
    ds = build_ds_config(config, world_size=1, device_type=device.type)
    ds["zero_optimization"]["stage"] = stage
    return config, ds


def candidates_for(model_config, config, ds: dict, precision: str, wave, lengths, with_hf: bool, device):
    import torch

    from ..models.wav2vec2 import build_model

    def make_ours():
        torch.manual_seed(0)
        return build_model(model_config, "pretrain")

    def ours_loss(model, dtype):
        out = model(wave.to(dtype), lengths)
        return out.loss / out.sample_size  # Trainer.train_step's scaling, one micro-batch, one rank

    out = {"ours": [EngineUpdates(make_ours, ours_loss, ds, config, device)]}
    if with_hf:
        mask, neg = _hf_masks(model_config, wave.shape[0], wave.shape[1], device)
        num_masked = max(int(mask.sum()), 1)

        def make_hf():
            torch.manual_seed(0)
            return _build_hf(model_config)

        def hf_loss(model, dtype):
            out = model(wave.to(dtype), mask_time_indices=mask, sampled_negative_indices=neg)
            return out.loss / num_masked  # HF's loss is a sum over masked frames too

        out["hf"] = [EngineUpdates(make_hf, hf_loss, ds, config, device),
                     TorchUpdates(make_hf, hf_loss, precision, config, device)]
    return out


# -- the run ---------------------------------------------------------------------------------------
def _split(text: str, cast=str) -> list:
    return [cast(x.strip()) for x in text.split(",") if x.strip()]


def peak_for(args, device, precision: str) -> tuple[float | None, str]:
    """(peak FLOP/s or None, where it comes from)."""
    import torch

    from ..train.flops import peak_flops

    given = (args.peak_tflops or {}).get(precision, (args.peak_tflops or {}).get("*"))
    if given:
        return given * 1e12, "--peak-tflops"
    if device.type == "cuda":
        peak = peak_flops(torch.cuda.get_device_name(device), precision)
        return peak, ("flops.PEAK_FLOPS" if peak else "not in flops.PEAK_FLOPS; give --peak-tflops")
    return None, "CPU: give --peak-tflops"


def make_row(preset, stage, precision, device, args, phases: dict[str, Phase], model_config,
             peak: float | None, error: str | None = None) -> dict[str, Any]:
    from ..train.flops import update_flops

    num_samples = int(args.seconds * SAMPLE_RATE)
    audio_s = args.batch * num_samples / SAMPLE_RATE
    flops = update_flops(model_config, [num_samples] * args.batch) if model_config is not None else None
    row: dict[str, Any] = {"preset": preset, "zero": stage, "precision": precision, "device": device.type,
                           "world_size": 1, "batch": args.batch, "seconds": args.seconds, "steps": args.steps,
                           "warmup": args.warmup, "flops_per_update": flops, "peak_flops": peak,
                           "memory": "max_memory_allocated" if device.type == "cuda" else "max_rss_delta"}
    if error:
        row["error"] = error
    for name, phase in phases.items():
        if phase.error:
            row[f"{name}_error"] = phase.error
        if phase.update_s:
            row[f"{name}_s"] = phase.update_s
            row[f"{name}_audio_s_per_s"] = audio_s / phase.update_s  # per device: one process
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


def _fmt(value, spec: str, width: int) -> str:
    return f"{value:{width}{spec}}" if isinstance(value, (int, float)) and math.isfinite(value) else f"{'-':>{width}}"


def _mfu(value) -> str:
    return f"{100 * value:5.1f}%" if isinstance(value, float) else f"{'-':>6}"


def format_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [f"{'size':9} {'zero':>4} {'prec':5} | {'ours s/upd':>10} {'audio-s/s':>9} {'MFU':>6} {'mem MiB':>8} | "
             f"{'HF s/upd':>9} {'audio-s/s':>9} {'MFU':>6} {'mem MiB':>8} {'via':>5} | {'ours/HF':>7}  note"]
    for r in rows:
        notes = [r["error"]] if "error" in r else []
        for name, label in (("ours", "ours"), ("hf", "HF")):
            if f"{name}_error" in r:
                notes.append(f"{label}: {r[f'{name}_error']}")
            notes += [f"{label} {n}" for n in r.get(f"{name}_notes", [])]
            if r.get(f"{name}_skipped_updates"):
                notes.append(f"{label}: {r[f'{name}_skipped_updates']} update(s) skipped (non-finite)")
        lines.append(
            f"{r['preset']:9} {r['zero']:>4} {r['precision']:5} | {_fmt(r.get('ours_s'), '.3f', 10)} "
            f"{_fmt(r.get('ours_audio_s_per_s'), '.1f', 9)} {_mfu(r.get('ours_mfu'))} "
            f"{_fmt(r.get('ours_peak_mem_mib'), '.0f', 8)} | {_fmt(r.get('hf_s'), '.3f', 9)} "
            f"{_fmt(r.get('hf_audio_s_per_s'), '.1f', 9)} {_mfu(r.get('hf_mfu'))} "
            f"{_fmt(r.get('hf_peak_mem_mib'), '.0f', 8)} {r.get('hf_via', '-'):>5} | "
            f"{_fmt(r.get('ratio'), '.2f', 7)}  {'; '.join(notes)}".rstrip())
    return lines


def command_line(args: argparse.Namespace) -> str:
    """The command with every option as it took effect (defaults included)."""
    words = ["ds-w2v", "bench", "train"]
    for key in ("presets", "zero", "precisions", "batch", "seconds", "steps", "warmup", "peak_tflops", "json"):
        value = getattr(args, key, None)
        if isinstance(value, dict):  # --peak-tflops
            value = value["*"] if list(value) == ["*"] else ",".join(f"{k}={v:g}" for k, v in value.items())
        if value is not None:
            words += [f"--{key.replace('_', '-')}", str(value)]
    return shlex.join(words + (["--no-hf"] if args.no_hf else []))


def _load_average() -> str:
    """The 1-minute load average (runnable processes), or "?" where the OS does not say."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except (AttributeError, OSError):
        return "?"


def _quiet() -> None:
    """DeepSpeed's per-engine INFO lines and torch.distributed's deprecation warnings (raised by
    DeepSpeed's ZeRO collectives) would bury the table."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.distributed.*deprecated")
    from deepspeed.utils import logger

    logger.setLevel(logging.WARNING)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..models.wav2vec2 import preset_config
    from ..train.distributed import init_distributed, world_from_env

    if world_from_env()[1] != 1:
        raise ValueError("bench train runs as one process (WORLD_SIZE=1); its figures are per device")
    if args.steps < 1 or args.warmup < 0 or args.batch < 1 or args.seconds <= 0:
        raise ValueError("need --steps >= 1, --warmup >= 0, --batch >= 1 and --seconds > 0")
    device = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    presets = _split(args.presets)
    stages = _split(args.zero, int)
    if any(s not in ZERO_STAGES for s in stages):
        raise ValueError(f"--zero: {args.zero!r}: stages are 1, 2, 3")
    args.precisions = ",".join(_split(args.precisions or ("bf16" if device.type == "cuda" else "fp32,bf16")))
    precisions = _split(args.precisions)
    machine = machine_name(device)
    init_distributed(device)
    _quiet()

    num_samples = int(args.seconds * SAMPLE_RATE)
    audio_s = args.batch * num_samples / SAMPLE_RATE
    torch.manual_seed(0)
    wave = (torch.randn(args.batch, num_samples) * 0.1).to(device)
    lengths = torch.full((args.batch,), num_samples, device=device)

    load_before = _load_average()
    rows = []
    for preset in presets:
        for stage in stages:
            for precision in precisions:
                phases, model_config, error = {}, None, None
                try:
                    model_config = preset_config(preset, encoder_layerdrop=0.0)
                    config, ds = bench_config(stage, precision, audio_s, device)
                    candidates = candidates_for(model_config, config, ds, precision, wave, lengths,
                                                not args.no_hf, device)
                except Exception as e:  # noqa: BLE001 -- e.g. fp16 on CPU, refused by build_ds_config
                    error = _error(e)
                else:
                    phases = time_models(candidates, args.steps, args.warmup, device)
                peak = peak_for(args, device, precision)[0]
                rows.append(make_row(preset, stage, precision, device, args, phases, model_config, peak, error))
                print(f"bench train: {preset} ZeRO-{stage} {precision} done", file=sys.stderr, flush=True)

    date = time.strftime("%Y-%m-%d %H:%M %Z")
    # other jobs on the machine slow every figure alike (the models alternate); say how many there were
    load = f"{load_before} at the start, {_load_average()} at the end"
    peaks = ", ".join(f"{p}: {v / 1e12:g} TFLOP/s ({src})" if v else f"{p}: none ({src})"
                      for p, (v, src) in ((p, peak_for(args, device, p)) for p in precisions))
    probe = MemoryProbe(device)
    probe.start()
    header = [
        f"bench train, {date}, {machine}, 1 process ({device.type}); load average {load}",
        f"batch {args.batch} x {args.seconds:g} s = {audio_s:g} audio-s per update (one micro-batch); "
        f"median of {args.steps} updates after {args.warmup} warm-up; the two models' updates alternate",
        f"MFU = flops.update_flops / median s / peak; peak {peaks}",
        f"mem MiB = {probe.label()}, over the model's build and first update",
        "HF = transformers Wav2Vec2ForPreTraining (sdpa); via ds: through the same DeepSpeed config, via torch: "
        "plain PyTorch + fused AdamW + autocast; ours/HF = ratio of seconds per update (< 1: ours faster)",
    ]
    print("\n".join(header + format_table(rows)))
    if args.json:
        with open(args.json, "a") as f:
            for r in rows:
                f.write(json.dumps({**r, "date": date, "machine": machine, "load_average": load,
                                    "command": command_line(args)}) + "\n")
    return 0
