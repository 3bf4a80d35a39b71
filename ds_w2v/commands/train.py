"""``ds-w2v pretrain | finetune-ctc | finetune-cls --recipe R [key=value ...]``: one training run.

    ds-w2v pretrain     --recipe pretrain_tiny data.shards=demo_data/shards/timit run_dir=runs/pt
    ds-w2v finetune-ctc --recipe finetune_ctc_tiny data.shards=... model.init=runs/pt run_dir=runs/ctc
    deepspeed --num_gpus 8 --module ds_w2v.train pretrain --recipe pretrain_original data.shards=/data/ls960
    torchrun --nproc_per_node 8 -m ds_w2v.train finetune-cls --recipe finetune_cls_original ...
    ds-w2v pretrain --recipe pretrain_original data.shards=/data/ls960 --dry-run --world-size 64 [--json]

R is a YAML file or the name of a shipped recipe (``ds_w2v/recipes/*.yaml``); ``key=value``
overrides are dotted config keys (``optim.lr=1e-4``). Rerunning the same command resumes from
``run_dir``'s latest checkpoint. Exit 0: done (the result JSON on stdout); 1: bad input (one
line; also a training stream that cannot read a single usable utterance, e.g. every shard URL
unreachable); 3: stopped early (non-finite updates, checkpoints that cannot be written).

``--dry-run`` prints the plan (``ds_w2v/train/plan.py``): the world (the launcher's
``RANK``/``WORLD_SIZE``, or ``--world-size N`` to plan for N ranks without launching), the batch
arithmetic, the DeepSpeed config, and which shards each rank reads in epoch 0; it checks the
model as the run builds it (on the meta device: no weights) and the run directory it would
resume, starts no process group and writes nothing (only rank 0 prints under a launcher).

``--help-config`` lists every ``key=value`` the command takes, with its type, default and meaning.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", help="recipe YAML path or shipped recipe name (required to train)")
    p.add_argument("--help-config", action="store_true",
                   help="list every config key (key=value) with its type, default and meaning, and exit")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides")
    p.add_argument("--deepspeed_config", "--deepspeed-config", dest="deepspeed_config",
                   help="DeepSpeed JSON (default: the recipe's deepspeed_config)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan (world, batch arithmetic, DeepSpeed config, shards per rank) and exit")
    p.add_argument("--world-size", type=int, default=None, metavar="N",
                   help="with --dry-run: plan for N ranks (default: the launcher's WORLD_SIZE, else 1)")
    p.add_argument("--device-type", choices=("cuda", "cpu"), default=None,
                   help="with --dry-run: the device the plan is for (default: what the trainer would use here)")
    p.add_argument("--json", action="store_true", help="with --dry-run: print the plan as JSON")
    return p


class TrainCommand:
    """A training sub-command: the task it runs is all that differs between them (``cli.task_commands``
    makes one per ``Task.command`` of the registry)."""

    def __init__(self, name: str, task: str):
        self.name, self.task = name, task

    def build_parser(self, prog: str) -> argparse.ArgumentParser:
        return build_parser(prog)

    def main(self, args: argparse.Namespace) -> int:
        from ..data.stream import NoUsableData
        from ..train.config import TrainConfig, load_config

        if args.help_config:
            from ..models.wav2vec2 import Wav2Vec2Config
            from ..train.config_keys import config_keys, format_keys

            print(format_keys(config_keys(TrainConfig)))
            print("\nmodel.overrides.KEY: the model's own keys, over the preset's (model.preset):\n")
            print(format_keys(config_keys(Wav2Vec2Config, "model.overrides.")))
            return 0
        if not args.recipe:
            raise ValueError("--recipe is required (a recipe YAML or a shipped recipe name: pretrain_tiny, ...)")
        fields = {"task": self.task}
        if args.deepspeed_config:
            fields["deepspeed_config"] = args.deepspeed_config
        if not args.dry_run:
            given = [f for f, v in (("--world-size", args.world_size), ("--device-type", args.device_type),
                                    ("--json", args.json or None)) if v is not None]
            if given:
                raise ValueError(f"{', '.join(given)}: only with --dry-run "
                                 "(a launched run takes its world from the launcher)")
        config = load_config(args.recipe, args.overrides, **fields)
        if args.dry_run:
            return self.dry_run(config, args)
        from ..train.distributed import shutdown
        from ..train.trainer import Trainer, TrainingAborted
        from .stdout import only_results_on_stdout

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        with only_results_on_stdout():  # DeepSpeed's and the op builds' prints go to stderr
            trainer = Trainer(config)
            try:
                result = trainer.train()
            except TrainingAborted as e:
                print(f"ds-w2v {self.name}: stopped: {e}", file=sys.stderr)
                return 3
            except NoUsableData as e:
                # re-raised from a DataLoader worker, the message carries the worker's traceback, whose
                # last line is "ds_w2v.data.stream.NoUsableData: <the message>"
                line = str(e).strip().splitlines()[-1].removeprefix(f"{NoUsableData.__module__}.{NoUsableData.__name__}: ")
                print(f"ds-w2v {self.name}: error: {line}", file=sys.stderr)
                shutdown()  # every rank stops here together (Trainer.train_step tells them all)
                return 1
        if trainer.is_rank0:
            print(json.dumps(result, indent=1))
        shutdown()  # every rank finished: leave the process group together
        return 0

    def dry_run(self, config, args: argparse.Namespace) -> int:
        from ..train.plan import format_plan, plan_run

        plan = plan_run(config, args.world_size, args.device_type)
        if plan["world"]["rank"] == 0:  # under a launcher every rank plans (and refuses) alike; one prints
            print(json.dumps(plan, indent=1) if args.json else format_plan(plan))
        return 0

