"""Entry point of the training commands (``ds-w2v pretrain ...`` and ``python -m ds_w2v.train``).

    ds-w2v pretrain     --recipe R [key=value ...] [--deepspeed_config ds_configs/X.json]
    ds-w2v finetune-ctc --recipe R [key=value ...]
    ds-w2v finetune-cls --recipe R [key=value ...]
    ds-w2v evaluate     --recipe R model.init=RUN_DIR_OR_MODEL [--split test]
    deepspeed --num_gpus 8 --module ds_w2v.train pretrain --recipe R ...   (the launcher adds --local_rank)

R is a YAML file or the name of a shipped recipe (``ds_w2v/recipes/*.yaml``).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys

COMMAND_TASKS = {"pretrain": "pretrain", "finetune-ctc": "ctc", "finetune-cls": "cls", "evaluate": None}


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", required=True, help="recipe YAML path or shipped recipe name")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides")
    p.add_argument("--deepspeed_config", "--deepspeed-config", dest="deepspeed_config",
                   help="DeepSpeed JSON (default: the recipe's deepspeed_config)")
    p.add_argument("--local_rank", "--local-rank", type=int, default=None, help="set by the deepspeed launcher")
    p.add_argument("--split", default=None, help="evaluate: the split to score (default: dev and test)")
    return p


def run(command: str, args: argparse.Namespace) -> int:
    from .config import load_config
    from .trainer import Trainer, TrainingAborted

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    fields = {}
    task = COMMAND_TASKS[command]
    if task:
        fields["task"] = task
    if args.deepspeed_config:
        fields["deepspeed_config"] = args.deepspeed_config
    config = load_config(args.recipe, args.overrides, **fields)
    if command == "evaluate":
        if not config.model.init:
            raise ValueError("evaluate needs model.init=RUN_DIR_OR_MODEL")
        config.max_updates = 1  # nothing is trained
        trainer = Trainer(config, args.local_rank)
        splits = [args.split] if args.split else [s for s in (config.data.dev_split, config.data.test_split) if s]
        from ..data.index import read_split

        out = {s: trainer.evaluate(read_split(config.data.shards, s)) for s in splits}
        if trainer.is_rank0:
            print(json.dumps(out, indent=1))
        return 0
    trainer = Trainer(config, args.local_rank)
    try:
        result = trainer.train()
    except TrainingAborted as e:
        print(f"ds-w2v {command}: stopped: {e}", file=sys.stderr)
        return 3
    if trainer.is_rank0:
        print(json.dumps(result, indent=1))
    return 0


def make_command(command: str):
    """A module-like object for ds_w2v.cli's table: build_parser + main."""
    class _Cmd:
        @staticmethod
        def build_parser(prog: str) -> argparse.ArgumentParser:
            return build_parser(prog)

        @staticmethod
        def main(args: argparse.Namespace) -> int:
            return run(command, args)

    return _Cmd
