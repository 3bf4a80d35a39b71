"""The three tasks, as small objects the one trainer is parameterised by.

A task says how to build its model from the data's index, what one batch's loss is, which
figures to log, how to evaluate on a split and what "best" means. Nothing else differs between
pretraining, CTC fine-tuning and classification fine-tuning.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from ..data.batching import Batch
from ..models.wav2vec2 import build_model, load_model
from ..models.wav2vec2.model import Wav2Vec2Task
from ..models.wav2vec2.presets import TASK_DEFAULTS
from ..text import CharVocab
from .config import BEST_METRICS, TrainConfig


@dataclass
class StepResult:
    loss: torch.Tensor  # summed over the batch (fp32 scalar)
    sample_size: int  # what the sum is over: masked frames, or utterances
    logs: dict[str, torch.Tensor | float] = field(default_factory=dict)
    """Per-batch figures (means), as detached 0-d tensors on the device: the trainer sums them
    there and reads them every ``log_every`` updates, so a step never waits on the device."""


def _from_init(init: Wav2Vec2Task, task: str, overrides: dict, **head) -> Wav2Vec2Task:
    """A ``task`` model starting from ``init``. The same task continues with ``init``'s weights
    (head included); another task takes ``init``'s backbone and a fresh head, with the task's
    fine-tuning defaults. Either way the architecture is ``init``'s, and the recipe's overrides
    may change only what does not change shapes (dropouts, masking, LayerDrop, grad mult)."""
    if init.task == task:
        model = build_model(init.config.replace(**overrides), task, **head)
        model.load_state_dict(init.state_dict())
        return model
    model = build_model(init.config.replace(**{**TASK_DEFAULTS[task], **overrides}), task, **head)
    backbone = {k: v for k, v in init.state_dict().items() if k.startswith("wav2vec2.")}
    missing, unexpected = model.load_state_dict(backbone, strict=False)
    if unexpected or any(k.startswith("wav2vec2.") for k in missing):
        raise ValueError(f"model.init: backbone does not fit ({len(unexpected)} unexpected, {len(missing)} missing keys)")
    return model


class Task:
    name = ""
    stream_kind = "finetune"
    best_metric = ""
    """The task's default dev metric for the best checkpoint (``config.best_metric`` overrides it)."""

    def __init__(self, config: TrainConfig, index: Any):
        self.config = config
        self.index = index
        # config.best_metric is validated against BEST_METRICS by TrainConfig.validate
        self.best_metric = config.best_metric or self.best_metric
        self.higher_is_better = BEST_METRICS[self.name][self.best_metric]

    def build_model(self, init: Wav2Vec2Task | None) -> Wav2Vec2Task:
        raise NotImplementedError

    def step(self, model, batch: Batch) -> StepResult:
        raise NotImplementedError

    # evaluation: sums are accumulated per rank, all-reduced, then turned into metrics
    def eval_sums(self, model, batch: Batch) -> dict[str, float]:
        raise NotImplementedError

    def eval_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        raise NotImplementedError

    def eval_keys(self) -> list[str]:
        """Every key ``eval_sums`` may produce, in a fixed order (for the all-reduce)."""
        raise NotImplementedError

    def is_better(self, value: float, best: float | None) -> bool:
        if best is None or math.isnan(best):
            return not math.isnan(value)
        return value > best if self.higher_is_better else value < best


def _f(t: torch.Tensor) -> float:
    return float(t.detach())


def _d(t: torch.Tensor) -> torch.Tensor:
    """A figure to log, kept on the device (reading it would wait for the device)."""
    return t.detach().float()


def _cast(batch: Batch, model) -> tuple[torch.Tensor, torch.Tensor]:
    p = next(model.parameters())
    return batch.audio.to(device=p.device, dtype=p.dtype), batch.lengths.to(p.device)


