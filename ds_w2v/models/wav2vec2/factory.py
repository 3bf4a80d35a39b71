"""Build, save and load task models.

A ds_w2v model file is one ``torch.save`` of a plain dict (loadable with ``weights_only=True``)::

    {"format": "ds_w2v.model", "version": 1, "task": a registered task ("pretrain", "ctc", "cls"),
     "config": {Wav2Vec2Config fields}, "extra": {"vocab": [...]} | {"labels": [...]} | {},
     "state_dict": {name: tensor}}

so a model carries its architecture, its head state (``extra``: the vocabulary or label set its
class's ``head_state`` names) and its update counter.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Sequence

import torch

from ...errors import reason
from ...text import CharVocab
from .config import Wav2Vec2Config
from .interop_fairseq import is_fairseq_checkpoint, load_fairseq_checkpoint, load_torch_file
from .interop_hf import load_hf_folder
from .model import Wav2Vec2Task
from .presets import preset_config
from .registry import model_class

MODEL_FORMAT = "ds_w2v.model"


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
    task: a task of ``registry.MODEL_TASKS``: ``pretrain``, ``ctc`` (``vocab``: a CharVocab, token
        list or vocab.json path; default the 32-symbol English character set) or ``cls``
        (``labels`` or ``num_labels``).
    overrides: config fields; for a preset name they apply after the task's fine-tuning
        defaults (its class's ``finetune_defaults``: frozen conv encoder, masking, LayerDrop).
    """
    cls = model_class(task)
    if isinstance(preset_or_config, str):
        config = preset_config(preset_or_config, **{**cls.finetune_defaults, **overrides})
    elif isinstance(preset_or_config, Wav2Vec2Config):
        config = preset_or_config.replace(**overrides)
    elif isinstance(preset_or_config, dict):
        config = Wav2Vec2Config.from_dict({**preset_or_config, **overrides})
    else:
        raise TypeError(f"expected a preset name, Wav2Vec2Config or dict, got {type(preset_or_config).__name__}")
    head = {k: v for k, v in (("vocab", vocab), ("labels", labels), ("num_labels", num_labels)) if v is not None}
    return _build(config, task, head)


def _build(config: Wav2Vec2Config, task: str, head: dict[str, Any]) -> Wav2Vec2Task:
    cls = model_class(task)
    foreign = sorted(set(head) - set(inspect.signature(cls.from_head_state).parameters))
    if foreign:  # another head's argument (a vocabulary for a classifier): one clear line
        raise ValueError(f"task {task!r} takes no {', '.join(foreign)}")
    return cls.from_head_state(config, **head)


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
    model = _build(config, payload["task"], payload.get("extra", {}))
    if load_weights:
        model.load_state_dict(payload["state_dict"])
    return model


def load_model(path: str | Path, dictionary: str | Path | None = None) -> Wav2Vec2Task:
    """Load a ds_w2v model file, a local HF transformers wav2vec2 folder (config.json +
    model.safetensors / pytorch_model.bin) or a fairseq wav2vec 2.0 checkpoint (pretraining or
    CTC fine-tuned, told apart by content) as the matching task model.

    dictionary: for a fine-tuned fairseq checkpoint, fairseq's dictionary of its CTC outputs;
        default ``dict.<labels>.txt`` (``dict.ltr.txt``) beside it (``interop_fairseq``)."""
    path = Path(path)
    if path.is_dir():
        model = load_hf_folder(path)
    elif not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file or folder")
    else:
        try:
            payload = load_torch_file(path)
        except Exception as e:  # pickle / zip errors: say which file and why, in one line
            raise ValueError(f"{path}: not a ds_w2v model file or fairseq checkpoint ({reason(e)})") from None
        if is_fairseq_checkpoint(payload):
            return load_fairseq_checkpoint(payload, path, dictionary)
        model = model_from_payload(payload, str(path))
    if dictionary is not None:
        raise ValueError(f"{path}: not a fairseq checkpoint; dictionary= is for fine-tuned fairseq checkpoints only")
    return model
