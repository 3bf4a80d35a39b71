"""``ds-w2v transcribe MODEL FILES...``: speech recognition with a CTC model.

    ds-w2v transcribe ctc.pt a.wav b.flac c.sph            # path<TAB>text, in input order
    ds-w2v transcribe hf_small_ctc/ clips/*.wav --json     # {"path", "duration_s", "text"} lines
    ds-w2v transcribe ctc.pt long/*.flac --batch-s 120 --device cuda
    ds-w2v transcribe ctc.pt a.wav --decoder beam --lm lm.arpa --lm-weight 1 --word-score 0   # pip install .[lm]
    ds-w2v transcribe ctc.pt a.wav decoding.decoder=beam decoding.lm=lm.arpa decoding.beam=100   # the same keys as
                                                                              # ds-w2v evaluate and the trainer

MODEL is a ds_w2v model file, an HF transformers folder or a fairseq checkpoint. Any audio
libsndfile reads (WAV incl. mu-law and float, FLAC, OGG, NIST SPHERE), any sample rate (resampled
to 16 kHz), channels averaged. A file that cannot be read is reported on stderr as
``path: reason: detail`` and the others go on; the exit code is then 1. See docs/inference.md.

Among FILES, ``decoding.KEY=value`` items set the decoding as the trainer's and ``ds-w2v evaluate``'s
``decoding.*`` keys do (the same parser and types; they win over the flags, which are shorthands).
Decoding is greedy unless ``--decoder beam``: beam search with an n-gram LM (an ARPA file from
``ds-w2v build-lm``; flashlight-text, ``pip install .[lm]``). Choose ``--lm-weight`` and
``--word-score`` on a dev split with ``ds-w2v evaluate ... --tune-lm`` (docs/inference.md, *Decoding with an n-gram LM*).
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, Iterable


def add_common_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by ``transcribe`` and ``classify``."""
    from ..inference import DEFAULT_BATCH_S, DEFAULT_MAX_DURATION_S, MAX_PADDING

    p.add_argument("model", help="ds_w2v model file, HF transformers folder or fairseq checkpoint "
                                  "(with its dict.ltr.txt beside it)")
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
    from ..lm.decoder import DECODERS, DecodingConfig

    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(p)
    d = DecodingConfig()
    p.add_argument("--decoder", choices=DECODERS, default=d.decoder,
                   help=f"greedy (default) or beam: beam search with the n-gram LM --lm ({'pip install .[lm]'})")
    p.add_argument("--lm", help="ARPA n-gram file (ds-w2v build-lm): a word or character LM")
    p.add_argument("--beam", type=int, default=d.beam, help=f"hypotheses kept per frame (default {d.beam})")
    p.add_argument("--lm-weight", type=float, default=d.lm_weight,
                   help=f"weight of the LM's log10 probability (default {d.lm_weight:g}; tune on dev)")
    p.add_argument("--word-score", type=float, default=d.word_score,
                   help=f"score added per word (default {d.word_score:g}; tune on dev)")
    return p


def main(args: argparse.Namespace) -> int:
    from ..inference import iter_transcribe
    from ..lm.decoder import DecodingConfig

    from ..train.config import section_config

    overrides = [f for f in args.files if f.startswith("decoding.") and "=" in f]
    files = [f for f in args.files if f not in overrides]
    if not files:
        raise ValueError("no audio files given (only decoding.KEY=value items)")
    flags = dict(decoder=args.decoder, lm=args.lm, beam=args.beam, lm_weight=args.lm_weight, word_score=args.word_score)
    decoding, given = section_config(DecodingConfig, "decoding", overrides, flags)
    # named as typed: --lm-weight, or decoding.lm_weight when an item set it
    decoding.validate(lambda key: f"config key decoding.{key}" if key in given else "--" + key.replace("_", "-"))
    results = iter_transcribe(args.model, files, batch_s=args.batch_s, device=args.device,
                              max_duration_s=args.max_duration_s or None, max_padding=args.max_padding,
                              decoding=decoding)
    return print_results(results, lambda r: f"{r.path}\t{r.text}", args.json)
