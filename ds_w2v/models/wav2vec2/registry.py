"""The task models by name: the one table of what the model package knows of each task.

Each task model class states its ``task`` name, ``description``, ``hf_architecture`` (None: no
HF export), ``finetune_defaults`` and ``head_state`` (see :class:`Wav2Vec2Task`); ``build_model``,
model files, HF export and import and the training tasks all read them from here. A new head is
its class plus one ``register_model_task`` line below; a training task that reuses a head (a
phone CTC is a CTC model, a probe a classification model) names it by its ``model_task`` and
adds nothing here.
"""
from __future__ import annotations

from .heads import Wav2Vec2ForCTC, Wav2Vec2ForSequenceClassification
from .model import Wav2Vec2ForPretraining, Wav2Vec2Task

MODEL_TASKS: dict[str, type[Wav2Vec2Task]] = {}
_STATED = ("task", "description", "hf_architecture", "finetune_defaults", "head_state")


def register_model_task(model_class: type[Wav2Vec2Task]) -> type[Wav2Vec2Task]:
    """Add ``model_class`` under its ``task``; refuses a class that leaves one of the task's
    attributes unstated, and a name that another class holds."""
    missing = [name for name in _STATED if not hasattr(model_class, name)]
    if missing:
        raise TypeError(f"{model_class.__name__} does not state {', '.join(missing)} (see Wav2Vec2Task)")
    held = MODEL_TASKS.get(model_class.task)
    if held is not None and held is not model_class:
        raise ValueError(f"task {model_class.task!r} is {held.__name__} already")
    MODEL_TASKS[model_class.task] = model_class
    return model_class


def model_class(task: str) -> type[Wav2Vec2Task]:
    """The class registered for ``task``, or a ValueError listing the known tasks."""
    if task not in MODEL_TASKS:
        raise ValueError(f"unknown task {task!r}; known tasks: {', '.join(MODEL_TASKS)}")
    return MODEL_TASKS[task]


def hf_model_class(architecture: str) -> type[Wav2Vec2Task] | None:
    """The first registered class exported as transformers' ``architecture``, if any."""
    return next((c for c in MODEL_TASKS.values() if c.hf_architecture == architecture), None)


register_model_task(Wav2Vec2ForPretraining)
register_model_task(Wav2Vec2ForCTC)
register_model_task(Wav2Vec2ForSequenceClassification)
