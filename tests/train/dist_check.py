"""Run under the deepspeed launcher (2 CPU processes, gloo): train a few updates of tiny and
write every rank's full parameters (gathered under ZeRO-3) for the test to compare."""
import argparse
import json
import os

import torch

from ds_w2v.train.config import load_config
from ds_w2v.train.trainer import Trainer

p = argparse.ArgumentParser()
p.add_argument("--local_rank", type=int, default=None)
p.add_argument("--shards", required=True)
p.add_argument("--out", required=True)
p.add_argument("--ds", required=True)
args = p.parse_args()

config = load_config("pretrain_tiny", [f"data.shards={args.shards}", f"run_dir={args.out}/run", f"deepspeed_config={args.ds}",
                                       "precision=fp32", "data.batch_s=12", "global_batch_s=48", "max_updates=3", "log_every=1",
                                       "eval_every=1000", "save_every=1000", "model.overrides.encoder_layerdrop=0.1"])
trainer = Trainer(config, args.local_rank)
result = trainer.train()
params = list(trainer.module.named_parameters())
if trainer.zero_stage == 3:
    import deepspeed

    with deepspeed.zero.GatheredParameters([p for _, p in params]):
        state = {n: p.detach().clone() for n, p in params}
else:
    state = {n: p.detach().clone() for n, p in params}
rank = int(os.environ["RANK"])
torch.save(state, f"{args.out}/rank{rank}.pt")
with open(f"{args.out}/rank{rank}.json", "w") as f:
    json.dump({"updates": trainer.update, "world": trainer.world, "accum": trainer.accum,
               "batches": trainer.loader.state_dict()}, f)
