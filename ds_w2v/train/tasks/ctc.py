"""CTC fine-tuning for speech recognition: the corpus's character vocabulary is the head's, the
transcripts are the targets; dev WER (or CER) chooses the best checkpoint."""
from __future__ import annotations

import torch

from ...data.batching import FINETUNE, Batch
from ...text import CharVocab
from .base import StepResult, Task, device_figure, host_float, model_inputs


class CTCTask(Task):
    name = "ctc"
    model_task = "ctc"
    stream_kind = FINETUNE
    best_metrics = {"wer": False, "cer": False, "loss": False}
    best_metric = "wer"

    def __init__(self, config, index):
        super().__init__(config, index)
        if not index.vocab:
            raise ValueError(f"data.shards: {config.data.shards} has no vocabulary (no transcripts): cannot train CTC")
        self.vocab = CharVocab.from_dict(index.vocab)

    def head_state(self):
        return {"vocab": self.vocab}

    def check_model(self, model, name="the checkpoint"):
        if model.vocab != self.vocab:
            raise ValueError(
                f"model.init: {name}'s vocabulary ({len(model.vocab)} symbols) differs from the data's "
                f"({len(self.vocab)} symbols in {self.config.data.shards}/vocab.json)"
            )

    def targets(self, batch: Batch, device) -> torch.Tensor:
        ids = [self.vocab.encode(t or "", normalized=True) for t in batch.texts]
        width = max(1, max(len(x) for x in ids))
        out = torch.full((len(ids), width), -100, dtype=torch.long)
        for i, x in enumerate(ids):
            out[i, : len(x)] = torch.tensor(x, dtype=torch.long)
        return out.to(device)

    def step(self, model, batch):
        audio, lengths = model_inputs(batch, model)
        out = model(audio, lengths, targets=self.targets(batch, audio.device))
        return StepResult(out.loss, out.sample_size, {"loss": device_figure(out.loss) / out.sample_size})

    def eval_sums(self, model, batch):
        import jiwer

        audio, lengths = model_inputs(batch, model)
        out = model(audio, lengths, targets=self.targets(batch, audio.device))
        module = getattr(model, "module", model)
        hyps = module.decode(out.logits, out.frame_lengths)
        refs = [t or "" for t in batch.texts]
        sums = {"loss": host_float(out.loss), "n": len(refs), "word_err": 0.0, "words": 0.0, "char_err": 0.0,
                "chars": 0.0}
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
