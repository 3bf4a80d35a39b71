"""``ds-w2v bench {step,train,data,decode,precision,lm}``: benchmarks that print figures (never pass/fail tests).

Each benchmark module provides ``add_arguments(parser)`` and ``run(args)`` and imports its heavy
dependencies inside ``run``.
"""
from __future__ import annotations

import argparse
import importlib

BENCHMARKS = {
    "step": ("ds_w2v.bench.step", "time one pretraining update, ours vs HF transformers"),
    "data": ("ds_w2v.bench.data", "streaming and prepare throughput of the data pipeline"),
    "train": ("ds_w2v.bench.train", "DeepSpeed engine updates per size, ZeRO stage and precision, ours vs HF"),
    "decode": ("ds_w2v.bench.decode", "CTC decoding: greedy vs beam search with an n-gram LM (speed, WER; tuned on dev)"),
    "precision": ("ds_w2v.bench.precision", "fp32 vs bf16 matmul and conv on this CPU: why precision=auto chooses"),
    "lm": ("ds_w2v.bench.lm", "build-lm vs KenLM's lmplz: CPU, memory, and the ARPA files' max difference"),
}


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    sub = parser.add_subparsers(dest="bench", required=True)
    for name, (module, help_) in BENCHMARKS.items():
        p = sub.add_parser(name, help=help_)
        try:
            importlib.import_module(module).add_arguments(p)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            p.set_defaults(unavailable=f"benchmark {name!r} is not available in this build ({module} missing)")
    return parser


def main(args: argparse.Namespace) -> int:
    if getattr(args, "unavailable", None):
        raise ValueError(args.unavailable)
    return int(importlib.import_module(BENCHMARKS[args.bench][0]).run(args) or 0)
