"""What a training run would do, worked out without doing it: ``ds-w2v pretrain ... --dry-run``.

    ds-w2v pretrain --recipe pretrain_original data.shards=/data/ls960 --dry-run --world-size 64
    deepspeed --num_gpus 8 --module ds_w2v.train pretrain --recipe R ... --dry-run   # the launcher's world

Pure functions of the config and the index (``dataset.json``): each returns a plain dict (JSON as
it is), :func:`format_plan` makes it readable. Nothing here starts a process group, opens a
shard or writes a file, and the model is built on the meta device only (no weights), to be checked; what the run would refuse before its process group (a
batch that does not divide, an unknown split, a bad shard URL prefix, a DeepSpeed config that
does not fit the device) is refused here with the same one-line error.

The arithmetic (``config.py``'s module docstring, fairseq's ``max_tokens x update_freq x GPUs``)::

    global_batch_s = data.batch_s x world_size x accumulation
    batches_per_epoch (per rank) = floor(train_s / (world_size x data.batch_s) x data.fill)
    epochs = max_updates x accumulation / batches_per_epoch
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ..data.augment_sources import check_augment
from ..data.index import SplitIndex
from ..data.mix import mix_probabilities
from ..data.splits import RunSplits, read_run_splits
from ..data.stream import batches_per_epoch, shard_order, slot_shards
from ..hardware import data_workers
from .config import TrainConfig, resolve_batch
from .deepspeed_config import build_ds_config, find_ds_config, read_ds_config
from .distributed import run_device, world_from_env
from .precision import resolve_precision

log = logging.getLogger("ds_w2v.train")


def world_plan(world_size: int | None = None) -> dict[str, Any]:
    """The ranks the plan is for: ``world_size`` when given (planning without launching), else
    the launcher's ``RANK`` / ``WORLD_SIZE``, else one process."""
    rank, env_world, _ = world_from_env()
    if world_size is not None:
        if world_size < 1:
            raise ValueError(f"--world-size: must be >= 1, got {world_size}")
        return {"world_size": world_size, "rank": 0, "source": "--world-size"}
    source = "launcher (RANK, WORLD_SIZE)" if env_world > 1 else "one process (no launcher)"
    return {"world_size": env_world, "rank": rank, "source": source}


def batch_plan(config: TrainConfig, train: SplitIndex, world_size: int) -> dict[str, Any]:
    """Micro-batch, accumulation and global batch in audio-seconds; batches and updates per
    epoch; epochs and audio for ``max_updates``. Raises ``ValueError`` (``resolve_batch``) when
    ``global_batch_s`` is not a whole multiple of ``data.batch_s x world_size``."""
    d = config.data
    accum = resolve_batch(config, world_size)
    per_epoch = batches_per_epoch(train.total_s, d.batch_s, world_size, d.fill)
    global_s = d.batch_s * world_size * accum
    return {
        "micro_batch_s": d.batch_s, "world_size": world_size, "accumulation": accum,
        "global_batch_s": global_s,
        "fill": d.fill,
        "train_s": train.total_s, "train_hours": train.total_s / 3600,
        "batches_per_epoch_per_rank": per_epoch,
        "updates_per_epoch": per_epoch / accum,  # an update may straddle two epochs
        "max_updates": config.max_updates,
        "epochs": config.max_updates * accum / per_epoch,
        # the budget counts padded (B x T) audio; about `fill` of it is real audio
        "budget_audio_s": config.max_updates * global_s,
    }


def _optimizer(ds: dict[str, Any]) -> str:
    """Which optimizer ``engine.build_engine`` would step with (``choose_optimizer``), without
    building DeepSpeed's op to find out."""
    block = ds.get("optimizer")
    if block is None:
        return "torch.optim.AdamW (fused)"
    offload = (ds.get("zero_optimization") or {}).get("offload_optimizer") or {}
    if str(block.get("type", "")).lower() in ("adam", "adamw"):
        op = "DeepSpeedCPUAdam (offloaded)" if offload.get("device") in ("cpu", "nvme") else "FusedAdam"
        return f"DeepSpeed {op}; torch.optim.AdamW if its op cannot be built"
    return f"DeepSpeed {block.get('type')}"


