"""A task on a new head, in one file outside ds_w2v: predict an utterance's duration (log seconds)
from the mean of the top layer. A toy -- its point is that this file alone, named by
``DS_W2V_PLUGINS``, gives ``ds-w2v`` a head, a training command, dev/test metrics and an
inference command, with no file of the package changed (``tests/train/test_task_plugin.py``).

    DS_W2V_PLUGINS=duration_task.py ds-w2v finetune-duration --recipe finetune_cls_tiny data.shards=S run_dir=R
    DS_W2V_PLUGINS=duration_task.py ds-w2v evaluate data.shards=S model.init=R --split test
    DS_W2V_PLUGINS=duration_task.py ds-w2v predict-duration R a.wav b.flac
"""
from __future__ import annotations

import argparse
import json
import math

import torch
import torch.nn.functional as F
from torch import nn

from ds_w2v.data.batching import FINETUNE
from ds_w2v.models.wav2vec2.model import Wav2Vec2Output, Wav2Vec2Task
from ds_w2v.models.wav2vec2.registry import register_model_task
from ds_w2v.train.tasks import StepResult, Task, register_task
from ds_w2v.train.tasks.base import device_figure, model_inputs

SAMPLE_RATE = 16_000


class Wav2Vec2ForDuration(Wav2Vec2Task):
    task = "duration"
    description = "utterance duration regression"
    hf_architecture = None  # no transformers class: no HF export
    finetune_defaults = {"mask_prob": 0.0, "encoder_layerdrop": 0.0}
    head_state = ()

    def __init__(self, config):
        super().__init__(config)
        self.head = nn.Linear(config.encoder_embed_dim, 1)
        self.reset_parameters()

    def forward(self, waveform, lengths=None, targets=None):
        """``targets``: [B] log seconds; gives the summed squared error with ``sample_size`` = B."""
        lengths = self._validate(waveform, lengths)
        out = self._backbone(waveform, lengths, mask_time=False, update=self._num_updates)
        h = out.last_hidden_state
        if out.frame_mask is not None:
            pooled = (h * out.frame_mask[:, :, None]).sum(1) / out.frame_lengths[:, None].to(h.dtype)
        else:
            pooled = h.mean(1)
        pred = self.head(pooled).squeeze(-1)
        result = Wav2Vec2Output(h, out.frame_lengths, logits=pred, sample_size=waveform.shape[0])
        if targets is not None:
            result.loss = F.mse_loss(pred.float(), targets.float(), reduction="sum")
        return result


class DurationTask(Task):
    name = "duration"
    model_task = "duration"
    stream_kind = FINETUNE
    best_metrics = {"mae_s": False, "loss": False}
    best_metric = "mae_s"
    reads_targets = False  # its target is each utterance's own length: any corpus will do
    command = "finetune-duration"
    command_help = "train the duration head (a plugin's toy task)"
    inference_command = "predict-duration"
    commands = {"predict-duration": (f"{__name__}:PREDICT", "print each audio file's predicted duration")}

    def _forward(self, model, batch):
        audio, lengths = model_inputs(batch, model)
        seconds = lengths.float() / SAMPLE_RATE
        return model(audio, lengths, targets=seconds.log()), seconds

    def step(self, model, batch):
        out, _ = self._forward(model, batch)
        return StepResult(out.loss, out.sample_size, {"loss": device_figure(out.loss) / out.sample_size})

    def eval_sums(self, model, batch):
        out, seconds = self._forward(model, batch)
        err = (out.logits.float().exp() - seconds).abs().sum()
        return {"loss": float(out.loss), "abs_err_s": float(err), "n": len(seconds)}

    def eval_keys(self):
        return ["abs_err_s", "loss", "n"]

    def eval_metrics(self, sums):
        n = max(sums["n"], 1)
        return {"loss": sums["loss"] / n, "mae_s": sums["abs_err_s"] / n}


class PredictDuration:
    """``ds-w2v predict-duration MODEL AUDIO...``: one JSON line a file."""

    def build_parser(self, prog):
        p = argparse.ArgumentParser(prog=prog, description=self.__doc__)
        p.add_argument("model", help="a duration model file or run directory")
        p.add_argument("audio", nargs="+", help="audio files")
        return p

    @torch.no_grad()
    def main(self, args):
        from ds_w2v.data.audio import load_audio
        from ds_w2v.inference import load_task_model

        model = load_task_model(args.model, "duration").eval()
        for path in args.audio:
            pcm = torch.from_numpy(load_audio(path).astype("float32") / 32768.0)[None]
            pred = float(model(pcm).logits[0])
            print(json.dumps({"path": path, "duration_s": len(pcm[0]) / SAMPLE_RATE, "predicted_s": math.exp(pred)}))
        return 0


PREDICT = PredictDuration()
register_model_task(Wav2Vec2ForDuration)
register_task(DurationTask)