class PretrainTask(Task):
    name = "pretrain"
    stream_kind = "pretrain"
    best_metric = "loss"

    def build_model(self, init):
        overrides = dict(self.config.model.overrides)
        if init is not None:
            return _from_init(init, "pretrain", overrides)
        return build_model(self.config.model.preset, "pretrain", **overrides)

    def step(self, model, batch):
        audio, lengths = _cast(batch, model)
        out = model(audio, lengths)
        n = out.sample_size
        logs = {
            "loss": _d(out.loss) / n,
            "contrastive": _d(out.contrastive_loss) / n,
            "diversity": _d(out.diversity_loss) / n,
            "feature_pen": _d(out.feature_penalty) / n,
            "code_ppl": _d(out.code_perplexity),
            "prob_ppl": _d(out.prob_perplexity),
            "temp": float(out.temperature),  # a Python float: the schedule, not a device value
            "acc": _d(out.accuracy),
        }
        return StepResult(out.loss, n, logs)

    def eval_sums(self, model, batch):
        res = self.step(model, batch)
        n = res.sample_size
        return {"loss": float(res.logs["loss"]) * n, "contrastive": float(res.logs["contrastive"]) * n,
                "acc": float(res.logs["acc"]) * n, "n": n}

    def eval_keys(self):
        return ["acc", "contrastive", "loss", "n"]

    def eval_metrics(self, sums):
        n = max(sums.get("n", 0), 1)
        return {"loss": sums["loss"] / n, "contrastive": sums["contrastive"] / n, "acc": sums["acc"] / n}


class CTCTask(Task):
    name = "ctc"
    best_metric = "wer"

    def __init__(self, config, index):
        super().__init__(config, index)
        if not index.vocab:
            raise ValueError(f"data.shards: {config.data.shards} has no vocabulary (no transcripts): cannot train CTC")
        self.vocab = CharVocab.from_dict(index.vocab)

    def build_model(self, init):
        overrides = dict(self.config.model.overrides)
        if init is None:
            return build_model(self.config.model.preset, "ctc", vocab=self.vocab, **overrides)
        if init.task == "ctc" and init.vocab != self.vocab:
            raise ValueError(
                f"model.init: the checkpoint's vocabulary ({len(init.vocab)} symbols) differs from the data's "
                f"({len(self.vocab)} symbols in {self.config.data.shards}/vocab.json)"
            )
        return _from_init(init, "ctc", overrides, vocab=self.vocab)

    def targets(self, batch: Batch, device) -> torch.Tensor:
        ids = [self.vocab.encode(t or "", normalized=True) for t in batch.texts]
        width = max(1, max(len(x) for x in ids))
        out = torch.full((len(ids), width), -100, dtype=torch.long)
        for i, x in enumerate(ids):
            out[i, : len(x)] = torch.tensor(x, dtype=torch.long)
        return out.to(device)

    def step(self, model, batch):
        audio, lengths = _cast(batch, model)
        out = model(audio, lengths, targets=self.targets(batch, audio.device))
        return StepResult(out.loss, out.sample_size, {"loss": _d(out.loss) / out.sample_size})

    def eval_sums(self, model, batch):
        import jiwer

        audio, lengths = _cast(batch, model)
        out = model(audio, lengths, targets=self.targets(batch, audio.device))
        module = getattr(model, "module", model)
        hyps = module.decode(out.logits, out.frame_lengths)
        refs = [t or "" for t in batch.texts]
        sums = {"loss": _f(out.loss), "n": len(refs), "word_err": 0.0, "words": 0.0, "char_err": 0.0, "chars": 0.0}
        for ref, hyp in zip(refs, hyps):
            if not ref:
                continue
            w = jiwer.process_words(ref, hyp)
            c = jiwer.process_characters(ref, hyp)
            sums["word_err"] += w.substitutions + w.deletions + w.insertions
            sums["words"] += w.substitutions + w.deletions + w.hits
            sums["char_err"] += c.substitutions + c.deletions + c.insertions
            sums["chars"] += c.substitutions + c.deletions + c.hits
        return sums

    def eval_keys(self):
        return ["char_err", "chars", "loss", "n", "word_err", "words"]

    def eval_metrics(self, sums):
        return {"loss": sums["loss"] / max(sums["n"], 1), "wer": sums["word_err"] / max(sums["words"], 1),
                "cer": sums["char_err"] / max(sums["chars"], 1)}


