"""``ds-w2v classify MODEL FILES...``: classify audio files with a classification model.

    ds-w2v classify ser.pt a.wav b.flac                    # path<TAB>label<TAB>probability
    ds-w2v classify ser.pt clips/*.wav --json --top-k 3    # {"path", "duration_s", "label",
                                                           #  "label_p", "top_k": [[label, p], ...]}

MODEL is a ds_w2v model file or an HF transformers folder; the labels travel with it. Audio and
error handling as ``ds-w2v transcribe`` (see docs/inference.md).
"""
from __future__ import annotations

import argparse

from .transcribe import add_common_arguments, print_results


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(p)
    p.add_argument("--top-k", type=int, default=3, help="labels listed with --json (default 3; text output: the best)")
    return p


def main(args: argparse.Namespace) -> int:
    from ..inference import iter_classify

    results = iter_classify(args.model, args.files, top_k=args.top_k, batch_s=args.batch_s, device=args.device,
                            max_duration_s=args.max_duration_s or None, max_padding=args.max_padding)
    return print_results(results, lambda r: f"{r.path}\t{r.label}\t{r.label_p:.4f}", args.json)
