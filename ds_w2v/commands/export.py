"""``ds-w2v export RUN_DIR OUT [--tag T]``: a run's checkpoint (any ZeRO stage) -> one fp32 ds_w2v
model file, which ``load_model``, ``export-hf`` and fine-tuning (``model.init=OUT``) accept.
``--tag``: ``latest``, ``best`` (what ``checkpoints/latest`` / ``checkpoints/best`` name) or a tag
directory's name (``update_00001000``); default ``best`` when the run has one, else ``latest``."""
from __future__ import annotations

import argparse


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__)
    p.add_argument("run_dir")
    p.add_argument("out")
    p.add_argument("--tag", default=None,
                   help="latest, best or a tag directory (update_00001000); default best, else latest")
    return p


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..train.checkpoint_export import export
    from ..train.checkpoint_tags import is_run_dir

    if not is_run_dir(Path(args.run_dir)):
        raise FileNotFoundError(f"{args.run_dir}: not a run directory (no model.json and checkpoints/)")
    out = export(Path(args.run_dir), Path(args.out), args.tag)
    print(f"wrote {out}")
    return 0