class ClsTask(Task):
    name = "cls"
    best_metric = "acc"

    def __init__(self, config, index):
        super().__init__(config, index)
        if not index.labels:
            raise ValueError(f"data.shards: {config.data.shards} has no label set: cannot train classification")
        self.labels = list(index.labels)
        self.label_ids = {lab: i for i, lab in enumerate(self.labels)}

    def build_model(self, init):
        overrides = dict(self.config.model.overrides)
        if init is None:
            return build_model(self.config.model.preset, "cls", labels=self.labels, **overrides)
        if init.task == "cls" and init.labels != self.labels:
            raise ValueError(f"model.init: the checkpoint's labels {init.labels} differ from the data's {self.labels}")
        return _from_init(init, "cls", overrides, labels=self.labels)

    def label_tensor(self, batch: Batch, device) -> torch.Tensor:
        try:
            return torch.tensor([self.label_ids[lab] for lab in batch.labels], dtype=torch.long, device=device)
        except KeyError as e:
            raise ValueError(f"label {e.args[0]!r} is not in the data's label set {self.labels}") from None

    def step(self, model, batch):
        audio, lengths = _cast(batch, model)
        labels = self.label_tensor(batch, audio.device)
        out = model(audio, lengths, labels=labels)
        acc = (out.logits.detach().argmax(-1) == labels).float().mean()
        return StepResult(out.loss, out.sample_size, {"loss": _d(out.loss) / out.sample_size, "acc": acc})

    def eval_sums(self, model, batch):
        audio, lengths = _cast(batch, model)
        labels = self.label_tensor(batch, audio.device)
        out = model(audio, lengths, labels=labels)
        pred = out.logits.argmax(-1)
        k = len(self.labels)
        sums = {"loss": _f(out.loss), "n": len(labels)}
        for t, p in zip(labels.tolist(), pred.tolist()):
            sums[f"cm_{t}_{p}"] = sums.get(f"cm_{t}_{p}", 0) + 1
        for i in range(k):
            for j in range(k):
                sums.setdefault(f"cm_{i}_{j}", 0)
        return sums

    def eval_keys(self):
        k = len(self.labels)
        return ["loss", "n"] + [f"cm_{i}_{j}" for i in range(k) for j in range(k)]

    def confusion(self, sums) -> list[list[int]]:
        k = len(self.labels)
        return [[int(sums.get(f"cm_{i}_{j}", 0)) for j in range(k)] for i in range(k)]

    def eval_metrics(self, sums):
        cm = self.confusion(sums)
        k = len(cm)
        total = sum(map(sum, cm))
        correct = sum(cm[i][i] for i in range(k))
        f1s = []
        for i in range(k):
            tp = cm[i][i]
            fp = sum(cm[j][i] for j in range(k)) - tp
            fn = sum(cm[i]) - tp
            f1s.append(2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 0.0)
        return {"loss": sums["loss"] / max(sums["n"], 1), "acc": correct / max(total, 1), "f1": sum(f1s) / k}


TASK_CLASSES = {"pretrain": PretrainTask, "ctc": CTCTask, "cls": ClsTask}


def load_init(spec: str) -> Wav2Vec2Task:
    """``model.init``: a model file, an HF folder, or a run directory (best, else latest)."""
    from pathlib import Path

    from .checkpoint import is_run_dir, model_from_run

    if is_run_dir(Path(spec)):
        return model_from_run(Path(spec))
    return load_model(spec)
