"""Build, save and load task models.

A ds_w2v model file is one ``torch.save`` of a plain dict (loadable with ``weights_only=True``)::

    {"format": "ds_w2v.model", "version": 1, "task": "pretrain" | "ctc" | "cls",
     "config": {Wav2Vec2Config fields}, "extra": {"vocab": [...]} | {"labels": [...]} | {},
     "state_dict": {name: tensor}}

so a model carries its architecture, its vocabulary or label set and its update counter.
"""
from __future__ import annotations

import string
from pathlib import Path
from typing import Any, Sequence

import torch

from ...text import SPECIAL_TOKENS, CharVocab
from .config import Wav2Vec2Config
from .heads import Wav2Vec2ForCTC, Wav2Vec2ForSequenceClassification
from .interop_hf import load_hf_folder
from .model import Wav2Vec2ForPretraining, Wav2Vec2Task
from .presets import TASK_DEFAULTS, preset_config

TASKS = ("pretrain", "ctc", "cls")
MODEL_FORMAT = "ds_w2v.model"

# 32 symbols, as wav2vec2-base-960h: the specials, the apostrophe and a-z.
DEFAULT_VOCAB = CharVocab(list(SPECIAL_TOKENS) + ["'"] + list(string.ascii_lowercase))


def _resolve_vocab(vocab: CharVocab | Sequence[str] | str | Path | None) -> CharVocab:
    if vocab is None:
        return DEFAULT_VOCAB
    if isinstance(vocab, CharVocab):
        return vocab
    if isinstance(vocab, (str, Path)):
        return CharVocab.load(vocab)
    return CharVocab(list(vocab))


def build_model(
    preset_or_config: str | Wav2Vec2Config | dict,
    task: str = "pretrain",
    *,
    vocab: CharVocab | Sequence[str] | str | Path | None = None,
    labels: Sequence[str] | None = None,
    num_labels: int | None = None,
    **overrides: Any,
) -> Wav2Vec2Task:
    """A freshly initialised model.

    preset_or_config: a preset name (``tiny small medium original large``), a
        :class:`Wav2Vec2Config` or a dict of its fields.
    task: ``pretrain``, ``ctc`` (``vocab``: a CharVocab, token list or vocab.json path; default
        the 32-symbol English character set) or ``cls`` (``labels`` or ``num_labels``).
    overrides: config fields; for a preset name they apply after the task's fine-tuning
        defaults (``presets.TASK_DEFAULTS``: frozen conv encoder, masking, LayerDrop).
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known tasks: {', '.join(TASKS)}")
    if isinstance(preset_or_config, str):
        config = preset_config(preset_or_config, **{**TASK_DEFAULTS[task], **overrides})
    elif isinstance(preset_or_config, Wav2Vec2Config):
        config = preset_or_config.replace(**overrides)
    elif isinstance(preset_or_config, dict):
        config = Wav2Vec2Config.from_dict({**preset_or_config, **overrides})
    else:
        raise TypeError(f"expected a preset name, Wav2Vec2Config or dict, got {type(preset_or_config).__name__}")
    return _build(config, task, vocab=vocab, labels=labels, num_labels=num_labels)


def _build(config, task, *, vocab=None, labels=None, num_labels=None) -> Wav2Vec2Task:
    if task == "pretrain":
        return Wav2Vec2ForPretraining(config)
    if task == "ctc":
        return Wav2Vec2ForCTC(config, _resolve_vocab(vocab))
    if labels is None:
        if num_labels is None:
            raise ValueError("task 'cls' needs labels=[...] or num_labels=N")
        labels = [str(i) for i in range(num_labels)]
    elif num_labels is not None and num_labels != len(labels):
        raise ValueError(f"num_labels={num_labels} but {len(labels)} labels given")
    return Wav2Vec2ForSequenceClassification(config, labels)


def save_model(model: Wav2Vec2Task, path: str | Path) -> Path:
    """Write a ds_w2v model file (see the module docstring)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    payload = {"format": MODEL_FORMAT, "version": 1, "task": model.task, "config": model.config.to_dict(),
               "extra": model.extra_state(), "state_dict": state}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)  # never leave a half-written model file under the final name
    return path


def model_from_payload(payload: dict[str, Any], source: str = "<memory>", load_weights: bool = True) -> Wav2Vec2Task:
    if not isinstance(payload, dict) or payload.get("format") != MODEL_FORMAT:
        raise ValueError(f"{source}: not a ds_w2v model file")
    config = Wav2Vec2Config.from_dict(payload["config"])
    extra = payload.get("extra", {})
    model = _build(config, payload["task"], vocab=extra.get("vocab"), labels=extra.get("labels"))
    if load_weights:
        model.load_state_dict(payload["state_dict"])
    return model


def load_model(path: str | Path) -> Wav2Vec2Task:
    """Load a ds_w2v model file, or a local HF transformers wav2vec2 folder (config.json +
    model.safetensors / pytorch_model.bin), as the matching task model."""
    path = Path(path)
    if path.is_dir():
        return load_hf_folder(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file or folder")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle / zip errors: say which file and why, in one line
        raise ValueError(f"{path}: not a ds_w2v model file ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    return model_from_payload(payload, str(path))
