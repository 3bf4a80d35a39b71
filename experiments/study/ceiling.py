"""The supervised ceiling of the phone probe: the same tiny architecture trained from random
initialisation on the frame phone labels of every train utterance, until its dev frame accuracy
stops improving; then probed exactly like the pretrained and random-init models (``ds-w2v probe
--protocol linear``). Its probe row bounds the pretrained one from above, so "headroom closed" =
(pretrained - random) / (ceiling - random) has a denominator (CPC's paper: 79 % on
LibriSpeech-100).

    python -m experiments.study.ceiling --data study_data/shards/timit --out runs/study/ceiling_seed1 \\
        [--seed 1] [--lr 1e-3] [--batch-s 8] [--max-updates 4000] [--eval-every 100] [--patience 5]

What one update does: a batch of whole train utterances (shuffled each epoch, up to ``--batch-s``
audio seconds), the model in train mode (its dropouts; no time masking: the labels are per frame),
the mean frame cross-entropy of the CTC head's 39 phone columns (a Linear on the top layer: the
head the CTC model already has, so the saved file is an ordinary phone-CTC model file), frames
without a phone ignored; AdamW, linear warm-up then constant lr, gradient clipping at 1. Every
``--eval-every`` updates the dev split's frame accuracy (every dev utterance, eval mode); the run
stops after ``--patience`` evaluations without a new best, or at ``--max-updates``, and keeps the
best. Frame labels: ``ds_w2v.probe.frames`` (the probe's own convention).

Writes ``OUT/model.pt`` (the best weights, ds_w2v format), ``OUT/metrics.jsonl`` (the dev curve)
and ``OUT/results.json`` (updates run, the best's update and dev frame accuracy, wall time).
"""
from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m experiments.study.ceiling", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="TIMIT-format shards (prepare's output: records with phone spans)")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch-s", type=float, default=8.0, help="audio seconds per update")
    p.add_argument("--warmup", type=int, default=100, help="updates of linear lr warm-up")
    p.add_argument("--max-updates", type=int, default=4000)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--patience", type=int, default=5, help="dev evaluations without a new best before stopping")
    return p


def batches(lengths: list[int], max_samples: int, rng: random.Random):
    """Endless batches of utterance indices: each epoch a new shuffle, cut into consecutive groups
    of at most ``max_samples`` samples (an utterance longer than that is a batch of its own)."""
    while True:
        order = list(range(len(lengths)))
        rng.shuffle(order)
        group, total = [], 0
        for i in order:
            if group and total + lengths[i] > max_samples:
                yield group
                group, total = [], 0
            group.append(i)
            total += lengths[i]
        if group:
            yield group


def main(argv: list[str] | None = None) -> int:
    import numpy as np
    import torch
    import torch.nn.functional as F

    from ds_w2v.models.wav2vec2 import build_model, save_model
    from ds_w2v.probe.frames import IGNORE, frame_phone_labels
    from ds_w2v.probe.utterances import read_utterances, require_phone_spans
    from ds_w2v.text import SPECIAL_TOKENS
    from ds_w2v.train.tasks.phone_ctc import PHONE_VOCAB

    args = build_parser().parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    # the conv encoder trains (from scratch nothing is frozen); no time masking: labels are per frame
    model = build_model(args.preset, "ctc", vocab=PHONE_VOCAB, feature_grad_mult=1.0, mask_prob=0.0,
                        mask_channel_prob=0.0)
    cfg = model.config
    first = len(SPECIAL_TOKENS)  # PHONE_VOCAB: the specials, then the 39 phones in PHONE_IDS order

    def load(split: str):
        utts = read_utterances(args.data, split)
        require_phone_spans(utts, f"{args.data} ({split})")
        audio = [torch.from_numpy(u.pcm.astype(np.float32) / 32768.0) for u in utts]  # as data/batching.py
        labels = [torch.from_numpy(frame_phone_labels(u.phones, u.phone_spans, cfg.num_frames(len(u.pcm)),
                                                      cfg.total_stride, cfg.receptive_field)) for u in utts]
        return audio, labels

    def collate(audio, labels, idx):
        lengths = torch.tensor([len(audio[i]) for i in idx])
        x = torch.zeros(len(idx), int(lengths.max()))
        y = torch.full((len(idx), max(len(labels[i]) for i in idx)), IGNORE, dtype=torch.long)
        for row, i in enumerate(idx):
            x[row, : len(audio[i])] = audio[i]
            y[row, : len(labels[i])] = labels[i]
        return x, lengths, y

    def phone_logits(x, lengths):
        o = model(x, lengths)
        return o.logits[..., first:].float(), o.frame_lengths

    train_audio, train_labels = load("train")
    dev_audio, dev_labels = load("dev")
    rng = random.Random(args.seed)
    feed = batches([len(a) for a in train_audio], round(args.batch_s * 16000), rng)

    @torch.no_grad()
    def dev_accuracy() -> float:
        model.eval()
        right = total = 0
        for start in range(0, len(dev_audio), 16):
            idx = list(range(start, min(start + 16, len(dev_audio))))
            x, lengths, y = collate(dev_audio, dev_labels, idx)
            logits, _ = phone_logits(x, lengths)
            y = y[:, : logits.shape[1]]
            keep = y != IGNORE
            right += int((logits.argmax(-1)[keep] == y[keep]).sum())
            total += int(keep.sum())
        model.train()
        return right / max(total, 1)

    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01)
    metrics = open(out / "metrics.jsonl", "w", encoding="utf-8")
    best, best_update, best_state, stale, update, t0 = -1.0, 0, None, 0, 0, time.time()
    model.train()
    while update < args.max_updates and stale < args.patience:
        idx = next(feed)
        x, lengths, y = collate(train_audio, train_labels, idx)
        for g in optimizer.param_groups:
            g["lr"] = args.lr * min(1.0, (update + 1) / max(args.warmup, 1))
        logits, _ = phone_logits(x, lengths)
        y = y[:, : logits.shape[1]]
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), ignore_index=IGNORE)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        if not (math.isfinite(float(loss.detach())) and math.isfinite(float(grad_norm))):
            print(f"ceiling: non-finite loss or gradient at update {update}", file=sys.stderr)
            return 3
        optimizer.step()
        update += 1
        if update % args.eval_every == 0 or update == args.max_updates:
            acc = dev_accuracy()
            improved = acc > best
            if improved:
                best, best_update, stale = acc, update, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                stale += 1
            metrics.write(json.dumps({"update": update, "time": round(time.time(), 3), "train/loss": float(loss),
                                      "dev/frame_acc": acc}) + "\n")
            metrics.flush()
            print(f"ceiling: update {update} loss {float(loss):.3f} dev frame accuracy {100 * acc:.1f} %"
                  f"{' (best)' if improved else ''}", flush=True)
    metrics.close()
    model.load_state_dict(best_state)
    save_model(model, out / "model.pt")
    result = {"task": "supervised frame phones (ceiling)", "updates": update, "best_update": best_update,
              "dev_frame_acc": best, "stopped": "patience" if stale >= args.patience else "max_updates",
              "lr": args.lr, "batch_s": args.batch_s, "seed": args.seed, "preset": args.preset,
              "train_utterances": len(train_audio), "train_time_s": time.time() - t0,
              "model": str(out / "model.pt")}
    (out / "results.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
