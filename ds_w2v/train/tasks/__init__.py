"""The training tasks by name: ``TASK_CLASSES[config.task]`` is the task object a run trains.

A task is one file here (a :class:`Task` subclass: its model, loss, dev metrics, what "best"
means, its stream) plus one ``register_task`` line below. ``register_task`` refuses a class
that leaves unstated what the trainer and ``TrainConfig.validate`` read from it.
"""
from __future__ import annotations

from ...data.batching import BATCH_KINDS
from ...models.wav2vec2.registry import MODEL_TASKS
from .base import StepResult, Task, load_init
from .cls import ClsTask
from .ctc import CTCTask
from .pretrain import PretrainTask

__all__ = ["TASK_CLASSES", "register_task", "Task", "StepResult", "load_init", "PretrainTask", "CTCTask", "ClsTask"]

TASK_CLASSES: dict[str, type[Task]] = {}


def register_task(task_class: type[Task]) -> type[Task]:
    """Add ``task_class`` under its ``name``; refuses a name that another class holds and a
    class whose stated knowledge does not hold together (named in the message)."""
    missing = [a for a in ("name", "model_task", "stream_kind", "best_metrics", "best_metric")
               if not hasattr(task_class, a)]
    if missing:
        raise TypeError(f"{task_class.__name__} does not state {', '.join(missing)} (see Task)")
    if task_class.model_task not in MODEL_TASKS:
        raise ValueError(f"{task_class.__name__}.model_task {task_class.model_task!r} is not a task model "
                         f"(known: {', '.join(MODEL_TASKS)})")
    if task_class.stream_kind not in BATCH_KINDS:
        raise ValueError(f"{task_class.__name__}.stream_kind {task_class.stream_kind!r} is not one of {BATCH_KINDS}")
    if task_class.best_metric not in task_class.best_metrics:
        raise ValueError(f"{task_class.__name__}.best_metric {task_class.best_metric!r} is not among its "
                         f"best_metrics {list(task_class.best_metrics)}")
    held = TASK_CLASSES.get(task_class.name)
    if held is not None and held is not task_class:
        raise ValueError(f"task {task_class.name!r} is {held.__name__} already")
    TASK_CLASSES[task_class.name] = task_class
    return task_class


register_task(PretrainTask)
register_task(CTCTask)
register_task(ClsTask)
