"""The training tasks by name: ``TASK_CLASSES[config.task]`` is the task object a run trains.

A task is one file here (a :class:`Task` subclass: its model, loss, dev metrics, what "best"
means, its stream, what it reads, its commands, its health checks) plus one ``register_task``
line below; or one file anywhere, imported as a plugin (``ds_w2v.plugins``), holding its head
(``register_model_task``), its task and its commands. ``register_task`` refuses a class that
leaves unstated what the trainer and ``TrainConfig.validate`` read from it, and a command name
another task holds.

Tasks that train one task model on different targets (``ctc`` on characters, ``phone_ctc`` on
TIMIT's phones) state their ``target``; ``data.target`` chooses among them in one place,
:func:`select_task`, which ``TrainConfig`` applies as it is built (``finetune-ctc ...
data.target=phones`` trains ``phone_ctc``). A trained model is scored as the task that owns its
head state (:func:`task_for_model`, ``ds-w2v evaluate``).
"""
from __future__ import annotations

from ...data.batching import BATCH_KINDS
from ...models.wav2vec2.registry import MODEL_TASKS
from .base import StepResult, Task, load_init
from .cls import ClsTask
from .ctc import CTCTask
from .phone_ctc import PhoneCTCTask
from .pretrain import PretrainTask

__all__ = ["TASK_CLASSES", "DEFAULT_TARGET", "register_task", "select_task", "task_for_model", "inference_command",
           "Task", "StepResult",
           "load_init", "PretrainTask", "CTCTask", "ClsTask", "PhoneCTCTask"]

TASK_CLASSES: dict[str, type[Task]] = {}
DEFAULT_TARGET = "chars"  # data.target's default: the one a task that reads no transcripts takes


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
    for other in TASK_CLASSES.values():
        clash = _command_names(task_class) & _command_names(other) if other.name != task_class.name else set()
        if clash:
            raise ValueError(f"{task_class.__name__}: command {sorted(clash)[0]!r} is task {other.name}'s already")
    TASK_CLASSES[task_class.name] = task_class
    return task_class


def _command_names(task_class: type[Task]) -> set[str]:
    """The ``ds-w2v`` sub-commands a task holds: its training command and those it adds."""
    return {n for n in (task_class.command, *task_class.commands) if n}


def select_task(task: str, target: str) -> type[Task]:
    """The task a run of ``task`` trains on ``data.target`` = ``target``: ``task`` itself when it
    trains on ``target`` (or reads no transcripts and ``target`` is the default), else the
    registered task that trains the same task model on ``target`` (``ctc`` + ``phones`` ->
    ``phone_ctc``). Anything else is refused naming ``data.target``."""
    own = TASK_CLASSES[task]
    if own.target == target or (own.target is None and target == DEFAULT_TARGET):
        return own
    if own.target is None:
        readers = sorted({c.model_task for c in TASK_CLASSES.values() if c.target is not None})
        raise ValueError(f"config key data.target: {target!r}: task {task} reads no transcripts "
                         f"(data.target applies to {', '.join(readers)})")
    variants = {c.target: c for c in TASK_CLASSES.values() if c.model_task == own.model_task and c.target is not None}
    if target not in variants:
        raise ValueError(f"config key data.target: {target!r} is not a target of task {task}: {', '.join(variants)}")
    return variants[target]


def inference_command(model_task: str) -> str | None:
    """The ``ds-w2v`` command that runs a trained ``model_task`` model on audio (``transcribe``):
    the first registered task on that task model that names one."""
    return next((c.inference_command for c in TASK_CLASSES.values()
                 if c.model_task == model_task and c.inference_command), None)


def task_for_model(model) -> type[Task]:
    """The task that scores a trained ``model`` (``ds-w2v evaluate``: the task is the model's): the
    registered task that owns its head state (a CTC model over the phone set: ``phone_ctc``), else
    the task named after its task model."""
    owner = next((c for c in TASK_CLASSES.values() if c.model_task == model.task and c.owns(model)), None)
    return owner or TASK_CLASSES[model.task]


register_task(PretrainTask)
register_task(CTCTask)
register_task(ClsTask)
register_task(PhoneCTCTask)