def deepspeed_plan(config: TrainConfig, world_size: int, device_type: str) -> dict[str, Any]:
    """The DeepSpeed config ``deepspeed.initialize`` would get (``build_ds_config``), and its
    headline: ZeRO stage, precision, optimizer, batch integers."""
    precision = resolve_precision(config.precision, read_ds_config(config.deepspeed_config), device_type)
    ds = build_ds_config(config, world_size, device_type, precision)
    zero = ds.get("zero_optimization") or {}
    offload = {k: (zero.get(f"offload_{k}") or {}).get("device") for k in ("optimizer", "param")}
    return {
        "file": str(find_ds_config(config.deepspeed_config)),
        "device_type": device_type,
        "zero_stage": int(zero.get("stage", 0)),
        "offload": {k: v for k, v in offload.items() if v not in (None, "none")},
        "precision": precision.name,
        "precision_reason": precision.reason,
        "optimizer": _optimizer(ds),
        "train_batch_size": ds["train_batch_size"],
        "train_micro_batch_size_per_gpu": ds["train_micro_batch_size_per_gpu"],
        "gradient_accumulation_steps": ds["gradient_accumulation_steps"],
        "gradient_clipping": ds["gradient_clipping"],
        "config": ds,
    }


def shard_plan(index: SplitIndex, world_size: int, seed: int, num_workers: int = 0, epoch: int = 0) -> dict[str, Any]:
    """Which shards each rank (and each of its DataLoader workers) reads in the first pass of
    ``epoch``: the stream's own ``shard_order`` and ``slot_shards``. With fewer shards than ranks
    every rank reads every shard and keeps every ``world_size``-th sample (``sample_split``:
    ``[stride, offset]`` per stage, rank then worker)."""
    order = shard_order(index.urls, seed, epoch, 0)
    name_of = dict(zip(index.urls, index.names or index.urls))
    seconds_of = dict(zip(index.urls, index.shard_seconds))
    slots = max(1, num_workers)
    ranks = []
    for rank in range(world_size):
        urls, splits = slot_shards(order, rank, world_size, 0, 1)
        share = 1.0
        for stride, _ in splits:
            share /= stride
        entry: dict[str, Any] = {
            "rank": rank, "shards": [name_of[u] for u in urls], "sample_split": [list(s) for s in splits],
            "audio_s": sum(seconds_of[u] for u in urls) * share,  # expected: a sample split keeps 1/stride
        }
        if slots > 1:
            entry["workers"] = []
            for worker in range(slots):
                w_urls, w_splits = slot_shards(order, rank, world_size, worker, slots)
                entry["workers"].append({"shards": [name_of[u] for u in w_urls],
                                         "sample_split": [list(s) for s in w_splits]})
        ranks.append(entry)
    return {
        "split": index.split, "epoch": epoch, "pass": 0, "seed": seed, "num_shards": index.num_shards,
        "level": "shards" if index.num_shards >= world_size else "samples",
        "first_url": index.urls[0], "ranks": ranks,
    }


def mix_plan(config: TrainConfig, run: RunSplits, world_size: int, accum: int) -> list[dict[str, Any]] | None:
    """For a mix (``data.train``): each corpus's share of the batches (``p``), its batches per epoch
    per rank and how many of its epochs ``max_updates`` makes (each corpus loops on its own)."""
    if not run.mix:
        return None
    d = config.data
    probabilities = mix_probabilities([i.total_s for _, i, _ in run.mix], [w for _, _, w in run.mix], d.mix_alpha)
    out = []
    for (src, index, weight), p in zip(run.mix, probabilities):
        per_epoch = batches_per_epoch(index.total_s, d.batch_s, world_size, d.fill)
        out.append({"entry": src.entry, "weight": weight, "p": p, "hours": index.hours,
                     "batches_per_epoch_per_rank": per_epoch,
                     "epochs": config.max_updates * accum * p / per_epoch})
    return out


