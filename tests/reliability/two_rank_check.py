"""Run under the deepspeed launcher (2 CPU processes, gloo, ZeRO-2) by test_two_ranks.py: train
tiny on shards of very uneven sizes, with a NaN loss on one rank only at one update attempt, and
write what each rank did (updates, skips, stream position, parameters) for the test to compare."""
import argparse
import json
import os

import torch

from ds_w2v.train.config import load_config
from ds_w2v.train.tasks import StepResult
from ds_w2v.train.trainer import Trainer

p = argparse.ArgumentParser()
p.add_argument("--local_rank", type=int, default=None)
p.add_argument("--shards", required=True)
p.add_argument("--out", required=True)
p.add_argument("--nan-rank", type=int, required=True)
p.add_argument("--nan-attempt", type=int, required=True)
args = p.parse_args()

config = load_config("pretrain_tiny", [
    f"data.shards={args.shards}", f"run_dir={args.out}/run", "deepspeed_config=cpu.json", "precision=fp32",
    "data.batch_s=12", "global_batch_s=48", "max_updates=4", "log_every=1", "eval_every=1000", "save_every=2",
    "data.shuffle_buffer=8", "model.overrides.encoder_layerdrop=0.0", "data.dev_split=null", "device=cpu",
])
trainer = Trainer(config, args.local_rank)
rank = trainer.rank
step, calls = trainer.task.step, {"n": 0}


def nan_on_one_rank(model, batch):
    attempt = calls["n"] // trainer.accum
    calls["n"] += 1
    res = step(model, batch)
    if rank == args.nan_rank and attempt == args.nan_attempt:
        return StepResult(res.loss * float("nan"), res.sample_size, res.logs)
    return res


trainer.task.step = nan_on_one_rank
next_batch, ids = trainer._next_batch, []


def recording_next_batch():
    batch = next_batch()
    ids.extend(batch.ids)
    return batch


trainer._next_batch = recording_next_batch
result = trainer.train()
state = {n: p.detach().clone() for n, p in trainer.module.named_parameters()}
torch.save(state, f"{args.out}/rank{rank}.pt")
with open(f"{args.out}/rank{rank}.json", "w") as f:
    json.dump({"rank": int(os.environ["RANK"]), "world": trainer.world, "zero_stage": trainer.zero_stage,
               "updates": trainer.update, "result": result, "micro_batches": calls["n"],
               "skipped_steps": trainer.engine.skipped_steps, "stream": trainer.loader.state_dict(),
               "ids": ids}, f)
