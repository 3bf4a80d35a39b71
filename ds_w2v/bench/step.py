"""``ds-w2v bench step``: time one pretraining update (forward + backward + AdamW step), ours
against HF transformers' ``Wav2Vec2ForPreTraining`` (sdpa attention) with the same config, on
the same batch, in one run, in fp32 and under bf16 autocast.

What is timed, per update: ours, mask + negative sampling (inside ``forward``), forward,
backward, ``optimizer.step()``; HF, forward, backward, ``optimizer.step()`` with its masks and
negatives drawn *outside* the timer (HF leaves them to the data collator), which favours HF.
Both use the same optimizer, torch's fused AdamW (HF Trainer's default with torch >= 2.8).
LayerDrop is set to 0 in both so that every update runs every block; other dropouts stay.
Updates of the two models alternate, so that a machine whose load changes during the run
(a shared CPU) slows both alike; the figure is the median over ``--steps`` updates after
``--warmup`` untimed ones (the first of them also gives each model's peak memory over its build
and first update, in the JSON lines). A model that fails prints its reason in its row.

The harness (machine name, load average, memory probe, fixed batch, HF masks, the plain-PyTorch
update and the alternating timer) is :mod:`ds_w2v.bench.harness`, shared with ``bench train``.
"""
from __future__ import annotations

import argparse
import json
import time

from .harness import (SAMPLE_RATE, TorchUpdates, fixed_batch, fmt, hf_masks, load_average, load_since, machine_name,
                      phase_figures, row_notes, time_models)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="tiny")
    p.add_argument("--batch", type=int, default=4, help="utterances per batch")
    p.add_argument("--seconds", type=float, default=4.0, help="seconds of audio per utterance")
    p.add_argument("--steps", type=int, default=5, help="timed updates per model and dtype")
    p.add_argument("--warmup", type=int, default=2, help="untimed updates first")
    p.add_argument("--dtypes", default="fp32,bf16", help="comma-separated: fp32, bf16 (autocast), fp16 (autocast + grad scaler)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--no-hf", action="store_true", help="time ours only")
    p.add_argument("--json", help="append the results as JSON lines to this file")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..models.wav2vec2 import build_model, preset_config
    from ..models.wav2vec2.interop_hf import build_hf_model
    from ..train.config import OptimConfig

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    wave, lengths = fixed_batch(args.batch, args.seconds, device)
    audio_s = wave.numel() / SAMPLE_RATE
    machine = machine_name(device)
    optim = OptimConfig(lr=1e-4, clip_norm=0.0)  # AdamW betas (0.9, 0.98), eps 1e-6, decay 0.01; no clipping
    model_config = preset_config(args.preset, encoder_layerdrop=0.0)
    mask, neg = (None, None) if args.no_hf else hf_masks(model_config, args.batch, wave.shape[1], device)

    def ours_loss(model, dtype):
        return model(wave.to(dtype), lengths).loss

    def hf_loss(model, dtype):
        return model(wave.to(dtype), mask_time_indices=mask, sampled_negative_indices=neg).loss

    load_before = load_average()
    results = []
    for dtype_name in args.dtypes.split(","):
        candidates = {"ours": [TorchUpdates(lambda: build_model(model_config, "pretrain"), ours_loss, dtype_name,
                                            optim, device)]}
        if not args.no_hf:
            candidates["hf"] = [TorchUpdates(lambda: build_hf_model(model_config, "pretrain"), hf_loss, dtype_name,
                                             optim, device)]
        phases = time_models(candidates, args.steps, args.warmup, device)
        results.append({"preset": args.preset, "dtype": dtype_name, "device": str(device), "machine": machine,
                        "batch": args.batch, "seconds": args.seconds, **phase_figures(phases, audio_s)})
    load = load_since(load_before)

    print(f"bench step: preset={args.preset} batch={args.batch} x {args.seconds:g} s on {machine}; "
          f"median of {args.steps} updates after {args.warmup} warm-up; load average {load}")
    print(f"{'dtype':6} {'ours s/update':>14} {'HF s/update':>12} {'ours/HF':>8} {'ours audio-s/s':>15}")
    for r in results:
        notes = "; ".join(row_notes(r))
        print(f"{r['dtype']:6} {fmt(r.get('ours_s'), '.3f', 14)} {fmt(r.get('hf_s'), '.3f', 12)} "
              f"{fmt(r.get('ratio'), '.2f', 8)} {fmt(r.get('ours_audio_s_per_s'), '.1f', 15)}  {notes}".rstrip())
    if args.json:
        with open(args.json, "a") as f:
            for r in results:
                f.write(json.dumps({**r, "date": time.strftime("%Y-%m-%d"), "load_average": load}) + "\n")
    return 0
