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

A CTC model is decoded as ``decoding.*`` says (greedy by default; ``decoding.decoder=beam
decoding.lm=lm.arpa`` for beam search with an n-gram LM, ``pip install .[lm]``). ``--tune-lm``
first chooses ``decoding.lm_weight`` and ``decoding.word_score`` on the dev split
(``data.dev_split``) over the grid ``--lm-weights`` x ``--word-scores``, then scores the splits with
them; the output's ``decoding`` says what was used and holds the dev grid. The tuning split is
always dev: a test split is never used to choose anything.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

# The --tune-lm grid: 5 x 5 = 25 decodings of dev a forward pass. wav2vec 2.0's LM weights fall in
# [0, 5] and its word scores in [-5, 5] (paper appendix C, Bayesian search); a small char model's
# best sit lower (BENCHMARKS.md, *Beam search with an n-gram LM*).
DEFAULT_LM_WEIGHTS = "0,0.5,1,2,3"
DEFAULT_WORD_SCORES = "-2,-1,0,1,2"


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default=None, help="recipe YAML path or shipped recipe name (optional)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted config overrides (data.shards, model.init, ...)")
    p.add_argument("--split", action="append", default=None, help="a split to score (repeatable)")
    p.add_argument("--tag", default=None, help="with a run directory: the checkpoint tag (best, latest, update_...)")
    p.add_argument("--out", default=None, help="also write the scores to this JSON file")
    p.add_argument("--tune-lm", action="store_true",
                   help="beam search: choose decoding.lm_weight and decoding.word_score on data.dev_split first")
    p.add_argument("--lm-weights", default=DEFAULT_LM_WEIGHTS, help=f"--tune-lm grid (default {DEFAULT_LM_WEIGHTS})")
    p.add_argument("--word-scores", default=DEFAULT_WORD_SCORES,
                   help=f"--tune-lm grid (default {DEFAULT_WORD_SCORES}; a list starting with - needs '=': "
                        "--word-scores=-1,0)")
    return p


def main(args: argparse.Namespace) -> int:

    from ..data.index import read_split
    from ..data.shard_format import read_index
    from ..train.checkpoint_export import model_from_run
    from ..train.checkpoint_tags import is_run_dir
    from ..train.config import load_config
    from ..train.distributed import init_distributed, run_device, shutdown, world_from_env
    from ..train.evaluator import Evaluator
    from ..train.lm_tuning import GridScoring, parse_grid
    from ..train.tasks import load_init, task_for_model
    from .stdout import only_results_on_stdout

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    with only_results_on_stdout():  # DeepSpeed's prints go to stderr: stdout is the JSON alone
        config = load_config(args.recipe, args.overrides)
        if not config.model.init:
            raise ValueError("evaluate needs model.init=MODEL (a model file, an HF folder or a run directory)")
        d = config.data
        if args.tune_lm:
            grid = parse_grid(args.lm_weights, "--lm-weights"), parse_grid(args.word_scores, "--word-scores")
            if not d.dev_split:
                raise ValueError("--tune-lm tunes on data.dev_split, which is unset")
            if d.dev_split in d.test_splits:
                raise ValueError(f"--tune-lm: data.dev_split={d.dev_split} is also a test split: weights are never "
                                 "chosen on test")
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
        dev_index = read_split(d.shards, d.dev_split, d.shard_url_prefix) if args.tune_lm else None
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
        tuning = GridScoring(task, *grid) if args.tune_lm else None
        rank, world, local_rank = world_from_env()
        device = run_device(config.device, local_rank)
        if world > 1:
            init_distributed(device, local_rank)
        model.to(device)
        stream = d.eval_stream_config(task.stream_kind, config.seed)
        evaluator = Evaluator(task, stream, rank=rank, world=world, device=device)
        out = {"model": str(init), "task": config.task}
        if tuning is not None:
            # dev only; the evaluator's loader reads the grid task's stream kind
            dev = Evaluator(tuning, stream, rank=rank, world=world, device=device).run(model, dev_index)
            best = tuning.choose(dev.sums)
            task.decoder = task.decoder.with_weights(best.lm_weight, best.word_score)
            out["tuning"] = {"split": d.dev_split, "grid": [p.to_dict() for p in tuning.points]}
            if rank == 0:
                logging.getLogger("ds_w2v.lm").info("tuned on %s: lm_weight %g, word_score %g (dev WER %.4f, CER %.4f)",
                                                     d.dev_split, best.lm_weight, best.word_score, best.wer, best.cer)
        if task.decoder is not None:  # the CTC tasks: how the hypotheses were written
            out["decoding"] = task.decoder.describe()
        out["splits"] = {s: evaluator.run(model, index).metrics for s, index in indexes.items()}
    if rank == 0:
        text = json.dumps(out, indent=1)
        print(text)
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(text + "\n")
    shutdown()
    return 0
