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
``--warmup`` untimed ones.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="tiny")
    p.add_argument("--batch", type=int, default=4, help="utterances per batch")
    p.add_argument("--seconds", type=float, default=4.0, help="seconds of audio per utterance")
    p.add_argument("--steps", type=int, default=5, help="timed updates per model and dtype")
    p.add_argument("--warmup", type=int, default=2, help="untimed updates first")
    p.add_argument("--dtypes", default="fp32,bf16", help="comma-separated: fp32, bf16 (autocast)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda if available)")
    p.add_argument("--no-hf", action="store_true", help="time ours only")
    p.add_argument("--json", help="append the results as JSON lines to this file")


def _time_alternating(steps: dict, n: int, warmup: int, sync) -> dict[str, float]:
    """Median seconds per call of each step function, calls interleaved round-robin."""
    for _ in range(warmup):
        for step in steps.values():
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(n):
        for name, step in steps.items():
            sync()
            t0 = time.perf_counter()
            step()
            sync()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def _adamw(params, device):
    # fused AdamW exists for CPU and CUDA tensors since torch 2.4
    return torch_optim().AdamW(params, lr=1e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01, fused=True)


def torch_optim():
    import torch

    return torch.optim


def run(args: argparse.Namespace) -> int:
    import torch

    from ..models.wav2vec2 import build_model
    from ..models.wav2vec2.interop_hf import to_hf_config

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    num_samples = int(args.seconds * 16000)
    torch.manual_seed(0)
    wave = (torch.randn(args.batch, num_samples) * 0.1).to(device)
    lengths = torch.full((args.batch,), num_samples, device=device)
    audio_s = args.batch * args.seconds
    machine = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or 'cpu'} x{torch.get_num_threads()} threads"

    results = []
    for dtype_name in args.dtypes.split(","):
        autocast = lambda: torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype_name == "bf16")  # noqa: E731
        ours = build_model(args.preset, "pretrain", encoder_layerdrop=0.0).to(device).train()
        opt = _adamw(ours.parameters(), device)

        def ours_step():
            with autocast():
                loss = ours(wave, lengths).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        steps = {"ours": ours_step}
        if not args.no_hf:
            import numpy as np
            import transformers
            from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices, _sample_negative_indices

            d = to_hf_config(ours.config, "pretrain", {})
            d = {k: v for k, v in d.items() if k not in ("model_type", "architectures", "ds_w2v")}
            cfg = transformers.Wav2Vec2Config(**d)
            cfg._attn_implementation = "sdpa"
            hf = transformers.Wav2Vec2ForPreTraining(cfg).to(device).train()
            hf_opt = _adamw(hf.parameters(), device)
            frames = int(ours.wav2vec2.feature_extractor.output_lengths(torch.tensor([num_samples])))
            np.random.seed(0)
            mask_np = _compute_mask_indices((args.batch, frames), cfg.mask_time_prob, cfg.mask_time_length, min_masks=2)
            neg_np = _sample_negative_indices((args.batch, frames), cfg.num_negatives, mask_np)
            mask_t = torch.tensor(mask_np, device=device)
            neg_t = torch.tensor(neg_np, device=device, dtype=torch.long)

            def hf_step():
                with autocast():
                    loss = hf(wave, mask_time_indices=mask_t, sampled_negative_indices=neg_t).loss
                loss.backward()
                hf_opt.step()
                hf_opt.zero_grad(set_to_none=True)

            steps["hf"] = hf_step
        t = _time_alternating(steps, args.steps, args.warmup, sync)
        row = {"preset": args.preset, "dtype": dtype_name, "device": str(device), "machine": machine,
               "batch": args.batch, "seconds": args.seconds, "ours_s": t["ours"], "ours_audio_s_per_s": audio_s / t["ours"]}
        if "hf" in t:
            row.update({"hf_s": t["hf"], "hf_audio_s_per_s": audio_s / t["hf"], "ratio": t["ours"] / t["hf"]})
        steps.clear()
        results.append(row)

    print(f"bench step: preset={args.preset} batch={args.batch} x {args.seconds:g} s on {machine}; "
          f"median of {args.steps} updates after {args.warmup} warm-up")
    print(f"{'dtype':6} {'ours s/update':>14} {'HF s/update':>12} {'ours/HF':>8} {'ours audio-s/s':>15}")
    for r in results:
        hf_s = f"{r['hf_s']:12.3f}" if "hf_s" in r else f"{'-':>12}"
        ratio = f"{r['ratio']:8.2f}" if "ratio" in r else f"{'-':>8}"
        print(f"{r['dtype']:6} {r['ours_s']:14.3f} {hf_s} {ratio} {r['ours_audio_s_per_s']:15.1f}")
    if args.json:
        with open(args.json, "a") as f:
            for r in results:
                f.write(json.dumps({**r, "date": time.strftime("%Y-%m-%d")}) + "\n")
    return 0
