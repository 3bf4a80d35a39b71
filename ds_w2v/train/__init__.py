"""Training: one DeepSpeed trainer for pretraining, CTC and classification fine-tuning.

config.py            typed run config, YAML recipes, overrides, batch arithmetic
deepspeed_config.py  shipped DeepSpeed JSON + run config -> the dict for deepspeed.initialize
schedule.py          learning-rate schedules (polynomial, tri-stage)
tasks/               the task objects (model, loss, metrics, what "best" means), one file each,
                     and their registry (TASK_CLASSES, register_task)
trainer.py           the Trainer
checkpoint.py        DeepSpeed checkpoints, client state, keep-last-K, export
metrics.py           TensorBoard + metrics.jsonl + progress bar + warnings
flops.py             analytic FLOPs and MFU
__main__.py          ``python -m ds_w2v.train``: the command table of ds_w2v/cli.py
"""