def _splits(run: RunSplits) -> dict[str, SplitIndex]:
    out = {"train": run.train, **({"dev": run.dev} if run.dev is not None else {})}
    for src, index, _ in (run.mix or [])[1:]:  # the first corpus of a mix is "train"
        out[f"train:{src.entry}"] = index
    out.update((f"test:{k}", v) for k, v in run.tests.items())
    return out


def plan_run(config: TrainConfig, world_size: int | None = None, device_type: str | None = None) -> dict[str, Any]:
    """The whole plan of a run (see the module docstring); ``device_type`` defaults to the one
    ``Trainer`` would take on this host (``cuda`` when torch sees a GPU and ``device`` is not ``cpu``)."""

    from .tasks import TASK_CLASSES

    world = world_plan(world_size)
    n = world["world_size"]
    if device_type is None:
        device_type = run_device(config.device).type
    task_class = TASK_CLASSES[config.task]
    run = read_run_splits(config.data, task_class.reads_targets, task_class.needs_dev)
    check_augment(config.data.augment)  # a bad noise/RIR folder is refused as the run would refuse it
    splits = _splits(run)
    train = splits["train"]
    task = task_class(config, train)  # refuses a CTC corpus without vocabulary, cls without labels
    # the model as the run builds it (on the meta device: no weights), from model.init when given:
    # an unknown model.overrides key, an init of another vocabulary, a run directory holding another
    # task's or shape's checkpoints are refused here as the run would refuse them
    import torch

    from . import checkpoint as ckpt
    from .tasks import load_init

    init = load_init(config.model.init) if config.model.init else None
    with torch.device("meta"):
        model = task.build_model(init)
    problem = ckpt.resume_problem(Path(config.run_dir), model)
    if problem:
        raise ValueError(f"run_dir {config.run_dir} {problem}: resume it with the command that made it, or choose "
                         "another run_dir")
    batch = batch_plan(config, train, n)
    mix = mix_plan(config, run, n, batch["accumulation"])
    if mix:  # the epoch figures above are the first corpus's; the mix's are per corpus
        batch["train_s"] = sum(s.total_s for _, s, _ in run.mix)
        batch["train_hours"] = batch["train_s"] / 3600
    shards = shard_plan(train, n, config.seed, data_workers(config.data.num_workers, device_type))
    notes = []
    if train.num_shards < n:
        notes.append(f"{train.num_shards} train shards for {n} ranks: every rank reads every shard and keeps 1/{n} "
                     f"of the samples (shard reads x{n}); more shards than ranks avoids it")
    elif train.num_shards % n:
        notes.append(f"{train.num_shards} train shards do not divide over {n} ranks: some read one shard more; "
                     "the others loop on theirs to make the same batch count")
    if batch["batches_per_epoch_per_rank"] < batch["accumulation"]:
        notes.append("an epoch is shorter than one update (batches per epoch < accumulation)")
    return {
        "task": config.task, "run_dir": config.run_dir,
        "model": {"preset": config.model.preset, "init": config.model.init},
        "world": world, "batch": batch, "deepspeed": deepspeed_plan(config, n, device_type),
        "splits": {name: {"split": s.split, "num_shards": s.num_shards, "hours": s.hours, "num_samples": s.num_samples}
                   for name, s in splits.items()},
        "shard_url_prefix": config.data.shard_url_prefix,
        "shards": shards, "notes": notes, "mix": mix,
    }


def _names(names: list[str], show: int = 4) -> str:
    if len(names) <= show:
        return ", ".join(names)
    return f"{', '.join(names[:show])}, ... (+{len(names) - show} more)"


