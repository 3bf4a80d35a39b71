"""Utterance classification fine-tuning (speech emotion recognition): the corpus's label set is
the head's; dev accuracy (or macro F1) chooses the best checkpoint, and the test split's
confusion matrix goes into ``results.json``."""
from __future__ import annotations

import torch

from ...data.batching import FINETUNE, Batch
from .base import StepResult, Task, device_figure, host_float, model_inputs


class ClsTask(Task):
    name = "cls"
    model_task = "cls"
    stream_kind = FINETUNE
    best_metrics = {"acc": True, "f1": True, "loss": False}
    best_metric = "acc"
    command = "finetune-cls"
    command_help = "fine-tune with a classification head"
    inference_command = "classify"
    reads_targets = ("label set",)  # utterance labels: a mix and dev must share the label set

    def __init__(self, config, index):
        super().__init__(config, index)
        if not index.labels:
            raise ValueError(f"data.shards: {config.data.shards} has no label set: cannot train classification")
        self.labels = list(index.labels)
        self.label_ids = {lab: i for i, lab in enumerate(self.labels)}

    def head_state(self):
        return {"labels": self.labels}

    def check_model(self, model, name="the checkpoint"):
        if list(model.labels) != self.labels:
            raise ValueError(f"model.init: {name}'s labels {list(model.labels)} differ from the data's {self.labels}")

    def label_tensor(self, batch: Batch, device) -> torch.Tensor:
        try:
            return torch.tensor([self.label_ids[lab] for lab in batch.labels], dtype=torch.long, device=device)
        except KeyError as e:
            raise ValueError(f"label {e.args[0]!r} is not in the data's label set {self.labels}") from None

    def step(self, model, batch):
        audio, lengths = model_inputs(batch, model)
        labels = self.label_tensor(batch, audio.device)
        out = model(audio, lengths, labels=labels)
        acc = (out.logits.detach().argmax(-1) == labels).float().mean()
        return StepResult(out.loss, out.sample_size, {"loss": device_figure(out.loss) / out.sample_size, "acc": acc})

    def eval_sums(self, model, batch):
        audio, lengths = model_inputs(batch, model)
        labels = self.label_tensor(batch, audio.device)
        out = model(audio, lengths, labels=labels)
        pred = out.logits.argmax(-1)
        k = len(self.labels)
        sums = {"loss": host_float(out.loss), "n": len(labels)}
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

    def test_results(self, sums):
        return {"test_confusion": {"labels": self.labels, "matrix": self.confusion(sums)}}

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
