"""The reference pretraining: HF transformers' ``Wav2Vec2ForPreTraining`` trained by a plain torch
loop on the same recipe, batches and initial weights as ``ds-w2v pretrain``, probed the same way.
One-step parity (``tests/models/wav2vec2/test_hf_parity.py``) says nothing about thousands of
updates; this run's probe curve beside ours does.

    python -m experiments.study.hf_reference --recipe pretrain_tiny data.shards=shards/timit \\
        run_dir=runs/hf_reference max_updates=1200 probe_every=100 [--stop-after 400] [any trainer key=value]

The recipe and overrides are read by the trainer's own ``load_config``; what each update does:

* the same stream (``read_run_splits``, ``StreamConfig`` and ``MixedLoader`` / ``StreamingLoader``
  as the trainer builds them, seed ``config.seed``) and the same accumulation: each micro-batch's
  loss / its masked frames, weighted by its share of the update's audio;
* the same initial weights: the trainer's seeding, then ``build_model`` of the preset, copied
  into transformers' model (``interop_hf.hf_twin``);
* HF's masking and negatives (``_compute_mask_indices``, ``_sample_negative_indices`` with the
  config's ``mask_prob``, ``mask_length``, ``mask_min_spans``, ``num_negatives``), HF's loss
  (contrastive + ``diversity_weight`` x diversity, sums over masked frames), the Gumbel
  temperature schedule through ``set_gumbel_temperature``;
* two terms of the recipe that HF's model lacks, added around it: the feature penalty
  (``feature_pen_weight`` x mean squared conv feature x masked frames, from a hook on the conv
  encoder's output, as fairseq) and ``feature_grad_mult`` (the conv encoder's gradients scaled:
  its output is its only path to the loss, so this is fairseq's GradMultiply);
* torch's AdamW with the recipe's lr, betas, eps and weight decay over every parameter (what the
  CPU DeepSpeed configs run), gradient clipping at ``optim.clip_norm``, the trainer's lr schedule
  (``train.schedule.learning_rate``), non-finite updates skipped (``max_bad_updates`` in a row stop).

Precision: the trainer's choice (``precision=auto``: bf16 where the CPU has it natively); bf16
runs the forward under ``torch.autocast`` bf16 with fp32 weights
(DeepSpeed bf16 keeps bf16 weights with fp32 master copies: not bit-comparable, the same format
of arithmetic). The probe (``probe_every``, ``probe.*``) converts the current weights back to a
ds_w2v model (``interop_hf.from_hf_state_dict``) and runs the trainer's ``PhoneProbe`` on it,
logging the trainer's keys (``dev/probe_phone_acc``, ...) to ``RUN_DIR/metrics.jsonl``. At the
end: ``RUN_DIR/model.pt`` (ds_w2v format, for ``ds-w2v probe``), ``RUN_DIR/hf/`` (transformers'
``save_pretrained``) and ``RUN_DIR/results.json``. No checkpoints: an interrupted run starts over.
transformers is a test-only dependency: without it the run writes ``results.json`` with
``skipped`` saying so and exits 0.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

DIVERGED_EXIT = 3  # as ds-w2v pretrain's TrainingAborted: the study records the run as diverged
SKIPPED = "transformers is not installed (a test-only dependency: pip install -e '.[test]')"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m experiments.study.hf_reference", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default="pretrain_tiny", help="pretraining recipe (name or path)")
    p.add_argument("--stop-after", type=int, default=None, metavar="N",
                   help="stop after N updates of the max_updates schedule (its first N updates: the curve's start)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="the trainer's overrides, as for ds-w2v pretrain")
    return p


def main(argv: list[str] | None = None) -> int:
    import logging

    from ds_w2v.train.config import load_config

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    config = load_config(args.recipe, args.overrides)
    if config.task != "pretrain":
        raise SystemExit(f"hf_reference: the recipe's task is {config.task}, not pretrain")
    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        import transformers
    except ImportError:
        (run_dir / "results.json").write_text(json.dumps({"skipped": SKIPPED}, indent=1))
        print(f"hf_reference: skipped: {SKIPPED}")
        return 0
    if args.stop_after is not None and args.stop_after < 1:
        raise SystemExit(f"hf_reference: --stop-after must be >= 1, got {args.stop_after}")
    result = train(config, transformers.__version__, args.stop_after)
    print(json.dumps(result, indent=1))
    return 0


def _log(file, update: int, figures: dict[str, float]) -> None:
    clean = {k: float(v) for k, v in figures.items() if math.isfinite(float(v))}
    file.write(json.dumps({"update": update, "time": round(time.time(), 3), **clean}) + "\n")
    file.flush()


def train(config, transformers_version: str, stop_after: int | None = None) -> dict[str, Any]:
    """The loop (module docstring); with ``stop_after``, only the first that many updates of the
    ``max_updates`` schedule (lr and temperature as in the full run), probed at the stop too."""
    import numpy as np
    import torch
    from transformers.models.wav2vec2.modeling_wav2vec2 import _compute_mask_indices, _sample_negative_indices

    from ds_w2v.data.loader import StreamingLoader
    from ds_w2v.data.mix import MixedLoader
    from ds_w2v.data.mix_sources import mix_labels
    from ds_w2v.models.wav2vec2 import build_model, save_model
    from ds_w2v.models.wav2vec2.interop_hf import from_hf_state_dict, hf_twin
    from ds_w2v.train.config import resolve_batch
    from ds_w2v.data.splits import read_run_splits
    from ds_w2v.train.probing import PhoneProbe
    from ds_w2v.train.schedule import learning_rate
    from ds_w2v.train.tasks import TASK_CLASSES

    d, run_dir = config.data, Path(config.run_dir)
    pretrain = TASK_CLASSES["pretrain"]
    splits = read_run_splits(config.data, pretrain.reads_targets, pretrain.needs_dev)
    probe = PhoneProbe.from_config(config)
    # the trainer's initial weights: its seeding, then the preset with the recipe's overrides
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    ours = build_model(config.model.preset, "pretrain", **config.model.overrides)
    mcfg = ours.config
    hf = hf_twin(ours).train()
    ours.eval()

    stream = d.stream_config(TASK_CLASSES["pretrain"].stream_kind, config.seed)  # as the trainer's
    if splits.mix:
        loader = MixedLoader([(index, w) for _, index, w in splits.mix], stream, temperature_alpha=d.mix_alpha,
                             rank=0, world_size=1, names=mix_labels([src for src, _, _ in splits.mix]))
    else:
        loader = StreamingLoader.from_split(splits.train, stream, rank=0, world_size=1)

    def batches():
        while True:
            yield from loader

    feed = batches()
    accum = resolve_batch(config, 1)
    optim = config.optim
    optimizer = torch.optim.AdamW(hf.parameters(), lr=optim.lr, betas=tuple(optim.betas), eps=optim.eps,
                                  weight_decay=optim.weight_decay)
    conv_params = list(hf.wav2vec2.feature_extractor.parameters())
    captured: dict[str, torch.Tensor] = {}
    hf.wav2vec2.feature_extractor.register_forward_hook(lambda module, inputs, output: captured.update(features=output))
    # the trainer's choice for this machine (precision=auto: bf16 where the CPU has it natively), so
    # the two pretrainings compute in the same format (the 2026-12-07 study's run predates this and
    # ran fp32 beside our bf16: its results.json says so)
    from ds_w2v.train.deepspeed_config import read_ds_config
    from ds_w2v.train.precision import resolve_precision

    bf16 = resolve_precision(config.precision, read_ds_config(config.deepspeed_config), "cpu").name == "bf16"
    start_t, floor_t, decay_t = mcfg.latent_temp
    metrics = open(run_dir / "metrics.jsonl", "w", encoding="utf-8")

    def run_probe(update: int) -> None:
        ours.load_state_dict(from_hf_state_dict(hf.state_dict(), ours))
        _log(metrics, update, probe.run(ours))

    update, bad_in_a_row, bad_total, train_s = 0, 0, 0, 0.0
    window: dict[str, float] = {}
    window_n = 0
    if probe:
        run_probe(0)
    last = min(config.max_updates, stop_after or config.max_updates)
    while update < last:
        t0 = time.perf_counter()
        group = [next(feed) for _ in range(accum)]
        total_s = sum(b.num_audio_s for b in group)
        lr = learning_rate(update, optim, config.schedule, config.max_updates)
        for g in optimizer.param_groups:
            g["lr"] = lr
        temperature = max(start_t * decay_t ** update, floor_t)
        hf.set_gumbel_temperature(temperature)
        optimizer.zero_grad(set_to_none=True)
        sums = {"loss": 0.0, "contrastive": 0.0, "diversity": 0.0, "feature_pen": 0.0, "prob_ppl": 0.0}
        finite = True
        for b in group:
            x, lengths = b.audio, b.lengths
            num_frames = int(hf._get_feat_extract_output_lengths(x.shape[1]))
            frame_lengths = hf._get_feat_extract_output_lengths(lengths)
            frame_mask = (torch.arange(num_frames)[None, :] < frame_lengths[:, None])
            padded = bool((lengths < x.shape[1]).any())
            mask = _compute_mask_indices((x.shape[0], num_frames), mcfg.mask_prob, mcfg.mask_length,
                                         attention_mask=frame_mask.long() if padded else None,
                                         min_masks=mcfg.mask_min_spans)
            negatives = _sample_negative_indices((x.shape[0], num_frames), mcfg.num_negatives, mask_time_indices=mask)
            attention = (torch.arange(x.shape[1])[None, :] < lengths[:, None]).long() if padded else None
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = hf(x, attention_mask=attention, mask_time_indices=torch.from_numpy(mask),
                         sampled_negative_indices=torch.from_numpy(negatives))
            n = int(mask.sum())
            feats = captured["features"].float().pow(2).mean(1)  # [B, T]: mean over channels, as ours
            pen = (feats * frame_mask).sum() / frame_mask.sum()
            loss = out.loss.float() + mcfg.feature_pen_weight * pen * n
            finite = finite and bool(torch.isfinite(loss))
            weight = b.num_audio_s / max(total_s, 1e-9)
            (loss * (weight / n)).backward()
            sums["loss"] += weight * float(loss.detach()) / n
            sums["contrastive"] += weight * float(out.contrastive_loss.detach()) / n
            sums["diversity"] += weight * float(out.diversity_loss.detach()) / n
            sums["feature_pen"] += weight * float(pen.detach())
            sums["prob_ppl"] += weight * float(out.codevector_perplexity.detach())
        if mcfg.feature_grad_mult != 1.0:
            for p in conv_params:
                if p.grad is not None:
                    p.grad.mul_(mcfg.feature_grad_mult)
        clip = optim.clip_norm if optim.clip_norm > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(hf.parameters(), clip)
        if not finite or not torch.isfinite(grad_norm):
            bad_in_a_row, bad_total = bad_in_a_row + 1, bad_total + 1
            _log(metrics, update, {"train/skipped_updates": bad_total})
            if bad_in_a_row >= config.max_bad_updates:
                metrics.close()
                print(f"hf_reference: {bad_in_a_row} non-finite updates in a row at update {update}", file=sys.stderr)
                sys.exit(DIVERGED_EXIT)
            continue
        optimizer.step()
        bad_in_a_row = 0
        update += 1
        dt = time.perf_counter() - t0
        train_s += dt
        for k, v in sums.items():
            window[k] = window.get(k, 0.0) + v
        window["update_s"] = window.get("update_s", 0.0) + dt
        window_n += 1
        if update % config.log_every == 0 or update == last:
            figures = {f"train/{k}": v / window_n for k, v in window.items() if k != "update_s"}
            figures.update({"train/temp": temperature, "opt/lr": lr, "opt/grad_norm": float(grad_norm),
                            "perf/update_s": window["update_s"] / window_n,
                            "perf/audio_s_per_s": total_s / dt})
            _log(metrics, update, figures)
            window, window_n = {}, 0
        if probe and (update % config.probe_every == 0 or update == last):
            run_probe(update)
    metrics.close()
    ours.load_state_dict(from_hf_state_dict(hf.state_dict(), ours))
    save_model(ours, run_dir / "model.pt")
    hf.save_pretrained(run_dir / "hf")
    result = {"task": "pretrain", "implementation": "transformers.Wav2Vec2ForPreTraining (plain torch loop)",
              "transformers": transformers_version, "updates": update, "of_max_updates": config.max_updates,
              "train_time_s": train_s,
              "skipped_updates": bad_total, "precision": "bf16 autocast" if bf16 else "fp32", "run_dir": str(run_dir),
              "model": str(run_dir / "model.pt")}
    (run_dir / "results.json").write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    sys.exit(main())
