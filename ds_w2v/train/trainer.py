"""One trainer for three tasks, on the DeepSpeed engine.

``Trainer(config).train()``: build the task's model, wrap it with ``deepspeed.initialize``
(ZeRO stage, precision and optimizer from the DeepSpeed JSON, hyper-parameters from the recipe),
stream duration-filled batches, and per update: accumulate ``gradient_accumulation`` micro-
batches weighted by their share of the update's audio, step the learning rate and the Gumbel
temperature, log, evaluate on ``dev``, keep checkpoints. The task object (``tasks.py``) is the
only thing that differs between pretraining, CTC and classification.

Launch lines (the same for every task; see launch/*.sh):

    ds-w2v pretrain --recipe pretrain_tiny data.shards=demo_data/shards/timit      # 1 process
    deepspeed --num_gpus 8 --module ds_w2v.train pretrain --recipe pretrain_original \
        data.shards=/data/ls960 --deepspeed_config ds_configs/zero2.json            # 8 GPUs
    deepspeed --hostfile launch/hostfile.example --module ds_w2v.train pretrain ...  # many nodes
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

from ..data.index import read_split
from ..data.loader import StreamingLoader
from ..data.samples import CORRUPTION_REASONS, TOO_LONG, TOO_SHORT
from ..data.stream import StreamConfig
from . import checkpoint as ckpt
from .config import TrainConfig, config_to_dict, resolve_batch
from .deepspeed_config import build_ds_config, resolved_precision
from .distributed import init_distributed, world_from_env
from .engine import build_engine
from .flops import peak_flops, update_flops
from .metrics import MetricsLogger
from .schedule import learning_rate
from .tasks import TASK_CLASSES, load_init

log = logging.getLogger("ds_w2v.train")


class TrainingAborted(RuntimeError):
    """The run stopped early (non-finite updates in a row, checkpoints that cannot be written);
    the last checkpoint (``checkpoints/latest``) is usable."""


# the loader's skip counters, logged summed over ranks (counted since the process started)
DATA_COUNTS = ("data/num_corrupt", *(f"data/skipped/{r}" for r in (*CORRUPTION_REASONS, TOO_SHORT, TOO_LONG)))


class Trainer:
    def __init__(self, config: TrainConfig, local_rank: int | None = None):
        self.config = config
        rank, world, env_local_rank = world_from_env()
        self.rank, self.world = rank, world
        local_rank = env_local_rank if local_rank is None else local_rank
        use_cuda = torch.cuda.is_available()
        self.device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")

        # -- everything that can be refused, before any process group starts --------------------
        self.train_index = read_split(config.data.shards, config.data.train_split)
        self.dev_index = read_split(config.data.shards, config.data.dev_split) if config.data.dev_split else None
        self.test_index = self._optional_split(config.data.test_split)
        self.accum = resolve_batch(config, world)
        self.ds_config = build_ds_config(config, world, self.device.type)
        self.precision = resolved_precision(config, self.ds_config)
        self.task = TASK_CLASSES[config.task](config, self.train_index)

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
        self.run_dir = Path(config.run_dir)
        if self.is_rank0:
            ckpt.write_model_meta(self.run_dir, model)
            (self.run_dir / "config.yaml").write_text(__import__("yaml").safe_dump(config_to_dict(config), sort_keys=False))
        # -- process group and engine ----------------------------------------------------------
        init_distributed(self.device, local_rank)
        self.engine, self.optimizer = build_engine(model, self.ds_config, config.optim, self.device)
        self.module = self.engine.module
        self.zero_stage = self.engine.zero_optimization_stage()

        # -- data --------------------------------------------------------------------------------
        d = config.data
        self.stream_config = StreamConfig(
            kind=self.task.stream_kind, batch_s=d.batch_s, fill=d.fill, max_sample_size=d.max_sample_size,
            min_duration_s=d.min_duration_s, max_duration_s=d.max_duration_s, shuffle_buffer=d.shuffle_buffer,
            seed=config.seed, num_workers=d.num_workers, pin_memory=use_cuda,
        )
        self.loader = StreamingLoader.from_split(self.train_index, self.stream_config, rank=rank, world_size=world)
        self._iter = None

        # -- state -------------------------------------------------------------------------------
        self.update = 0
        self.bad_in_a_row = 0
        self.bad_total = 0
        self.failed_saves = 0  # periodic saves that failed in a row (a full disk)
        self.best: float | None = None
        self.best_update: int | None = None
        self.train_time_s = 0.0
        self._resume()
        pcfg = self.module.config
        self.logger = MetricsLogger(self.run_dir, self.is_rank0, config.max_updates, self.update,
                                    pcfg.num_negatives, pcfg.latent_groups * pcfg.latent_vars)
        self.peak = peak_flops(torch.cuda.get_device_name(self.device) if use_cuda else "cpu",
                               self.precision)

    # ------------------------------------------------------------------------------------------
    @property
    def is_rank0(self) -> bool:
        return self.rank == 0

    def _optional_split(self, split: str | None):
        if not split:
            return None
        try:
            return read_split(self.config.data.shards, split)
        except ValueError:
            if split == "test":
                return None  # a corpus without a test split (pretraining audio) is fine
            raise

    def _seed_everything(self, seed: int) -> None:
        import random

        import numpy as np

        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)

    def _all_reduce(self, values: list[float], op: str = "sum") -> list[float]:
        if self.world == 1:
            return values
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.float64, device=self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(t, op={"sum": dist.ReduceOp.SUM, "min": dist.ReduceOp.MIN, "max": dist.ReduceOp.MAX}[op])
        return t.tolist()

    # -- checkpoints ---------------------------------------------------------------------------
    def client_state(self) -> dict[str, Any]:
        return {"update": self.update, "epoch": self.epoch, "data": self.loader.state_dict(),
                "rng": ckpt.rng_state(), "best": self.best, "best_update": self.best_update,
                "bad_total": self.bad_total, "bad_in_a_row": self.bad_in_a_row, "train_time_s": self.train_time_s,
                "task": self.config.task}

    def save(self, tag: str | None = None, latest: bool = True) -> None:
        ckpt.save(self.engine, self.run_dir, tag or ckpt.tag_for(self.update), self.client_state(),
                  self.config.keep_last, self.is_rank0, save_latest=latest)

    def _periodic_save(self, final: bool = False) -> bool:
        """Save at this update. A save that fails (full disk: OSError, or torch.save's RuntimeError)
        leaves ``latest`` on the previous checkpoint; one process logs it and trains on to the next
        ``save_every``. The run stops when two in a row fail, when the last save fails, or with
        several ranks (DeepSpeed's save is collective: a rank cannot skip it alone)."""
        try:
            self.save()
        except (OSError, RuntimeError) as e:
            self.failed_saves += 1
            msg = (f"update {self.update}: checkpoint {ckpt.tag_for(self.update)} not written "
                   f"({type(e).__name__}: {e}); checkpoints/latest still names {ckpt.latest_tag(self.run_dir)}")
            if final or self.world > 1 or self.failed_saves >= 2:
                raise TrainingAborted(msg + "; free space and resume from it") from e
            log.error("%s; training goes on, next save at update %d", msg, self.update + self.config.save_every)
            return False
        self.failed_saves = 0
        return True

    def _resume(self) -> None:
        if ckpt.latest_tag(self.run_dir) is None:
            return
        client = ckpt.load(self.engine, self.run_dir)
        if client.get("task") not in (None, self.config.task):
            raise ValueError(f"run_dir: {self.run_dir} holds a {client.get('task')} run, not {self.config.task}")
        self.update = int(client["update"])
        self.loader.load_state_dict(client["data"])
        self.best, self.best_update = client.get("best"), client.get("best_update")
        self.bad_total, self.bad_in_a_row = client.get("bad_total", 0), client.get("bad_in_a_row", 0)
        self.train_time_s = client.get("train_time_s", 0.0)
        self.module.set_num_updates(self.update)
        ckpt.set_rng_state(client["rng"])
        if self.is_rank0:
            log.info("resumed %s at update %d (epoch %d)", self.run_dir, self.update, self.epoch)

    # -- data ------------------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return self.loader.epoch  # the loader moves to the next epoch itself, resumable

    def _next_batch(self):
        while True:
            if self._iter is None:
                self._iter = iter(self.loader)
            try:
                return next(self._iter)
            except StopIteration:
                self._iter = None

    # -- one update ------------------------------------------------------------------------------
    def train_step(self) -> dict[str, float] | None:
        """One optimizer update over ``accum`` micro-batches; None if it was skipped (non-finite)."""
        cfg = self.config
        t0 = time.perf_counter()
        batches = [self._next_batch() for _ in range(self.accum)]
        local_s = sum(b.num_audio_s for b in batches)
        total_s = self._all_reduce([local_s])[0]
        frozen = cfg.task != "pretrain" and self.update < cfg.freeze_transformer_updates
        self.module.backbone_frozen = frozen
        lr = learning_rate(self.update, cfg.optim, cfg.schedule, cfg.max_updates)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        sums: dict[str, float] = defaultdict(float)
        finite_all = True
        skipped_before = self.engine.skipped_steps
        self.engine.train()
        for b in batches:
            res = self.task.step(self.engine, b)
            finite = bool(torch.isfinite(res.loss))
            finite = self._all_reduce([1.0 if finite else 0.0], "min")[0] > 0
            finite_all &= finite
            weight = b.num_audio_s / max(total_s, 1e-9)
            # DeepSpeed divides by gradient accumulation and averages over ranks: undo both so
            # the update is sum_b (audio_b / audio_total) * loss_b / sample_size_b
            self.engine.backward(res.loss * (weight * self.world * self.accum / res.sample_size))
            self.engine.step()
            for k, v in res.logs.items():
                sums[k] += v * weight
        if not finite_all:
            return self._skipped(skipped_before)
        self.bad_in_a_row = 0
        self.update += 1
        self.module.set_num_updates(self.update)
        dt = time.perf_counter() - t0
        self.train_time_s += dt
        keys, data = sorted(sums), self.loader.stats.as_dict()
        totals = self._all_reduce([sums[k] for k in keys] + [data.get(k, 0.0) for k in DATA_COUNTS])
        figures = {f"train/{k}": v for k, v in zip(keys, totals)}
        # damaged / filtered data met by the loaders: the total always, each reason once it occurs
        figures.update((k, v) for k, v in zip(DATA_COUNTS, totals[len(keys):]) if v or k == "data/num_corrupt")
        figures.update({"opt/lr": lr, "perf/update_s": dt, "perf/audio_s_per_s": total_s / dt})
        gn = self.engine.get_global_grad_norm()
        if gn is not None:
            figures["opt/grad_norm"] = float(gn)
        if self.precision == "fp16":
            scale = getattr(self.optimizer, "cur_scale", None) or getattr(self.optimizer, "loss_scale", None)
            if isinstance(scale, (int, float)):
                figures["opt/loss_scale"] = float(scale)
        if self.peak:
            flops = sum(update_flops(self.module.config, b.lengths.tolist(), cfg.task == "pretrain") for b in batches)
            figures["perf/mfu"] = flops / dt / self.peak
        return figures

    def _skipped(self, skipped_before: int) -> None:
        self.bad_total += 1
        self.bad_in_a_row += 1
        if self.engine.skipped_steps == skipped_before:
            # DeepSpeed applied a non-finite update: parameters may now be NaN. Refuse to go on.
            raise TrainingAborted(
                f"update {self.update}: non-finite loss but DeepSpeed did not skip the step; enable "
                "gradient clipping (optim.clip_norm > 0) or bf16 check_grad_overflow in the DeepSpeed config"
            )
        if self.is_rank0:
            log.warning("update %d: non-finite loss on some rank; update skipped on every rank (%d in a row, %d total)",
                        self.update, self.bad_in_a_row, self.bad_total)
        self.logger.log(self.update, {"train/skipped_updates": self.bad_total})
        if self.bad_in_a_row >= self.config.max_bad_updates:
            self.save()
            raise TrainingAborted(
                f"stopped after {self.bad_in_a_row} non-finite updates in a row (train.max_bad_updates); "
                f"the parameters were not changed by them and are saved in {ckpt.ckpt_dir(self.run_dir)} "
                f"(tag {ckpt.tag_for(self.update)}): lower the learning rate and resume"
            )
        return None

    # -- evaluation ------------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, index, max_batches: int | None = None) -> dict[str, float]:
        """Metrics of the current model on a split (every utterance once, over all ranks)."""
        rng = ckpt.rng_state()  # evaluation must not perturb the training RNG stream
        torch.manual_seed(self.config.seed + 12345)
        scfg = StreamConfig(kind=self.task.stream_kind, batch_s=self.config.data.batch_s, loop=False,
                            shard_shuffle=False, shuffle_buffer=0, seed=self.config.seed,
                            max_sample_size=self.config.data.max_sample_size)
        loader = StreamingLoader.from_split(index, scfg, rank=self.rank, world_size=self.world)
        self.engine.eval()
        sums: dict[str, float] = defaultdict(float)
        count = 0
        for batch in loader:
            if max_batches is not None and count >= max_batches:
                break
            for k, v in self.task.eval_sums(self.engine, batch).items():
                sums[k] += v
            count += 1
        if self.zero_stage == 3:  # every rank must run as many forwards (parameter gathers are collective)
            most = int(self._all_reduce([float(count)], "max")[0])
            dtype = next(self.module.parameters()).dtype
            for _ in range(most - count):
                self.engine(torch.zeros(1, 16000, device=self.device, dtype=dtype))
        keys = self.task.eval_keys()  # the same list on every rank, even one that saw no batch
        total = dict(zip(keys, self._all_reduce([sums.get(k, 0.0) for k in keys])))
        self.engine.train()
        ckpt.set_rng_state(rng)
        self.last_eval_sums = total
        return self.task.eval_metrics(total) if total.get("n", 0) > 0 else {}

    def _eval_dev(self) -> None:
        if self.dev_index is None:
            return
        metrics = self.evaluate(self.dev_index, self.config.eval_max_batches)
        if not metrics:
            return
        self.logger.log(self.update, {f"dev/{k}": v for k, v in metrics.items()})
        value = metrics.get(self.task.best_metric)
        if value is not None and self.task.is_better(value, self.best):
            self.best, self.best_update = value, self.update
            self.save("best", latest=False)
            if self.is_rank0:
                log.info("update %d: new best dev %s = %.4f", self.update, self.task.best_metric, value)

    # -- the loop ----------------------------------------------------------------------------------
    def train(self) -> dict[str, Any]:
        cfg = self.config
        last_saved = self.update if ckpt.latest_tag(self.run_dir) else None
        try:
            while self.update < cfg.max_updates:
                figures = self.train_step()
                if figures is None:
                    continue
                self.logger.advance()
                if self.update % cfg.log_every == 0 or self.update == cfg.max_updates:
                    self.logger.log(self.update, figures)
                if self.update % cfg.eval_every == 0:
                    self._eval_dev()
                if self.update % cfg.save_every == 0 and self._periodic_save():
                    last_saved = self.update
            if last_saved != self.update:
                self._periodic_save(final=True)
            if self.update % cfg.eval_every != 0:
                self._eval_dev()
            return self.finish()
        finally:
            self.logger.close()

    def finish(self) -> dict[str, Any]:
        """Evaluate ``test`` once, with the best-on-dev checkpoint when there is one."""
        result: dict[str, Any] = {"task": self.config.task, "updates": self.update, "train_time_s": self.train_time_s,
                                  "best_dev": self.best, "best_update": self.best_update,
                                  "skipped_updates": self.bad_total, "run_dir": str(self.run_dir)}
        if self.test_index is not None and self.config.task != "pretrain":
            if self.best_update is not None:
                ckpt.load(self.engine, self.run_dir, "best")
            test = self.evaluate(self.test_index)
            result["test"] = test
            if hasattr(self.task, "confusion"):
                result["test_confusion"] = {"labels": self.task.labels, "matrix": self.task.confusion(self.last_eval_sums)}
            self.logger.log(self.update, {f"test/{k}": v for k, v in test.items()})
        if self.is_rank0:
            import json

            (self.run_dir / "results.json").write_text(json.dumps(result, indent=1))
        return result
