"""``ds-w2v prepare``: read a corpus in its on-disk layout and write WebDataset shards.

    ds-w2v prepare --format timit   /data/TIMIT            --out shards/timit   --workers 8
    ds-w2v prepare --format ravdess /data/RAVDESS          --out shards/ravdess
    ds-w2v prepare --format librispeech /data/LibriSpeech  --out shards/ls --codec flac
    ds-w2v prepare --format dir /data/unlabelled --out shards/pt --valid-percent 1

Formats, options, splits and reject reasons: docs/data_prepare.md.
"""
from __future__ import annotations

import argparse
import os

from ds_w2v.data.sources import SOURCES

# reader options set by the format-specific flags (each flag's dest is the reader's parameter)
_SOURCE_OPTIONS = (
    "include_sa", "dev_percent", "dev_seed", "test_set",
    "include_song", "train_actors", "dev_actors", "test_actors",
    "labels", "valid_percent", "valid_seed",
)


def build_parser(prog: str) -> argparse.ArgumentParser:
    from ds_w2v.data import audio, prepare
    from ds_w2v.data.shard_format import AUDIO_EXTS, DEFAULT_CODEC

    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="corpus folder (or list/manifest file for csv, jsonl, fairseq)")
    p.add_argument("--format", required=True, choices=list(SOURCES), help="on-disk layout of SRC")
    p.add_argument("--out", required=True, help="output folder for shards, dataset.json, vocab.json, rejects.jsonl")
    p.add_argument("--workers", type=int, default=_num_cpus(), help="decoding processes (default: CPUs available)")
    p.add_argument("--codec", choices=sorted(AUDIO_EXTS), default=DEFAULT_CODEC, help="audio entry codec")
    p.add_argument("--min-duration-s", type=float, default=audio.MIN_DURATION_S)
    p.add_argument("--max-duration-s", type=float, default=audio.MAX_DURATION_S,
                   help="longer files are rejected from their header, before decoding (<= 0: no limit)")
    p.add_argument("--resample-quality", choices=["MQ", "HQ", "VHQ"], default=audio.RESAMPLE_QUALITY)
    p.add_argument("--max-shard-samples", type=int, default=prepare.MAX_SHARD_SAMPLES)
    p.add_argument("--max-shard-mb", type=float, default=prepare.MAX_SHARD_BYTES / 2**20)
    p.add_argument("--overwrite", action="store_true", help="replace a dataset already in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    s = argparse.SUPPRESS  # format options are passed on only when given
    g = p.add_argument_group("timit")
    g.add_argument("--include-sa", action="store_true", default=s, help="keep the SA1/SA2 dialect sentences")
    g.add_argument("--dev-percent", type=float, default=s, help="%% of TRAIN speakers held out as dev (10)")
    g.add_argument("--dev-seed", type=int, default=s, help="seed of the dev speaker choice (0)")
    g.add_argument("--timit-test", dest="test_set", choices=["core", "all"], default=s,
                   help="test = the 24 core speakers (default; others -> test_noncore) or all 168")
    g = p.add_argument_group("ravdess")
    g.add_argument("--include-song", action="store_true", default=s, help="keep song files (channel 02)")
    g.add_argument("--train-actors", default=s, help="actors of train (1-18)")
    g.add_argument("--dev-actors", default=s, help="actors of dev (19-20)")
    g.add_argument("--test-actors", default=s, help="actors of test (21-24)")
    g = p.add_argument_group("csv / jsonl")
    g.add_argument("--labels", default=s, help="the class set, comma-separated; other labels are rejected")
    g = p.add_argument_group("dir")
    g.add_argument("--valid-percent", type=float, default=s, help="%% of files to a dev split (0)")
    g.add_argument("--valid-seed", type=int, default=s)
    return p


def main(args: argparse.Namespace) -> int:
    from ds_w2v.data.prepare import prepare_corpus, summarize

    options = {k: getattr(args, k) for k in _SOURCE_OPTIONS if hasattr(args, k)}
    index = prepare_corpus(
        args.format,
        args.src,
        args.out,
        workers=args.workers,
        codec=args.codec,
        min_duration_s=args.min_duration_s,
        max_duration_s=args.max_duration_s if args.max_duration_s > 0 else None,
        resample_quality=args.resample_quality,
        max_shard_samples=args.max_shard_samples,
        max_shard_bytes=int(args.max_shard_mb * 2**20),
        overwrite=args.overwrite,
        progress=not args.no_progress,
        **options,
    )
    for line in summarize(index):
        print(line)
    print(f"wrote {os.path.join(args.out, 'dataset.json')}")
    return 0


def _num_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
