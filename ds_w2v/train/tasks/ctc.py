"""CTC fine-tuning for speech recognition: the corpus's character vocabulary is the head's, the
transcripts are the targets; dev WER (or CER) chooses the best checkpoint.

A CTC task on other targets (``phone_ctc.py``) changes what the head's vocabulary is, what an
utterance's reference is and how its errors are counted (``data_vocab``, ``references``,
``encode``, ``error_sums`` and the metrics); the loss, the decoding and the scoring loop are these.

Dev and test hypotheses are decoded as ``config.decoding`` says (``ds_w2v/lm/decoder.py``): greedy
by default, or beam search with an n-gram LM (``decoding.decoder=beam decoding.lm=lm.arpa``)."""
from __future__ import annotations

from typing import Sequence

import torch

from ...data.batching import FINETUNE, Batch
from ...lm.decoder import build_decoder
from ...text import CharVocab, edit_errors
from .base import StepResult, Task, device_figure, host_float, model_inputs


_SHOWN = 5  # symbols named per kind of difference; the rest are counted


def _symbols(tokens: list[str]) -> str:
    shown = ", ".join(repr(t) for t in tokens[:_SHOWN])
    return shown + (f" and {len(tokens) - _SHOWN} more" if len(tokens) > _SHOWN else "")


def vocab_difference(model: list[str], data: list[str], name: str = "the checkpoint") -> str:
    """How two CTC vocabularies differ, in words: the symbols only one has, else the first id
    whose symbol differs (same symbols, another order: each id is a row of the CTC head)."""
    in_model, in_data = set(model), set(data)
    missing = [t for t in data if t not in in_model]
    extra = [t for t in model if t not in in_data]
    parts = []
    if missing:
        parts.append(f"{name} lacks {_symbols(missing)}")
    if extra:
        parts.append(f"the data lacks {_symbols(extra)}")
    if not parts:
        first = next(i for i, (a, b) in enumerate(zip(model, data)) if a != b)
        moved = sum(a != b for a, b in zip(model, data))
        parts.append(f"same symbols in another order ({moved} ids differ, first id {first}: "
                     f"{model[first]!r} in {name}, {data[first]!r} in the data)")
    return "; ".join(parts)


class CTCTask(Task):
    name = "ctc"
    model_task = "ctc"
    target = "chars"
    stream_kind = FINETUNE
    best_metrics = {"wer": False, "cer": False, "loss": False}
    best_metric = "wer"
    command = "finetune-ctc"
    command_help = "fine-tune with a CTC head (speech recognition)"
    inference_command = "transcribe"

    def __init__(self, config, index):
        super().__init__(config, index)
        self.vocab = self.data_vocab(index)
        self.decoder = build_decoder(config.decoding, self.vocab)

    # -- the head and the targets ------------------------------------------------------------------
    def data_vocab(self, index) -> CharVocab:
        """The head's vocabulary: the corpus's characters (its ``vocab.json``)."""
        if not index.vocab:
            raise ValueError(f"data.shards: {self.config.data.shards} has no vocabulary (no transcripts): "
                             "cannot train CTC")
        return CharVocab.from_dict(index.vocab)

    def vocab_source(self) -> str:
        """Where the head's vocabulary comes from, for the mismatch message."""
        return f"{self.config.data.shards}/vocab.json"

    def head_state(self):
        return {"vocab": self.vocab}

    def check_model(self, model, name="the checkpoint"):
        if model.vocab != self.vocab:
            raise ValueError(
                f"model.init: {name}'s vocabulary ({len(model.vocab)} symbols) differs from the data's "
                f"({len(self.vocab)} symbols in {self.vocab_source()}): "
                f"{vocab_difference(model.vocab.tokens, self.vocab.tokens, name)}"
            )

    def references(self, batch: Batch) -> list[str]:
        """Each utterance's reference, written as ``decode`` writes a hypothesis: its normalised
        transcript ("" for none: it adds no error and no reference unit)."""
        return [t or "" for t in batch.texts]

    def encode(self, reference: str) -> list[int]:
        """The label ids of one reference."""
        return self.vocab.encode(reference, normalized=True)

    def targets(self, references: Sequence[str], device) -> torch.Tensor:
        """Long [B, S] label ids, padded with -100 (the head's convention)."""
        ids = [self.encode(r) for r in references]
        width = max(1, max(len(x) for x in ids))
        out = torch.full((len(ids), width), -100, dtype=torch.long)
        for i, x in enumerate(ids):
            out[i, : len(x)] = torch.tensor(x, dtype=torch.long)
        return out.to(device)

    def forward(self, model, batch: Batch):
        """The model's output on ``batch`` (loss against its references) and the references."""
        audio, lengths = model_inputs(batch, model)
        refs = self.references(batch)
        return model(audio, lengths, targets=self.targets(refs, audio.device)), refs

    # -- training and evaluation -------------------------------------------------------------------
    def step(self, model, batch):
        out, _ = self.forward(model, batch)
        return StepResult(out.loss, out.sample_size, {"loss": device_figure(out.loss) / out.sample_size})

    def eval_sums(self, model, batch):
        out, refs = self.forward(model, batch)
        hyps = self.decoder.decode(out.logits, out.frame_lengths)
        return {"loss": host_float(out.loss), "n": len(refs), **self.error_sums(refs, hyps)}

    def error_sums(self, refs: Sequence[str], hyps: Sequence[str]) -> dict[str, float]:
        """The edit sums of one batch's hypotheses against its references."""
        import jiwer

        word_err, words = edit_errors(refs, hyps, jiwer.process_words)
        char_err, chars = edit_errors(refs, hyps, jiwer.process_characters)
        return {"word_err": word_err, "words": words, "char_err": char_err, "chars": chars}

    def eval_keys(self):
        return ["char_err", "chars", "loss", "n", "word_err", "words"]

    def eval_metrics(self, sums):
        return {"loss": sums["loss"] / max(sums["n"], 1), "wer": sums["word_err"] / max(sums["words"], 1),
                "cer": sums["char_err"] / max(sums["chars"], 1)}
