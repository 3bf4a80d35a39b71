"""``ds-w2v init``: write a freshly initialised model file, the start of a custom-size run.

    ds-w2v init --preset tiny --task pretrain --out tiny.pt
    ds-w2v init --preset small --task ctc --vocab shards/vocab.json --out small_ctc.pt
    ds-w2v init --preset original --task cls --num-labels 8 encoder_layers=10 --out m.pt

``key=value``: a model config key (``ds-w2v pretrain --help-config`` lists them under
``model.overrides.``), its value read as the trainer reads ``model.overrides.KEY=value`` (YAML:
``10`` an integer, ``[2.0,0.5,0.999]`` a list, ``layer`` a string); ``--set key=value`` is the
same.
"""
from __future__ import annotations

import argparse


def build_parser(prog: str) -> argparse.ArgumentParser:
    from ..models.wav2vec2 import MODEL_TASKS, PRESETS

    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", required=True, help=f"one of: {', '.join(PRESETS)}")
    p.add_argument("--task", default="pretrain", choices=list(MODEL_TASKS))
    p.add_argument("--vocab", help="vocab.json for --task ctc (default: 32 English characters)")
    p.add_argument("--num-labels", type=int, help="classes for --task cls")
    p.add_argument("--labels", help="comma-separated class names for --task cls")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="model config overrides (as model.overrides.KEY)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="the same as a key=value (repeatable)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="model file to write")
    return p


def parse_overrides(items: list[str]) -> dict:
    """``key=value`` items as model config fields: the trainer's parser (``train.config.parse_override``),
    the key checked against ``Wav2Vec2Config``'s fields (``model.overrides.`` in front is allowed)."""
    import dataclasses

    from ..models.wav2vec2 import Wav2Vec2Config
    from ..train.config import parse_override

    fields = {f.name for f in dataclasses.fields(Wav2Vec2Config)}
    out = {}
    for item in items:
        path, value = parse_override(item)
        key = ".".join(path).removeprefix("model.overrides.")
        if key not in fields:
            raise ValueError(f"config key {key}: not a model config key (ds-w2v pretrain --help-config lists them "
                             "under model.overrides.)")
        out[key] = value
    return out


def main(args: argparse.Namespace) -> int:
    import torch

    from ..models.wav2vec2 import build_model, count_parameters, save_model

    torch.manual_seed(args.seed)
    labels = args.labels.split(",") if args.labels else None
    model = build_model(args.preset, args.task, vocab=args.vocab, labels=labels, num_labels=args.num_labels,
                        **parse_overrides([*args.set, *args.overrides]))
    path = save_model(model, args.out)
    counts = count_parameters(model.config)
    print(f"wrote {path}: {args.preset} {args.task}, {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters "
          f"(pretraining model {counts['pretrain_total'] / 1e6:.1f}M, CTC trainable {counts['ctc_trainable'] / 1e6:.1f}M)")
    return 0
