"""Self-supervised pretraining (paper §3): the contrastive loss over masked frames, plus the
codebook diversity and feature penalties; dev loss chooses the best checkpoint."""
from __future__ import annotations

from ...data.batching import PRETRAIN
from .base import StepResult, Task, device_figure, model_inputs


class PretrainTask(Task):
    name = "pretrain"
    model_task = "pretrain"
    stream_kind = PRETRAIN
    best_metrics = {"loss": False, "contrastive": False, "acc": True}
    best_metric = "loss"
    scores_test = False  # the figures of a pretraining run are its dev losses
    pretrain_head = True  # MFU counts its projections, quantizer and similarities

    def backbone_frozen(self, update):
        return False  # freeze_transformer_updates is a fine-tuning key

    def step(self, model, batch):
        audio, lengths = model_inputs(batch, model)
        out = model(audio, lengths)
        n = out.sample_size
        logs = {
            "loss": device_figure(out.loss) / n,
            "contrastive": device_figure(out.contrastive_loss) / n,
            "diversity": device_figure(out.diversity_loss) / n,
            "feature_pen": device_figure(out.feature_penalty) / n,
            "code_ppl": device_figure(out.code_perplexity),
            "prob_ppl": device_figure(out.prob_perplexity),
            "temp": float(out.temperature),  # a Python float: the schedule, not a device value
            "acc": device_figure(out.accuracy),
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
