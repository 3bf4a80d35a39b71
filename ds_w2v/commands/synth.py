"""``ds-w2v synth {timit,ravdess} --out DIR``: build the offline demo corpora with espeak-ng.

The corpora are written in the real TIMIT and RAVDESS layouts, so ``ds-w2v prepare`` and the
rest of the pipeline run on them exactly as on the licensed originals::

    ds-w2v synth timit --out data/timit-synth                 # ~2 h, ~220 speakers
    ds-w2v synth timit --out /tmp/t --speakers 30 --sentences-per-speaker 4 --workers 2
    ds-w2v synth ravdess --out data/ravdess-synth             # 1,440 clips, 24 actors

Same ``--seed`` and size give byte-identical files, whatever ``--workers``.
See docs/synth.md for what is generated and how emotion is rendered.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="corpus", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--out", required=True, help="output folder (created; must be empty unless --overwrite)")
        p.add_argument("--seed", type=int, default=0, help="corpus seed (default 0)")
        p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                       help="synthesis processes (default: min(4, CPUs))")
        p.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")

    t = sub.add_parser("timit", help="read speech in the TIMIT layout (NIST SPHERE, .TXT/.WRD/.PHN)")
    common(t)
    t.add_argument("--hours", type=float, default=2.0, help="approximate audio hours (default 2.0)")
    t.add_argument("--speakers", type=int, default=None,
                   help="speakers in TRAIN+TEST (>= 25); overrides --hours")
    t.add_argument("--sentences-per-speaker", type=int, default=10,
                   help="per speaker incl. SA1/SA2 (default 10, as TIMIT; >= 3)")

    r = sub.add_parser("ravdess", help="emotional speech in the RAVDESS layout (1,440 clips)")
    common(r)
    r.add_argument("--actors", default=None, help="subset of actors, e.g. 1,2,5-8 (default all 24)")
    return parser


def _parse_ranges(text: str) -> list[int]:
    """``"1,2,5-8"`` -> [1, 2, 5, 6, 7, 8]."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise ValueError(f"--actors: cannot parse {part!r} (expected e.g. 1,2,5-8)") from None
    return sorted(set(out))


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ValueError(f"--out {out} is not empty (pass --overwrite to write into it anyway)")


def main(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if args.workers < 1:
        raise ValueError(f"--workers must be >= 1, got {args.workers}")
    if args.corpus == "timit":
        from ds_w2v.synth.timit import TimitConfig, build_timit, speakers_for_hours

        if args.speakers is None and not args.hours > 0:
            raise ValueError(f"--hours must be > 0, got {args.hours}")
        if args.sentences_per_speaker < 3:
            raise ValueError(f"--sentences-per-speaker must be >= 3 (SA1, SA2 and one more), got {args.sentences_per_speaker}")
        speakers = args.speakers if args.speakers is not None else speakers_for_hours(args.hours, args.sentences_per_speaker)
        if speakers < 25:
            raise ValueError(f"--speakers must be >= 25 (the 24 TIMIT core-test speakers + 1 train), got {speakers}")
        cfg = TimitConfig(out, num_speakers=speakers, sentences_per_speaker=args.sentences_per_speaker,
                          seed=args.seed, workers=args.workers)
        _check_out(out, args.overwrite)
        report = build_timit(cfg)
        detail = f"{speakers} speakers ({cfg.num_test_speakers} test)"
    else:
        from ds_w2v.synth.ravdess import RavdessConfig, build_ravdess

        actors = _parse_ranges(args.actors) if args.actors else None
        cfg = RavdessConfig(out, seed=args.seed, workers=args.workers, actors=actors)
        _check_out(out, args.overwrite)
        report = build_ravdess(cfg)
        detail = f"{len(actors) if actors else 24} actors"
    print(f"synth {args.corpus}: {report.num_files:,} audio files, {detail}, "
          f"{report.audio_s / 3600:.2f} h of audio in {report.wall_s:.1f} s "
          f"({report.realtime_factor:.0f}x real time, {args.workers} workers) -> {out}")
    return 0
