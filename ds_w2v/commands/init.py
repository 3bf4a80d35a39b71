"""``ds-w2v init``: write a freshly initialised model file, the start of a custom-size run.

    ds-w2v init --preset tiny --task pretrain --out tiny.pt
    ds-w2v init --preset small --task ctc --vocab shards/vocab.json --out small_ctc.pt
    ds-w2v init --preset original --task cls --num-labels 8 --set encoder_layers=10 --out m.pt
"""
from __future__ import annotations

import argparse
import ast


def build_parser(prog: str) -> argparse.ArgumentParser:
    from ..models.wav2vec2 import MODEL_TASKS, PRESETS

    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", required=True, help=f"one of: {', '.join(PRESETS)}")
    p.add_argument("--task", default="pretrain", choices=list(MODEL_TASKS))
    p.add_argument("--vocab", help="vocab.json for --task ctc (default: 32 English characters)")
    p.add_argument("--num-labels", type=int, help="classes for --task cls")
    p.add_argument("--labels", help="comma-separated class names for --task cls")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config field override (repeatable)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="model file to write")
    return p


def parse_overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value  # a bare string such as extractor_mode=layer
    return out


def main(args: argparse.Namespace) -> int:
    import torch

    from ..models.wav2vec2 import build_model, count_parameters, save_model

    torch.manual_seed(args.seed)
    labels = args.labels.split(",") if args.labels else None
    model = build_model(args.preset, args.task, vocab=args.vocab, labels=labels, num_labels=args.num_labels,
                        **parse_overrides(args.set))
    path = save_model(model, args.out)
    counts = count_parameters(model.config)
    print(f"wrote {path}: {args.preset} {args.task}, {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters "
          f"(pretraining model {counts['pretrain_total'] / 1e6:.1f}M, CTC trainable {counts['ctc_trainable'] / 1e6:.1f}M)")
    return 0