def format_plan(plan: dict[str, Any]) -> str:
    """The plan as lines a person reads (``--json`` prints the dict itself)."""
    w, b, ds, sh = plan["world"], plan["batch"], plan["deepspeed"], plan["shards"]
    model = plan["model"]["init"] or f"preset {plan['model']['preset']}"
    offload = f" (offload {', '.join(f'{k} to {v}' for k, v in ds['offload'].items())})" if ds["offload"] else ""
    lines = [
        f"dry run of a {plan['task']} run ({model}); run_dir {plan['run_dir']} (not created)",
        f"world       {w['world_size']} rank(s), from {w['source']}",
        (f"batch       {b['micro_batch_s']:g} audio-s per micro-batch x {b['world_size']} rank(s) x "
         f"{b['accumulation']} accumulation = {b['global_batch_s']:,.6g} audio-s per update"),
        (f"epoch       train {b['train_hours']:,.2f} h: {b['batches_per_epoch_per_rank']:,} batches per rank "
         f"(fill {b['fill']:g}) = {b['updates_per_epoch']:,.2f} updates") if not plan.get("mix") else
        (f"epoch       train {b['train_hours']:,.2f} h in {len(plan['mix'])} corpora, each batch from one, each "
         "corpus its own epochs:"),
        *(f"  {m['entry']}: {m['hours']:,.2f} h, weight {m['weight']:g}, p {m['p']:.3f}: "
          f"{m['batches_per_epoch_per_rank']:,} batches per rank per epoch, {m['epochs']:,.2f} epochs in the run"
          for m in plan.get("mix") or []),
        (f"run         {b['max_updates']:,} updates" + (f" = {b['epochs']:,.2f} epochs" if not plan.get("mix") else "")
         + f", {b['budget_audio_s'] / 3600:,.1f} h of batch budget"),
        (f"deepspeed   {ds['file']} on {ds['device_type']}: ZeRO stage {ds['zero_stage']}{offload}, "
         f"{ds['precision']} ({ds['precision_reason']}), optimizer {ds['optimizer']}"),
        (f"            train_batch_size {ds['train_batch_size']} = {ds['train_micro_batch_size_per_gpu']} micro-batch"
         f" x {ds['gradient_accumulation_steps']} accumulation x {w['world_size']} rank(s); "
         f"gradient clipping {ds['gradient_clipping']:g}"),
        "splits      " + "; ".join(f"{k} {v['split']!r}: {v['num_shards']} shards, {v['hours']:,.2f} h"
                                   for k, v in plan["splits"].items()),
    ]
    where = f"through {plan['shard_url_prefix']!r}" if plan["shard_url_prefix"] else "next to dataset.json"
    level = "one shard to one rank" if sh["level"] == "shards" else "sample-level split: every rank reads every shard"
    lines.append(f"shards      epoch {sh['epoch']}, pass {sh['pass']} (seed {sh['seed']}): {sh['num_shards']} shards "
                 f"{where} ({level}); first URL {sh['first_url']}")
    for r in sh["ranks"]:
        split = "".join(f", samples {off}::{stride}" for stride, off in r["sample_split"])
        lines.append(f"  rank {r['rank']:<4d} {len(r['shards'])} shard(s){split}, ~{r['audio_s'] / 3600:,.2f} h: "
                     f"{_names(r['shards'])}")
        # the workers of rank 0 only: every rank splits its share alike (--json has them all)
        for i, wk in enumerate(r.get("workers", []) if r["rank"] == 0 else []):
            wsplit = "".join(f", samples {off}::{stride}" for stride, off in wk["sample_split"])
            lines.append(f"    worker {i}  {len(wk['shards'])} shard(s){wsplit}: {_names(wk['shards'], 3)}")
    lines += [f"note        {n}" for n in plan["notes"]]
    return "\n".join(lines)
