"""Run monitoring from rank 0: TensorBoard (namespaced tags), one JSON line per logged update in
``RUN_DIR/metrics.jsonl``, a tqdm bar showing the task's ``progress_keys``, and the task's
``health_warnings`` (pretraining: a loss at chance, a collapsing codebook) as log warnings.

Tags: ``train/*`` (loss and its parts, perplexities, temperature, accuracy), ``opt/*`` (lr,
grad_norm, loss_scale), ``perf/*`` (audio_s_per_s, update_s, mfu), ``dev/*`` and ``test/*``.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Callable

log = logging.getLogger("ds_w2v.train")


def progress_line(update: int, total: int, f: dict[str, float]) -> str:
    """``update 120/500 | loss 4.123 (contrastive 4.01, diversity 0.08) | lr 1.00e-03 | 312 audio-s/s |
    0.41 s/update | ETA 0:02:34``: the figures of one log row, for a log file."""
    parts = [f"update {update}/{total}", f"loss {f['train/loss']:.4g}"]
    inner = [f"{k.split('/', 1)[1]} {v:.3g}" for k, v in f.items()  # whatever the task logs beside its loss
             if k.startswith("train/") and k != "train/loss"]
    if inner:
        parts[-1] += f" ({', '.join(inner)})"
    if "opt/lr" in f:
        parts.append(f"lr {f['opt/lr']:.2e}")
    if "perf/audio_s_per_s" in f:
        parts.append(f"{f['perf/audio_s_per_s']:,.0f} audio-s/s")
    if "perf/update_s" in f:
        parts.append(f"{f['perf/update_s']:.2f} s/update")
        remaining = max(0, total - update) * f["perf/update_s"]
        parts.append(f"ETA {int(remaining // 3600)}:{int(remaining % 3600 // 60):02d}:{int(remaining % 60):02d}")
    return " | ".join(parts)


class MetricsLogger:
    def __init__(self, run_dir: Path, enabled: bool, total_updates: int, start_update: int = 0,
                 progress_keys: tuple[str, ...] = ("train/loss", "perf/audio_s_per_s"),
                 health: Callable[[int, dict[str, float]], list[tuple[str, str]]] | None = None):
        """``progress_keys``: the figures on the bar; ``health(update, figures)``: (key, warning)
        pairs, each key warned at most once per 1,000 updates (the task's ``health_warnings``)."""
        self.enabled = enabled
        self.total_updates = total_updates
        self.writer = None
        self.bar = None
        self.jsonl = None
        self.progress_keys = tuple(progress_keys)
        self.health = health
        self._warned: dict[str, int] = {}
        if not enabled:
            return
        run_dir.mkdir(parents=True, exist_ok=True)
        self.jsonl = open(run_dir / "metrics.jsonl", "a", encoding="utf-8")
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"), purge_step=start_update or None)
        except ImportError:  # tensorboard is a dependency, but never fail a run over monitoring
            log.warning("tensorboard is not installed: no TensorBoard logs")
        from tqdm import tqdm

        self.bar = tqdm(total=total_updates, initial=start_update, desc="updates", dynamic_ncols=True,
                        disable=None)  # disable=None: no bar when stdout is not a terminal (CI, logs)

    def header(self, update: int, facts: dict[str, object]) -> None:
        """The row a run (or each resume) starts with: what it runs on (machine, precision, threads
        and why), so that every figure after it names its hardware. It has no ``train/`` keys."""
        if not self.enabled:
            return
        self.jsonl.write(json.dumps({"update": update, "time": round(time.time(), 3), "event": "start", **facts}) + "\n")
        self.jsonl.flush()

    def log(self, update: int, figures: dict[str, float]) -> None:
        """``figures``: {"train/loss": ..., "perf/audio_s_per_s": ...}; NaN-safe."""
        if not self.enabled:
            return
        clean = {k: float(v) for k, v in figures.items() if v is not None}
        if self.writer is not None:
            for k, v in clean.items():
                self.writer.add_scalar(k, v, update)
        self.jsonl.write(json.dumps({"update": update, "time": round(time.time(), 3), **clean}) + "\n")
        self.jsonl.flush()
        if self.bar is not None and not self.bar.disable:
            post = {k.split("/")[-1]: f"{v:.3g}" for k, v in clean.items()
                    if k in self.progress_keys}
            self.bar.set_postfix(post, refresh=False)
        elif "train/loss" in clean:  # no bar (output to a file, nohup, SLURM): a plain line, as fairseq prints
            log.info(progress_line(update, self.total_updates, clean))
        self._check(update, clean)

    def advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def _warn_once_per(self, key: str, update: int, every: int, msg: str) -> None:
        last = self._warned.get(key)
        if last is None or update - last >= every:
            self._warned[key] = update
            log.warning(msg)

    def _check(self, update: int, f: dict[str, float]) -> None:
        for key, message in (self.health(update, f) if self.health else []):
            self._warn_once_per(key, update, 1000, message)

    def text(self, tag: str, text: str, update: int) -> None:
        if self.enabled and self.writer is not None:
            self.writer.add_text(tag, text, update)

    def close(self) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()
        self.jsonl.close()
