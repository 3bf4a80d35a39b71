"""Self-supervised pretraining (paper §3): the contrastive loss over masked frames, plus the
codebook diversity and feature penalties; dev loss chooses the best checkpoint. The run warns when
its figures say it is not learning: a contrastive loss at chance, a codebook collapsing."""
from __future__ import annotations

import math

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
    command = "pretrain"
    command_help = "self-supervised pretraining under DeepSpeed (--recipe R)"
    reads_targets = False  # audio only: any corpus, any mix
    needs_dev = False  # a folder of audio has no dev split: it learns without one

    def build_model(self, init):
        model = super().build_model(init)
        cfg = model.config
        self.chance = math.log(cfg.num_negatives + 1)  # loss per masked frame of a model that guesses
        self.collapse_ppl = max(2.0, 0.02 * cfg.latent_groups * cfg.latent_vars)  # < 2 % of the G x V codes used
        return model

    def progress_keys(self):
        return ("train/loss", "perf/audio_s_per_s", "dev/loss", "dev/acc")

    def health_warnings(self, update, figures):
        if update < 100 or not hasattr(self, "chance"):
            return []
        out = []
        c = figures.get("train/contrastive")
        if c is not None and abs(c - self.chance) < 0.02 * self.chance:
            out.append(("chance", f"update {update}: contrastive loss {c:.3f} is at chance (ln(K+1) = {self.chance:.3f}): "
                                  "the model is not learning (check lr, masking, data)"))
        ppl = figures.get("train/code_ppl")
        if ppl is not None and ppl < self.collapse_ppl:
            out.append(("collapse", f"update {update}: code perplexity {ppl:.1f} < {self.collapse_ppl:.1f}: the codebook "
                                    "is collapsing (raise diversity_weight or the Gumbel temperature)"))
        return out

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
