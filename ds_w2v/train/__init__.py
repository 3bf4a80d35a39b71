"""Training: one DeepSpeed trainer for pretraining, CTC and classification fine-tuning.

config.py            typed run config, YAML recipes, overrides, batch arithmetic
config_keys.py       every config key with its type, default and docstring (--help-config)
precision.py         precision=auto: what the device runs natively
deepspeed_config.py  shipped DeepSpeed JSON + run config -> the dict for deepspeed.initialize
engine.py            deepspeed.initialize, and the optimizer it gets (FusedAdam or torch's AdamW)
op_record.py         DeepSpeed op builds that failed, recorded so that no process tries again
schedule.py          learning-rate schedules (polynomial, tri-stage)
tasks/               the task objects (model, loss, metrics, what "best" means), one file each,
                     and their registry (TASK_CLASSES, register_task)
trainer.py           the Trainer
state.py             the trainer's counters, saved in every checkpoint
evaluator.py         every utterance of a split scored once, over all ranks
probing.py           the linear phone probe during pretraining (probe_every)
plan.py              the dry run: what a run would do, worked out without doing it
run_lock.py          one writer per run directory (RUN_DIR/.lock); ranks end with their launcher
run_dir.py           one run directory seen by every rank (multi-node check)
checkpoint.py        DeepSpeed checkpoints, client state, keep-last-K, bests, export
average.py           checkpoint averaging (ds-w2v average)
lm_tuning.py         LM weight x word score grid scored on dev (evaluate --tune-lm)
distributed.py       world from the launcher, process group, collectives
metrics.py           TensorBoard + metrics.jsonl + progress bar or lines + warnings
flops.py             analytic FLOPs and MFU
__main__.py          ``python -m ds_w2v.train``: the command table of ds_w2v/cli.py
"""
