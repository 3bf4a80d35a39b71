"""One trainer for every task of ``tasks/``, on the DeepSpeed engine.

``Trainer(config).train()``: build the task's model, wrap it with ``deepspeed.initialize``
(ZeRO stage, precision and optimizer from the DeepSpeed JSON, hyper-parameters from the recipe),
stream duration-filled batches, and per update: accumulate ``gradient_accumulation`` micro-
batches weighted by their share of the update's audio, step the learning rate and the Gumbel
temperature, log, evaluate on ``dev``, keep checkpoints. The task object (``tasks/``) is the
only thing that differs between pretraining, CTC and classification.

Launch lines (the same for every task; see launch/*.sh):

    ds-w2v pretrain --recipe pretrain_tiny data.shards=demo_data/shards/timit      # 1 process
    deepspeed --num_gpus 8 --module ds_w2v.train pretrain --recipe pretrain_original \
        data.shards=/data/ls960 --deepspeed_config ds_configs/zero2.json            # 8 GPUs
    deepspeed --hostfile launch/hostfile.example --module ds_w2v.train pretrain ...  # many nodes
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from ..data.augment_config import describe
from ..data.augment_sources import check_augment
from ..data.loader import StreamingLoader, merge_rank_states
from ..data.mix import MixedLoader
from ..data.mix_sources import mix_labels
from ..data.prefetch import BatchFeed
from ..data.samples import CORRUPTION_REASONS, TOO_LONG, TOO_SHORT
from ..data.stream import UNREACHABLE_SHARD, NoUsableData
from ..hardware import Machine, apply_default_threads, key_inductor_cache_by_isa
from . import checkpoint as ckpt
from . import checkpoint_tags as ckpt_tags
from .config import TrainConfig, config_to_dict, resolve_batch
from .deepspeed_config import build_ds_config, read_ds_config
from .distributed import (
    all_reduce, collective_device, gather_objects, init_distributed, reduce_all_, replica_digests, run_device,
    world_from_env,
)
from .engine import build_engine
from .evaluator import EvalResult, Evaluator
from .flops import peak_flops
from .metrics import MetricsLogger
from ..data.splits import read_run_splits
from .precision import resolve_precision
from .probing import PhoneProbe
from .run_dir import check_shared_run_dir
from .run_lock import RunLock, die_with_launcher
from .schedule import learning_rate
from .state import TrainerState
from .tasks import TASK_CLASSES, load_init

log = logging.getLogger("ds_w2v.train")


class TrainingAborted(RuntimeError):
    """The run stopped early (non-finite updates in a row, checkpoints that cannot be written);
    the last checkpoint (``checkpoints/latest``) is usable."""


# the loader's skip counters, logged summed over ranks (counted since the process started)
DATA_COUNTS = ("data/num_corrupt", *(f"data/skipped/{r}" for r in (*CORRUPTION_REASONS, UNREACHABLE_SHARD, TOO_SHORT,
                                                                    TOO_LONG)))


def compile_model(model: torch.nn.Module, mode: str) -> list[torch.nn.Module]:
    """``torch.compile`` the encoder's blocks (``blocks``) or the backbone (``backbone``) in place;
    returns the compiled modules (none for ``none``).

    ``nn.Module.compile`` keeps each module's class and state-dict keys (no ``_orig_mod.``
    prefix), so checkpoints, export and DeepSpeed's hooks see the uncompiled model's names. It is
    what DeepSpeed's ``engine.compile()`` calls too, on the whole task module after ``initialize``
    (which, for these models, recompiles at every update: see ``TrainConfig.compile``); compiling
    before it chooses the region. The blocks share one class, so dynamo compiles their
    code once and every block reuses it (the parameters are graph inputs, not constants).
    ``dynamic=True``: every batch has its own length T, so static shapes would recompile once
    more before going dynamic anyway."""
    if mode == "none":
        return []
    # a block meets up to ~12 variants, each compiled once: train / eval, padded or not, with or
    # without grad (frozen backbone, evaluation), and batches of one utterance (dynamic shapes still
    # specialise a size of 1); past dynamo's default limit of 8 it would run the rest eagerly
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 16)
    key_inductor_cache_by_isa()
    targets = list(model.wav2vec2.encoder.layers) if mode == "blocks" else [model.wav2vec2]
    for module in targets:
        module.compile(dynamic=True)
    return targets


class Trainer:
    """``Trainer(config).train()``; ``state_dict``/``load_state_dict`` are what a checkpoint's
    client state holds (the counters of :class:`TrainerState`, the stream position, RNG states)."""

    def __init__(self, config: TrainConfig, local_rank: int | None = None):
        self.config = config
        die_with_launcher()  # a rank never trains on after its launcher is gone
        rank, world, env_local_rank = world_from_env()
        self.rank, self.world = rank, world
        local_rank = env_local_rank if local_rank is None else local_rank
        self.device = run_device(config.device, local_rank)
        use_cuda = self.device.type == "cuda"

        # -- everything that can be refused, before any process group starts --------------------
        d = config.data
        task_class = TASK_CLASSES[config.task]
        splits = read_run_splits(d, task_class.reads_targets, task_class.needs_dev)
        self.train_index, self.dev_index, self.test_indexes, self.mix = splits.train, splits.dev, splits.tests, splits.mix
        check_augment(d.augment)  # a bad noise/RIR folder is refused here; the loader's workers inherit them opened
        self.accum = resolve_batch(config, world)
        # precision and compute threads from the hardware, unless the config / environment sets them
        self.precision_choice = resolve_precision(config.precision, read_ds_config(config.deepspeed_config),
                                                  self.device.type)
        self.ds_config = build_ds_config(config, world, self.device.type, self.precision_choice)
        self.precision = self.precision_choice.name
        self.threads, threads_why = apply_default_threads()
        self.machine = {"machine": Machine.read().line(), "precision": self.precision,
                        "precision_reason": self.precision_choice.reason, "torch_threads": self.threads,
                        "threads_reason": threads_why}
        self.task = task_class(config, self.train_index)
        self.probe = PhoneProbe.from_config(config)  # reads its utterances now: refused before any group

        # -- model: built before the process group, so that a model.init whose vocabulary or
        # labels differ from the data's is refused before it too ------------------------------
        self._seed_everything(config.seed)
        init = load_init(config.model.init) if config.model.init else None
        model = self.task.build_model(init)
        if model.config.feature_grad_mult == 0.0:
            model.freeze_feature_encoder()  # not in the optimizer at all (fine-tuning default)
        ac = config.activation_checkpointing
        if ac:
            n = len(model.wav2vec2.encoder.layers)
            model.wav2vec2.encoder.checkpoint_layers = set(range(n)) if ac == "all" else {i for i in ac if 0 <= i < n}
        self.compiled = compile_model(model, config.compile)  # before deepspeed.initialize wraps it
        self.run_dir = Path(config.run_dir)
        # one writer per run directory, taken before anything is written into it; a run directory
        # holding another task's or shape's checkpoints is refused before model.json is rewritten
        self.lock = RunLock(self.run_dir).acquire() if self.is_rank0 else None
        problem = ckpt.resume_problem(self.run_dir, model)
        if problem:
            if self.lock is not None:
                self.lock.release()
            raise ValueError(f"run_dir {self.run_dir} {problem}: resume it with the command that made it, "
                             "or choose another run_dir")
        if self.is_rank0:
            ckpt.write_model_meta(self.run_dir, model)
            (self.run_dir / "config.yaml").write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False))
        # -- process group and engine ----------------------------------------------------------
        init_distributed(self.device, local_rank)
        check_shared_run_dir(self.run_dir, rank, world)
        self.engine, self.optimizer = build_engine(model, self.ds_config, config.optim, self.device)
        self.module = self.engine.module
        self.zero_stage = self.engine.zero_optimization_stage()
        self.evaluator = Evaluator(self.task, d.eval_stream_config(self.task.stream_kind, config.seed),
                                   rank=rank, world=world, device=self.device, zero3=self.zero_stage == 3)

        # -- data --------------------------------------------------------------------------------
        # the evaluator's streams never carry augmentation (Evaluator.loader)
        self.stream_config = d.stream_config(self.task.stream_kind, config.seed, self.device.type)
        if d.augment.active and self.is_rank0:
            log.info("training stream augmentation: %s", describe(d.augment))
        if self.mix:  # several corpora: each batch from one, drawn with p ∝ (weight x hours)^alpha
            self.loader = MixedLoader([(index, w) for _, index, w in self.mix], self.stream_config,
                                      temperature_alpha=d.mix_alpha, rank=rank, world_size=world,
                                      names=mix_labels([src for src, _, _ in self.mix]))
        else:
            self.loader = StreamingLoader.from_split(self.train_index, self.stream_config, rank=rank, world_size=world)
        self.batches = BatchFeed(self.loader, self.device, prefetch=d.prefetch)

        # -- state -------------------------------------------------------------------------------
        self.state = TrainerState()
        self.failed_saves = 0  # periodic saves that failed in a row (a full disk); not resumed
        self._resume()
        self._window = _Window()
        self.out_of_time = False  # max_train_s reached (decided on rank 0, agreed by all)
        self.logger = MetricsLogger(self.run_dir, self.is_rank0, config.max_updates, self.update,
                                    self.task.progress_keys(), self.task.health_warnings)
        if self.is_rank0:
            log.info("%s; %d torch threads per rank (%s)", self.precision_choice.line(), self.threads, threads_why)
            if self.precision_choice.warning:
                log.warning(self.precision_choice.warning)
            self.logger.header(self.update, self.machine)
        self.peak = peak_flops(torch.cuda.get_device_name(self.device) if use_cuda else "cpu",
                               self.precision)

    # ------------------------------------------------------------------------------------------
    @property
    def is_rank0(self) -> bool:
        return self.rank == 0

    @property
    def update(self) -> int:
        return self.state.update

    @property
    def bad_total(self) -> int:
        return self.state.bad_total

    def _seed_everything(self, seed: int) -> None:
        import random

        import numpy as np

        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)

    # -- checkpoints ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The client state of a checkpoint: counters (flat, as older checkpoints have them),
        the stream position (with the shards every rank has begun in the epoch: a collective),
        RNG states, the task's name and the batch layout (``world``)."""
        data = merge_rank_states(gather_objects(self.batches.state_dict()))
        return {**self.state.state_dict(), "epoch": self.epoch, "data": data, "rng": ckpt.rng_state(),
                "task": self.config.task, "world": self.world_figures()}

    def world_figures(self) -> dict[str, Any]:
        """How an update is made of micro-batches here: what a resume on another world size keeps
        (the global batch) and changes (the accumulation)."""
        return {"world_size": self.world, "zero_stage": self.zero_stage, "accumulation": self.accum,
                "global_batch_s": self.config.global_batch_s}

    def load_state_dict(self, client: dict[str, Any]) -> None:
        if client.get("task") not in (None, self.config.task):
            raise ValueError(f"run_dir: {self.run_dir} holds a {client.get('task')} run, not {self.config.task}")
        self.state.load_state_dict(client)
        saved = client.get("world") or {}
        if saved and (saved.get("world_size"), saved.get("zero_stage")) != (self.world, self.zero_stage) \
                and self.is_rank0:
            log.info("resuming a run saved on %s rank(s) at ZeRO stage %s on %d rank(s) at stage %d: gradient "
                     "accumulation %s -> %d, global batch %s -> %g audio-s", saved.get("world_size"),
                     saved.get("zero_stage"), self.world, self.zero_stage, saved.get("accumulation"), self.accum,
                     saved.get("global_batch_s"), self.config.global_batch_s)
        self.batches.load_state_dict(client["data"])
        self.module.set_num_updates(self.update)
        ckpt.set_rng_state(client["rng"])

    def save(self, tag: str | None = None, latest: bool = True, rank: ckpt_tags.BestRank | None = None) -> None:
        ckpt.save(self.engine, self.run_dir, tag or ckpt_tags.tag_for(self.update), self.state_dict(),
                  self.config.keep_last, self.is_rank0, save_latest=latest, rank=rank)

    def _save_failed(self, what: str, e: BaseException) -> str:
        """The one line every failed save says: what, where, why (a full disk named as such), and
        the complete checkpoints the pointers still name (a save removes its partial tag)."""
        best = ckpt_tags.best_tag(self.run_dir)
        return (f"update {self.update}: {what} in {ckpt_tags.ckpt_dir(self.run_dir)} not written "
                f"({ckpt.save_failure(e, self.run_dir)}); checkpoints/latest still names "
                f"{ckpt_tags.latest_tag(self.run_dir)}" + (f", checkpoints/best {best}" if best else ""))

    def _periodic_save(self, final: bool = False) -> bool:
        """Save at this update. A save that fails (full disk: OSError, or torch.save's RuntimeError)
        leaves ``latest`` on the previous checkpoint; one process logs it and trains on to the next
        ``save_every``. The run stops when two in a row fail, when the last save fails, or with
        several ranks (DeepSpeed's save is collective: a rank cannot skip it alone)."""
        try:
            self.save()
        except (OSError, RuntimeError) as e:
            self.failed_saves += 1
            msg = self._save_failed(f"checkpoint {ckpt_tags.tag_for(self.update)}", e)
            if final or self.world > 1 or self.failed_saves >= 2:
                raise TrainingAborted(msg + "; free space and resume from it") from e
            log.error("%s; training goes on, next save at update %d", msg, self.update + self.config.save_every)
            return False
        self.failed_saves = 0
        return True

    def _best_save(self, rank: ckpt_tags.BestRank) -> None:
        """Save a best-on-dev checkpoint (and its ``keep_best`` record). A failure stops the run
        cleanly, as a failed last save does: it resumes from ``latest`` and reaches this update's dev
        evaluation again, so the resumed run equals the uninterrupted one."""
        try:
            self.save("best", latest=False, rank=rank)
        except (OSError, RuntimeError) as e:
            raise TrainingAborted(self._save_failed(f"best checkpoint (dev {self.task.best_metric} "
                                                    f"{rank.value:.4g})", e) + "; free space and resume") from e

    def _resume(self) -> None:
        if ckpt_tags.latest_tag(self.run_dir) is None:
            return
        self.load_state_dict(ckpt.load(self.engine, self.run_dir))
        # a best saved after latest (a kill before the next periodic save) knows the better value
        best = ckpt_tags.best_tag(self.run_dir)
        saved = ckpt_tags.saved_state(self.run_dir, best) if best else None
        if saved and saved.get("best_update") is not None and \
                (self.state.best_update is None or saved["best_update"] > self.state.best_update):
            self.state.best, self.state.best_update = saved["best"], saved["best_update"]
        if self.is_rank0:
            log.info("resumed %s at update %d (epoch %d)", self.run_dir, self.update, self.epoch)

    # -- data ------------------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return self.batches.epoch  # the loader moves to the next epoch itself, resumable

    def _next_batch(self):
        """The next training batch (with ``data.prefetch``: already on the device)."""
        return next(self.batches)

    # -- one update ------------------------------------------------------------------------------
    def train_step(self) -> bool:
        """One optimizer update over ``accum`` micro-batches; False if it was skipped (non-finite).

        Two small collectives per update, none per micro-batch: the update's audio total (before
        the micro-batches, for their weights; with it, whether a rank's stream has no usable data
        left, so that all stop together) and, after them, the finiteness check and the time
        budget, which is also the one place the device is waited on; the figures stay on the
        device in ``self._window`` until ``log()`` reads them."""
        cfg = self.config
        t0 = time.perf_counter()
        no_data: NoUsableData | None = None
        try:
            batches = [self._next_batch() for _ in range(self.accum)]
        except NoUsableData as e:  # told to every rank below: the others would wait for this one forever
            no_data, batches = e, []
        data_s = time.perf_counter() - t0  # waiting for the loader (its workers run ahead of this)
        # host-side: a batch prefetched to the GPU keeps its lengths as host integers too
        local_s = sum(b.num_audio_s for b in batches)
        total_s, ranks_without_data = all_reduce([local_s, float(no_data is not None)], "sum", self.device)
        if ranks_without_data:
            raise no_data or NoUsableData(
                f"rank {self.rank}: stopping with the {int(ranks_without_data)} rank(s) that have no usable data "
                "(each prints why)")
        frozen = self.task.backbone_frozen(self.update)
        self.module.backbone_frozen = frozen
        lr = learning_rate(self.update, cfg.optim, cfg.schedule, cfg.max_updates)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        sums: dict[str, torch.Tensor | float] = {}
        finite = torch.ones((), device=self.device)
        skipped_before = self.engine.skipped_steps
        self.engine.train()
        for b in batches:
            res = self.task.step(self.engine, b)
            finite = finite * torch.isfinite(res.loss.detach())
            weight = b.num_audio_s / max(total_s, 1e-9)
            # DeepSpeed divides by gradient accumulation and averages over ranks: undo both so
            # the update is sum_b (audio_b / audio_total) * loss_b / sample_size_b
            self.engine.backward(res.loss * (weight * self.world * self.accum / res.sample_size))
            self.engine.step()
            for k, v in res.logs.items():
                sums[k] = sums.get(k, 0.0) + v * weight
        # one collective per update, the same answers on every rank: did a rank meet a non-finite
        # loss, and (rank 0's clock) is the time budget spent. The clock stops once the device has
        # run the update's kernels, the optimizer step's included (the collective waits for them anyway)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        dt = time.perf_counter() - t0
        out_of_time = self.is_rank0 and cfg.max_train_s is not None and self.state.train_time_s + dt >= cfg.max_train_s
        flags = torch.stack([1 - finite, torch.tensor(float(out_of_time), device=self.device)])
        not_finite, out_of_time = reduce_all_(flags.to(collective_device(self.device), torch.float64), "sum").tolist()
        if not_finite > 0:
            return self._skipped(skipped_before)
        self.out_of_time = out_of_time > 0
        self.state.bad_in_a_row = 0
        self.state.update += 1
        self.module.set_num_updates(self.update)
        self.state.train_time_s += dt
        flops = 0.0
        if self.peak:  # what ran: the blocks LayerDrop kept at the update just done; backward where gradients flowed
            kept = len(self.module.wav2vec2.encoder.layers_to_run(self.update - 1))
            flops = sum(self.task.update_flops(self.module.config, list(b.lengths_list), layers=kept,
                                               backbone_frozen=frozen) for b in batches)
        self._window.add(sums, audio_s=total_s, update_s=dt, data_s=data_s, flops=flops, lr=lr)
        return True

    def log(self) -> None:
        """Read the figures of the updates since the last call (their means; one all-reduce) and
        log them. Every rank calls it at the same updates."""
        w, self._window = self._window, _Window()
        if not w.updates:
            return
        keys, data = sorted(w.sums), self.loader.stats.as_dict()
        local = torch.stack([torch.as_tensor(w.sums[k], dtype=torch.float64, device=self.device) for k in keys]
                            + [torch.tensor(data.get(k, 0.0), dtype=torch.float64, device=self.device)
                               for k in DATA_COUNTS])
        totals = reduce_all_(local.to(collective_device(self.device)), "sum").tolist()
        figures = {f"train/{k}": v / w.updates for k, v in zip(keys, totals)}
        # damaged / filtered data met by the loaders: the total always, each reason once it occurs
        figures.update((k, v) for k, v in zip(DATA_COUNTS, totals[len(keys):]) if v or k == "data/num_corrupt")
        figures.update({"opt/lr": w.lr, "perf/update_s": w.update_s / w.updates,
                        "perf/audio_s_per_s": w.audio_s / w.update_s, "perf/data_wait": w.data_s / w.update_s})
        gn = self.engine.get_global_grad_norm()  # of the last update
        if gn is not None:
            figures["opt/grad_norm"] = float(gn)
        if self.precision == "fp16":
            scale = getattr(self.optimizer, "cur_scale", None) or getattr(self.optimizer, "loss_scale", None)
            if isinstance(scale, (int, float)):
                figures["opt/loss_scale"] = float(scale)
        if self.peak:
            figures["perf/mfu"] = w.flops / w.update_s / self.peak
        if self.mix:  # batches per corpus: the same on every rank (a pure function of the seed)
            figures.update(self.loader.source_figures())
        self.logger.log(self.update, figures)

    def _skipped(self, skipped_before: int) -> bool:
        self.state.bad_total += 1
        self.state.bad_in_a_row += 1
        if self.engine.skipped_steps == skipped_before:
            # DeepSpeed applied a non-finite update: parameters may now be NaN. Refuse to go on.
            raise TrainingAborted(
                f"update {self.update}: non-finite loss but DeepSpeed did not skip the step; enable "
                "gradient clipping (optim.clip_norm > 0) or bf16 check_grad_overflow in the DeepSpeed config"
            )
        if self.is_rank0:
            log.warning("update %d: non-finite loss on some rank; update skipped on every rank (%d in a row, %d total)",
                        self.update, self.state.bad_in_a_row, self.bad_total)
        self.logger.log(self.update, {"train/skipped_updates": self.bad_total})
        if self.state.bad_in_a_row >= self.config.max_bad_updates:
            self._periodic_save(final=True)
            raise TrainingAborted(
                f"stopped after {self.state.bad_in_a_row} non-finite updates in a row (train.max_bad_updates); "
                f"the parameters were not changed by them and are saved in {ckpt_tags.ckpt_dir(self.run_dir)} "
                f"(tag {ckpt_tags.tag_for(self.update)}): lower the learning rate and resume"
            )
        return False

    # -- evaluation ------------------------------------------------------------------------------
    def evaluate(self, index, max_batches: int | None = None) -> EvalResult:
        """The current model's metrics on a split (every utterance once, over all ranks)."""
        return self.evaluator.run(self.engine, index, max_batches)

    def _eval_dev(self) -> None:
        if self.dev_index is None:
            return
        metrics = self.evaluate(self.dev_index, self.config.eval_max_batches).metrics
        if not metrics:
            return
        self.logger.log(self.update, {f"dev/{k}": v for k, v in metrics.items()})
        value = metrics.get(self.task.best_metric)
        if value is None:
            return
        new_best = self.task.is_better(value, self.state.best)
        if new_best:
            self.state.best, self.state.best_update = value, self.update
        # keep_best > 1: a value among the N best so far is kept too (ds-w2v average --best N)
        rank = ckpt_tags.BestRank(float(value), self.task.higher_is_better, self.config.keep_best, new_best)
        if new_best or ckpt_tags.ranks_among_bests(self.run_dir, rank):
            self._best_save(rank)
            if self.is_rank0 and new_best:
                log.info("update %d: new best dev %s = %.4f", self.update, self.task.best_metric, value)

    def _probe(self) -> None:
        """The linear phone probe of the current model, logged at this update (``probing.py``)."""
        figures = self.probe.run(self.module)
        self.logger.log(self.update, figures)
        if self.is_rank0:
            log.info("update %d: linear phone probe %.3f (best layer %d; majority %.3f)", self.update,
                     figures["dev/probe_phone_acc"], figures["dev/probe_best_layer"], figures["dev/probe_majority_acc"])

    # -- the loop ----------------------------------------------------------------------------------
    def train(self) -> dict[str, Any]:
        cfg = self.config
        last_saved = self.update if ckpt_tags.latest_tag(self.run_dir) else None
        try:
            if self.probe and self.update == 0:
                self._probe()  # the curve starts at the initialisation
            while self.update < cfg.max_updates and not self.out_of_time:
                if not self.train_step():
                    continue
                self.logger.advance()
                if self.update % cfg.log_every == 0 or self.update == cfg.max_updates or self.out_of_time:
                    self.log()
                if self.update % cfg.eval_every == 0:
                    self._eval_dev()
                if self.probe and self.update % cfg.probe_every == 0:
                    self._probe()
                if self.update % cfg.save_every == 0 and self._periodic_save():
                    last_saved = self.update
            if last_saved != self.update:
                self._periodic_save(final=True)
            if self.update % cfg.eval_every != 0:
                self._eval_dev()
            if self.probe and self.update % cfg.probe_every != 0:
                self._probe()
            return self.finish()
        finally:
            self.logger.close()
            if self.lock is not None:
                self.lock.release()

    def finish(self) -> dict[str, Any]:
        """Score every test split once, with the best-on-dev checkpoint when there is one.

        ``results.json``: ``test`` holds the first test split's metrics (the headline figure),
        ``test_sets`` every test split's, by name."""
        s = self.state
        result: dict[str, Any] = {"task": self.config.task, "updates": s.update, "train_time_s": s.train_time_s,
                                  "stopped_by": "max_train_s" if self.out_of_time else "max_updates",
                                  "best_dev": s.best, "best_update": s.best_update,
                                  "skipped_updates": s.bad_total, "run_dir": str(self.run_dir),
                                  "world": self.world_figures(), **self.machine}
        # data-parallel replicas must end bit-equal (the latest checkpoint's weights): say so if not
        digests = replica_digests(self.module, self.zero_stage == 3)
        result["replica_digests"] = digests
        if len(set(digests)) > 1 and self.is_rank0:
            log.error("the ranks ended with different parameters (digests %s): the run is not data-parallel-"
                      "consistent; report it with the DeepSpeed config", digests)
        if self.test_indexes and self.task.scores_test:
            if s.best_update is not None:
                ckpt.load(self.engine, self.run_dir, "best")
            result["test_sets"] = {}
            for i, (split, index) in enumerate(self.test_indexes.items()):
                out = self.evaluate(index)
                result["test_sets"][split] = out.metrics
                if i == 0:
                    result["test"] = out.metrics
                    result.update(self.task.test_results(out.sums))
                # one test set: test/wer; several: test/test-clean/wer, test/test-other/wer
                prefix = "test" if len(self.test_indexes) == 1 else f"test/{split}"
                self.logger.log(self.update, {f"{prefix}/{k}": v for k, v in out.metrics.items()})
        if self.is_rank0:
            (self.run_dir / "results.json").write_text(json.dumps(result, indent=1))
        return result


class _Window:
    """The figures of the updates since the last log line: per-micro-batch figures summed on the
    device (weighted by audio share), the rest on the host."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor | float] = {}
        self.updates = 0
        self.audio_s = self.update_s = self.data_s = self.flops = 0.0
        self.lr = 0.0

    def add(self, sums: dict[str, torch.Tensor | float], *, audio_s: float, update_s: float, data_s: float,
            flops: float, lr: float) -> None:
        for k, v in sums.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.updates += 1
        self.audio_s += audio_s
        self.update_s += update_s
        self.data_s += data_s
        self.flops += flops
        self.lr = lr  # the last update's
