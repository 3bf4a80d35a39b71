"""``ds-w2v pretrain | finetune-ctc | finetune-cls --recipe R [key=value ...]``: one training run.

    ds-w2v pretrain     --recipe pretrain_tiny data.shards=demo_data/shards/timit run_dir=runs/pt
    ds-w2v finetune-ctc --recipe finetune_ctc_tiny data.shards=... model.init=runs/pt run_dir=runs/ctc
    deepspeed --num_gpus 8 --module ds_w2v.train pretrain --recipe pretrain_original data.shards=/data/ls960
    torchrun --nproc_per_node 8 -m ds_w2v.train finetune-cls --recipe finetune_cls_original ...

R is a YAML file or the name of a shipped recipe (``ds_w2v/recipes/*.yaml``); ``key=value``
overrides are dotted config keys (``optim.lr=1e-4``). Rerunning the same command resumes from
``run_dir``'s latest checkpoint. Exit 0: done (the result JSON on stdout); 1: bad input (one
line); 3: stopped early (non-finite updates, checkpoints that cannot be written).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", required=True, help="recipe YAML path or shipped recipe name")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides")
    p.add_argument("--deepspeed_config", "--deepspeed-config", dest="deepspeed_config",
                   help="DeepSpeed JSON (default: the recipe's deepspeed_config)")
    return p


class TrainCommand:
    """A training sub-command: the task it runs is all that differs between the three."""

    def __init__(self, name: str, task: str):
        self.name, self.task = name, task

    def build_parser(self, prog: str) -> argparse.ArgumentParser:
        return build_parser(prog)

    def main(self, args: argparse.Namespace) -> int:
        from ..train.config import load_config
        from ..train.trainer import Trainer, TrainingAborted

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        fields = {"task": self.task}
        if args.deepspeed_config:
            fields["deepspeed_config"] = args.deepspeed_config
        trainer = Trainer(load_config(args.recipe, args.overrides, **fields))
        try:
            result = trainer.train()
        except TrainingAborted as e:
            print(f"ds-w2v {self.name}: stopped: {e}", file=sys.stderr)
            return 3
        if trainer.is_rank0:
            print(json.dumps(result, indent=1))
        return 0


pretrain = TrainCommand("pretrain", "pretrain")
finetune_ctc = TrainCommand("finetune-ctc", "ctc")
finetune_cls = TrainCommand("finetune-cls", "cls")
