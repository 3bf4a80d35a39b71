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
that fails prints its reason in its row; the others still run. The machine name, load average,
memory probe, fixed batch, HF masks, plain-PyTorch runner and alternating timer are
:mod:`ds_w2v.bench.harness`'s, shared with ``bench step``; the DeepSpeed runner is this file's.
"""
from __future__ import annotations

import argparse
import copy
import json
import shlex
import sys
import time
from typing import Any

from .harness import (SAMPLE_RATE, MemoryProbe, Phase, TorchUpdates, error_line, fixed_batch, fmt, hf_masks,
                      load_average, load_since, machine_name, phase_figures, row_notes, time_models)

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
    p.add_argument("--json", help="append one JSON line per configuration to this file, as each is done")


def parse_peak(text: str) -> dict[str, float]:
    """``--peak-tflops``: ``0.38`` (every dtype) or ``fp32=0.38,bf16=0.77`` -> {dtype or "*": TFLOP/s}."""
    try:
        if "=" not in text:
            return {"*": float(text)}
        return {k.strip(): float(v) for k, v in (item.split("=", 1) for item in text.split(",") if item.strip())}
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected TFLOPS or DTYPE=TFLOPS,..., got {text!r}") from None


# -- the DeepSpeed way of running updates (plain PyTorch: harness.TorchUpdates) ------------------------
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


# -- the two models --------------------------------------------------------------------------------
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
    from ..models.wav2vec2.interop_hf import build_hf_model

    def make_ours():
        torch.manual_seed(0)
        return build_model(model_config, "pretrain")

    def ours_loss(model, dtype):
        out = model(wave.to(dtype), lengths)
        return out.loss / out.sample_size  # Trainer.train_step's scaling, one micro-batch, one rank

    out = {"ours": [EngineUpdates(make_ours, ours_loss, ds, config, device)]}
    if with_hf:
        mask, neg = hf_masks(model_config, wave.shape[0], wave.shape[1], device)
        num_masked = max(int(mask.sum()), 1)

        def make_hf():
            torch.manual_seed(0)
            return build_hf_model(model_config, "pretrain")

        def hf_loss(model, dtype):
            out = model(wave.to(dtype), mask_time_indices=mask, sampled_negative_indices=neg)
            return out.loss / num_masked  # HF's loss is a sum over masked frames too

        out["hf"] = [EngineUpdates(make_hf, hf_loss, ds, config, device),
                     TorchUpdates(make_hf, hf_loss, precision, config.optim, device)]
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
    return {**row, **phase_figures(phases, audio_s, flops, peak)}


def _mfu(value) -> str:
    return f"{100 * value:5.1f}%" if isinstance(value, float) else f"{'-':>6}"


def format_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [f"{'size':9} {'zero':>4} {'prec':5} | {'ours s/upd':>10} {'audio-s/s':>9} {'MFU':>6} {'mem MiB':>8} | "
             f"{'HF s/upd':>9} {'audio-s/s':>9} {'MFU':>6} {'mem MiB':>8} {'via':>5} | {'ours/HF':>7}  note"]
    for r in rows:
        lines.append(
            f"{r['preset']:9} {r['zero']:>4} {r['precision']:5} | {fmt(r.get('ours_s'), '.3f', 10)} "
            f"{fmt(r.get('ours_audio_s_per_s'), '.1f', 9)} {_mfu(r.get('ours_mfu'))} "
            f"{fmt(r.get('ours_peak_mem_mib'), '.0f', 8)} | {fmt(r.get('hf_s'), '.3f', 9)} "
            f"{fmt(r.get('hf_audio_s_per_s'), '.1f', 9)} {_mfu(r.get('hf_mfu'))} "
            f"{fmt(r.get('hf_peak_mem_mib'), '.0f', 8)} {r.get('hf_via', '-'):>5} | "
            f"{fmt(r.get('ratio'), '.2f', 7)}  {'; '.join(row_notes(r))}".rstrip())
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


def quiet_deepspeed() -> None:
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
    quiet_deepspeed()

    wave, lengths = fixed_batch(args.batch, args.seconds, device)
    audio_s = wave.numel() / SAMPLE_RATE

    load_before = load_average()
    rows = []
    date = time.strftime("%Y-%m-%d %H:%M %Z")
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
                    error = error_line(e)
                else:
                    phases = time_models(candidates, args.steps, args.warmup, device)
                peak = peak_for(args, device, precision)[0]
                rows.append(make_row(preset, stage, precision, device, args, phases, model_config, peak, error))
                if args.json:  # each row as it is done: a run cut short (a time limit) keeps the rows it made
                    with open(args.json, "a") as f:
                        f.write(json.dumps({**rows[-1], "date": date, "machine": machine,
                                            "load_average": load_since(load_before),
                                            "command": command_line(args)}) + "\n")
                print(f"bench train: {preset} ZeRO-{stage} {precision} done", file=sys.stderr, flush=True)

    # other jobs on the machine slow every figure alike (the models alternate); say how many there were
    load = load_since(load_before)
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
    return 0
