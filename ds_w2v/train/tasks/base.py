"""What a training task is: the small object the one trainer is parameterised by.

A task says which model it trains (a task model of ``models.wav2vec2.registry``, built from the
data's index), what one batch's loss is, which figures to log, how to evaluate on a split, what
"best" means and which stream it reads. Nothing else differs between pretraining, CTC
fine-tuning and classification fine-tuning: the trainer, the evaluator and
``TrainConfig.validate`` read the rest of a task from these attributes and methods.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from ...data.batching import Batch
from ...models.wav2vec2 import build_model, load_model
from ...models.wav2vec2.model import Wav2Vec2Task
from ...models.wav2vec2.registry import model_class
from ..flops import update_flops


@dataclass
class StepResult:
    loss: torch.Tensor  # summed over the batch (fp32 scalar)
    sample_size: int  # what the sum is over: masked frames, or utterances
    logs: dict[str, torch.Tensor | float] = field(default_factory=dict)
    """Per-batch figures (means), as detached 0-d tensors on the device: the trainer sums them
    there and reads them every ``log_every`` updates, so a step never waits on the device."""


def _from_init(init: Wav2Vec2Task, task: str, overrides: dict, **head) -> Wav2Vec2Task:
    """A ``task`` model starting from ``init``. The same task continues with ``init``'s weights
    (head included); another task takes ``init``'s backbone and a fresh head, with the task's
    fine-tuning defaults. Either way the architecture is ``init``'s, and the recipe's overrides
    may change only what does not change shapes (dropouts, masking, LayerDrop, grad mult)."""
    if init.task == task:
        model = build_model(init.config.replace(**overrides), task, **head)
        model.load_state_dict(init.state_dict())
        return model
    defaults = model_class(task).finetune_defaults
    model = build_model(init.config.replace(**{**defaults, **overrides}), task, **head)
    backbone = {k: v for k, v in init.state_dict().items() if k.startswith("wav2vec2.")}
    missing, unexpected = model.load_state_dict(backbone, strict=False)
    if unexpected or any(k.startswith("wav2vec2.") for k in missing):
        raise ValueError(f"model.init: backbone does not fit ({len(unexpected)} unexpected, {len(missing)} missing keys)")
    return model


def load_init(spec: str) -> Wav2Vec2Task:
    """``model.init``: a model file, an HF folder, a fairseq checkpoint (a CTC one with its
    ``dict.ltr.txt`` beside it), or a run directory (best, else latest)."""
    from pathlib import Path

    from ..checkpoint_export import model_from_run
    from ..checkpoint_tags import is_run_dir

    if is_run_dir(Path(spec)):
        return model_from_run(Path(spec))
    return load_model(spec)


class Task:
    """A training task. A subclass states the class attributes below (``register_task`` checks
    them) and writes ``step`` and the three ``eval_*`` methods; the rest has defaults that fit
    a fine-tuning task."""

    name: str
    """Its name in the registry and the config's ``task`` key."""
    model_task: str
    """The task model it trains, a key of ``models.wav2vec2.registry.MODEL_TASKS`` (which holds
    the head, its fine-tuning defaults and its HF architecture)."""
    stream_kind: str
    """How its batches are cut (``data.batching``): ``pretrain`` crops, ``finetune`` pads."""
    best_metrics: dict[str, bool]
    """The dev metrics that may choose the best checkpoint -> whether higher is better."""
    best_metric: str
    """The default among them (``config.best_metric`` overrides it)."""
    scores_test: bool = True
    """Whether a run ends by scoring the test splits with its best checkpoint."""
    target: str | None = None
    """The ``data.target`` it trains on (``chars``, ``phones``), for a task that reads transcripts:
    the tasks training one task model on different targets (``ctc``, ``phone_ctc``) are told apart
    by it (``tasks.select_task``). None: it reads none, and ``data.target`` keeps its default."""

    command: str | None = None
    """The ``ds-w2v`` sub-command that trains it (``finetune-ctc``); the command table is built from
    these (``cli.task_commands``). None: reached another way (``phone_ctc``: ``finetune-ctc
    data.target=phones``) or only through ``task=NAME``."""
    command_help: str = ""
    """The command's line in ``ds-w2v --help``."""
    inference_command: str | None = None
    """The ``ds-w2v`` sub-command that runs its trained models on audio files (``transcribe``):
    named where another command is handed one of its models."""
    commands: dict[str, tuple[str, str]] = {}
    """Sub-commands the task adds to ``ds-w2v`` (a task from a plugin: its inference command):
    name -> (``module:attribute`` with ``build_parser(prog)`` and ``main(args)``, one-line help)."""
    reads_targets: bool | tuple[str, ...] = True
    """What it reads of each record besides the audio, as the corpora of a mix and dev must agree on
    it (``mix_sources.check_same_targets``): True: transcripts (vocabulary); ``("label set",)``:
    utterance labels; False: nothing (any audio will do)."""
    needs_dev: bool = True
    """False: it learns without a dev split and runs without dev evaluation when the shards have
    none (pretraining a folder of audio)."""
    decoder = None
    """How its evaluation writes hypotheses (a CTC task's greedy or beam decoder), else None."""

    def progress_keys(self) -> tuple[str, ...]:
        """The figures the progress bar shows: the loss, the speed and the dev metric choosing best."""
        return ("train/loss", "perf/audio_s_per_s", f"dev/{self.best_metric}")

    def health_warnings(self, update: int, figures: dict[str, float]) -> list[tuple[str, str]]:
        """(key, message) for each sign in a logged row that the run is not learning (each key is
        warned at most once per 1,000 updates); none by default."""
        return []

    @classmethod
    def owns(cls, model: Wav2Vec2Task) -> bool:
        """Whether ``model``'s head state is this task's own rather than a corpus's (a CTC model over
        the fixed phone set is phone CTC's): ``ds-w2v evaluate`` then scores it as this task
        (``tasks.task_for_model``). A task whose head state comes from the data owns no model."""
        return False

    def __init__(self, config, index: Any):
        """``config``: the run's ``TrainConfig`` (this package sits below ``config.py``, whose
        ``validate`` reads the registry); ``index``: the train split's ``SplitIndex``."""
        self.config = config
        self.index = index
        # config.best_metric is validated against best_metrics by TrainConfig.validate
        self.best_metric = config.best_metric or self.best_metric
        self.higher_is_better = self.best_metrics[self.best_metric]

    # -- the model -----------------------------------------------------------------------------
    def head_state(self) -> dict[str, Any]:
        """The data's side of the head (``vocab``, ``labels``), as ``build_model`` takes it."""
        return {}

    def check_model(self, model: Wav2Vec2Task, name: str = "the checkpoint") -> None:
        """Refuse a ``model_task`` model whose head state differs from the data's (the scores
        would mean nothing); ``name`` says which model in the message."""

    def build_model(self, init: Wav2Vec2Task | None) -> Wav2Vec2Task:
        """A fresh ``config.model.preset`` model, or one starting from ``init`` (``model.init``)."""
        overrides = dict(self.config.model.overrides)
        head = self.head_state()
        if init is None:
            return build_model(self.config.model.preset, self.model_task, **head, **overrides)
        if init.task == self.model_task:
            self.check_model(init)
        return _from_init(init, self.model_task, overrides, **head)

    def backbone_frozen(self, update: int) -> bool:
        """Whether only the head trains at this update (fairseq freeze_finetune_updates)."""
        return update < self.config.freeze_transformer_updates

    pretrain_head = False
    """Whether the model's head is pretraining's (projections, quantizer, similarities: counted in
    MFU); a fine-tuning head costs next to nothing and is left out (``flops.py``)."""

    def update_flops(self, model_config, lengths: list[int], layers: int | None = None,
                     backbone_frozen: bool = False) -> float:
        """Forward + backward FLOPs of one batch of utterances of ``lengths`` samples, counting what
        ran: ``layers`` transformer blocks (those LayerDrop kept; default all), no backward through a
        frozen conv encoder (``feature_grad_mult = 0``: fine-tuning's default) nor, while
        ``backbone_frozen``, through the backbone (``flops.update_flops``)."""
        return update_flops(model_config, lengths, pretrain=self.pretrain_head, layers=layers,
                            backbone_backward=not backbone_frozen)

    # -- training --------------------------------------------------------------------------------
    def step(self, model, batch: Batch) -> StepResult:
        raise NotImplementedError

    # -- evaluation: sums are accumulated per rank, all-reduced, then turned into metrics ---------
    def eval_sums(self, model, batch: Batch) -> dict[str, float]:
        raise NotImplementedError

    def eval_metrics(self, sums: dict[str, float]) -> dict[str, float]:
        raise NotImplementedError

    def eval_keys(self) -> list[str]:
        """Every key ``eval_sums`` may produce, in a fixed order (for the all-reduce)."""
        raise NotImplementedError

    def test_results(self, sums: dict[str, float]) -> dict[str, Any]:
        """What ``results.json`` holds beside the first test split's metrics, from its sums."""
        return {}

    def is_better(self, value: float, best: float | None) -> bool:
        if best is None or math.isnan(best):
            return not math.isnan(value)
        return value > best if self.higher_is_better else value < best


def host_float(t: torch.Tensor) -> float:
    return float(t.detach())


def device_figure(t: torch.Tensor) -> torch.Tensor:
    """A figure to log, kept on the device (reading it would wait for the device)."""
    return t.detach().float()


def model_inputs(batch: Batch, model) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch's audio and lengths on the model's device, the audio in its dtype."""
    p = next(model.parameters())
    return batch.audio.to(device=p.device, dtype=p.dtype), batch.lengths.to(p.device)
