"""``ds-w2v evaluate``: score a model on splits of a prepared corpus, every utterance once.

    ds-w2v evaluate --recipe finetune_ctc_tiny data.shards=demo_data/shards/timit model.init=runs/ctc --split test
    ds-w2v evaluate data.shards=/data/librispeech model.init=ctc.pt --split test-clean --split test-other --out scores.json
    torchrun --nproc_per_node 8 -m ds_w2v.train evaluate data.shards=... model.init=... --split test

``model.init`` is a ds_w2v model file, an HF transformers folder or a run directory (its best
checkpoint, else its latest; ``--tag`` picks another). The recipe is optional: only its
``data.*`` keys (shards, ``batch_s``), ``seed`` and ``device`` are used; the task is the model's
(a CTC model over TIMIT's 39 phones is scored by PER, as ``data.target=phones`` trained it).
Without ``--split``: the recipe's dev split and test split(s) that exist. Nothing is written
into any run directory and nothing is resumed; the scores go to stdout as JSON (and to
``--out``). Several processes (torchrun / deepspeed launcher) share the splits; each process
holds the whole model (no ZeRO: nothing is trained).
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default=None, help="recipe YAML path or shipped recipe name (optional)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides (data.shards, model.init, ...)")
    p.add_argument("--split", action="append", default=None, help="a split to score (repeatable)")
    p.add_argument("--tag", default=None, help="with a run directory: the checkpoint tag (best, latest, update_...)")
    p.add_argument("--out", default=None, help="also write the scores to this JSON file")
    return p


def main(args: argparse.Namespace) -> int:

    from ..data.index import read_split
    from ..data.shard_format import read_index
    from ..train.checkpoint import is_run_dir, model_from_run
    from ..train.config import load_config
    from ..train.distributed import init_distributed, run_device, shutdown, world_from_env
    from ..train.evaluator import Evaluator
    from ..train.tasks import load_init, task_for_model

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config(args.recipe, args.overrides)
    if not config.model.init:
        raise ValueError("evaluate needs model.init=MODEL (a model file, an HF folder or a run directory)")
    d = config.data
    if args.split:
        splits = list(dict.fromkeys(args.split))
    else:
        known = read_index(d.shards)["splits"]  # no index: the usual one line naming the folder
        splits = [s for s in [d.dev_split, *d.test_splits] if s and s in known]
        if not splits:
            raise ValueError(f"data.shards: {d.shards} has none of the splits {[d.dev_split, *d.test_splits]}; "
                             "name one with --split")
    # -- everything that can be refused, before any process group --------------------------------
    # an unknown split: one line naming the known ones
    indexes = {s: read_split(d.shards, s, d.shard_url_prefix) for s in splits}
    init = config.model.init
    if args.tag is not None:
        if not is_run_dir(Path(init)):
            raise ValueError(f"--tag {args.tag}: model.init={init} is not a run directory")
        model = model_from_run(Path(init), args.tag)
    else:
        model = load_init(init)
    task_class = task_for_model(model)  # a CTC model over the phone set is scored by PER
    config.task, config.best_metric = task_class.name, ""
    task = task_class(config, next(iter(indexes.values())))
    # the data's vocabulary / labels must be the model's, or the scores mean nothing
    task.check_model(model, init)
    rank, world, local_rank = world_from_env()
    device = run_device(config.device, local_rank)
    if world > 1:
        init_distributed(device, local_rank)
    model.to(device)
    evaluator = Evaluator(task, batch_s=d.batch_s, max_sample_size=d.max_sample_size, seed=config.seed,
                          rank=rank, world=world, device=device)
    scores = {s: evaluator.run(model, index).metrics for s, index in indexes.items()}
    if rank == 0:
        text = json.dumps({"model": str(init), "task": config.task, "splits": scores}, indent=1)
        print(text)
        if args.out:
            Path(args.out).write_text(text + "\n")
    shutdown()
    return 0
