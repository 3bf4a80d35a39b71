"""``ds-w2v transcribe MODEL FILES...``: speech recognition with a CTC model.

    ds-w2v transcribe ctc.pt a.wav b.flac c.sph            # path<TAB>text, in input order
    ds-w2v transcribe hf_small_ctc/ clips/*.wav --json     # {"path", "duration_s", "text"} lines
    ds-w2v transcribe ctc.pt long/*.flac --batch-s 120 --device cuda

MODEL is a ds_w2v model file or an HF transformers folder. Any audio libsndfile reads (WAV
incl. mu-law and float, FLAC, OGG, NIST SPHERE), any sample rate (resampled to 16 kHz), channels
averaged. A file that cannot be read is reported on stderr as ``path: reason: detail`` and the
others go on; the exit code is then 1. See docs/inference.md.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, Iterable


def add_common_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by ``transcribe`` and ``classify``."""
    from ..inference import DEFAULT_BATCH_S, DEFAULT_MAX_DURATION_S, MAX_PADDING

    p.add_argument("model", help="ds_w2v model file or HF transformers folder")
    p.add_argument("files", nargs="+", metavar="FILES", help="audio files")
    p.add_argument("--batch-s", type=float, default=DEFAULT_BATCH_S,
                   help=f"padded audio-seconds per forward pass (default {DEFAULT_BATCH_S:g})")
    p.add_argument("--max-padding", type=float, default=MAX_PADDING,
                   help=f"largest padded fraction of a batch row (default {MAX_PADDING:g}; 0: equal lengths "
                        "only, which makes a group-norm encoder's output the same as one file at a time)")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    p.add_argument("--max-duration-s", type=float, default=DEFAULT_MAX_DURATION_S,
                   help=f"refuse longer files, from their header (default {DEFAULT_MAX_DURATION_S:g}; 0: no limit)")
    p.add_argument("--json", action="store_true", help="one JSON object a line instead of tab-separated text")


def print_results(results: Iterable, line: Callable, as_json: bool) -> int:
    """Print each result as it arrives (``line(result)`` or its JSON); failures go to stderr.
    Returns the exit code: 1 if any file failed."""
    failed = 0
    for r in results:
        if not r.ok:
            failed += 1
            print(f"{r.path}: {r.error}", file=sys.stderr, flush=True)
            continue
        print(json.dumps(r.to_dict(), ensure_ascii=False) if as_json else line(r), flush=True)
    return 1 if failed else 0


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(p)
    return p


def main(args: argparse.Namespace) -> int:
    from ..inference import iter_transcribe

    results = iter_transcribe(args.model, args.files, batch_s=args.batch_s, device=args.device,
                              max_duration_s=args.max_duration_s or None, max_padding=args.max_padding)
    return print_results(results, lambda r: f"{r.path}\t{r.text}", args.json)
