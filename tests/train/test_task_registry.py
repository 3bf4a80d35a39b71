"""Adding a task is one class plus one registry call: a toy task defined here, in no file of the
package, trains through the Trainer; and every registered task states all a task must know."""
from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
import torch

import ds_w2v
from ds_w2v.data.batching import BATCH_KINDS, FINETUNE
from ds_w2v.data.shard_format import SAMPLE_RATE
from ds_w2v.models.wav2vec2 import Wav2Vec2Config
from ds_w2v.models.wav2vec2.registry import MODEL_TASKS, register_model_task
from ds_w2v.train.config import load_config
from ds_w2v.train.tasks import TASK_CLASSES, StepResult, Task, register_task
from ds_w2v.train.tasks.base import device_figure, model_inputs

# the same tiny, fast, deterministic settings as test_trainer.py
FAST = ["precision=fp32", "data.batch_s=12", "global_batch_s=24", "log_every=1", "eval_every=1000", "save_every=1000",
        "data.shuffle_buffer=16", "model.overrides.encoder_layerdrop=0.0", "device=cpu"]


class UtteranceLengthTask(Task):
    """Is an utterance longer than the train split's mean? The registry's classification model,
    on labels the task reads off each utterance's own length: any corpus will do."""

    name = "utterance_length"
    model_task = "cls"
    stream_kind = FINETUNE
    best_metrics = {"acc": True, "loss": False}
    best_metric = "acc"
    labels = ["short", "long"]

    def __init__(self, config, index):
        super().__init__(config, index)
        self.mean_samples = index.total_s / index.num_samples * SAMPLE_RATE

    def head_state(self):
        return {"labels": self.labels}

    def _forward(self, model, batch):
        audio, lengths = model_inputs(batch, model)
        target = (lengths > self.mean_samples).long()
        return model(audio, lengths, labels=target), target

    def step(self, model, batch):
        out, target = self._forward(model, batch)
        acc = (out.logits.detach().argmax(-1) == target).float().mean()
        return StepResult(out.loss, out.sample_size, {"loss": device_figure(out.loss) / out.sample_size, "acc": acc})

    def eval_sums(self, model, batch):
        out, target = self._forward(model, batch)
        return {"loss": float(out.loss), "correct": float((out.logits.argmax(-1) == target).sum()), "n": len(target)}

    def eval_keys(self):
        return ["correct", "loss", "n"]

    def eval_metrics(self, sums):
        n = max(sums["n"], 1)
        return {"loss": sums["loss"] / n, "acc": sums["correct"] / n}


@pytest.fixture
def utterance_length():
    register_task(UtteranceLengthTask)  # the one registry call
    yield UtteranceLengthTask
    del TASK_CLASSES[UtteranceLengthTask.name]


def test_a_task_defined_outside_the_package_trains_evaluates_and_reports(utterance_length, timit_shards, tmp_path):
    pytest.importorskip("deepspeed")
    from ds_w2v.train.trainer import Trainer

    package = Path(ds_w2v.__file__).parent
    assert not [p for p in package.rglob("*.py") if utterance_length.name in p.read_text()]  # no other file knows it
    run = tmp_path / "run"
    config = load_config("finetune_cls_tiny", [f"data.shards={timit_shards}", f"run_dir={run}", *FAST,
                                               "task=utterance_length", "max_updates=2", "eval_every=1"])
    result = Trainer(config).train()
    assert result["task"] == "utterance_length" and result["updates"] == 2 and result["skipped_updates"] == 0
    assert result["best_update"] in (1, 2) and 0.0 <= result["best_dev"] <= 1.0  # dev acc chose a best checkpoint
    index = json.loads((timit_shards / "dataset.json").read_text())
    assert set(result["test"]) == {"loss", "acc", "num_utterances", "audio_s"}
    assert result["test"]["num_utterances"] == index["splits"]["test"]["num_samples"]
    assert json.loads((run / "results.json").read_text())["test"] == result["test"]
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["update"] for r in rows if "dev/acc" in r] == [1, 2]
    assert [r["update"] for r in rows if "train/acc" in r] == [1, 2]


def test_validation_reads_the_registry():
    args = ["data.shards=/data/shards", "task=utterance_length"]
    with pytest.raises(ValueError, match="config key task: 'utterance_length' is not one of pretrain, ctc, cls"):
        load_config("finetune_cls_tiny", args)
    register_task(UtteranceLengthTask)
    try:
        assert load_config("finetune_cls_tiny", args).task == "utterance_length"
        with pytest.raises(ValueError, match="config key best_metric: 'f1' is not a dev metric of task "
                                             "utterance_length: acc, loss"):
            load_config("finetune_cls_tiny", [*args, "best_metric=f1"])
    finally:
        del TASK_CLASSES[UtteranceLengthTask.name]


@pytest.mark.parametrize("name", list(TASK_CLASSES))
def test_every_registered_task_states_what_a_task_knows(name):
    task = TASK_CLASSES[name]
    assert task.name == name and issubclass(task, Task)
    assert task.stream_kind in BATCH_KINDS
    assert task.best_metrics and all(isinstance(v, bool) for v in task.best_metrics.values())
    assert task.best_metric in task.best_metrics
    for method in ("step", "eval_sums", "eval_keys", "eval_metrics"):
        assert getattr(task, method) is not getattr(Task, method), f"{name} does not write {method}"
    # its model: the head, the fine-tuning defaults, the HF architecture (or a stated "none")
    model = MODEL_TASKS[task.model_task]
    assert "hf_architecture" in {k for c in model.__mro__ for k in vars(c)}  # stated, even if None
    assert model.hf_architecture is None or isinstance(model.hf_architecture, str)
    assert isinstance(model.description, str) and model.description
    Wav2Vec2Config().replace(**model.finetune_defaults)  # every default is a config field
    assert set(model.head_state) <= set(inspect.signature(model.from_head_state).parameters)


@pytest.mark.parametrize("name", list(MODEL_TASKS))
def test_every_hf_architecture_is_a_transformers_class(name):
    transformers = pytest.importorskip("transformers")
    arch = MODEL_TASKS[name].hf_architecture
    assert arch is None or hasattr(transformers, arch)


def test_register_refuses_what_does_not_hold_together():
    class Unstated(Task):
        name = "unstated"
        model_task = "cls"
        stream_kind = FINETUNE

    with pytest.raises(TypeError, match="Unstated does not state best_metrics, best_metric"):
        register_task(Unstated)

    class NoSuchModel(UtteranceLengthTask):
        model_task = "regression"

    with pytest.raises(ValueError, match="NoSuchModel.model_task 'regression' is not a task model"):
        register_task(NoSuchModel)

    class BadDefault(UtteranceLengthTask):
        best_metric = "f1"

    with pytest.raises(ValueError, match="BadDefault.best_metric 'f1' is not among its best_metrics"):
        register_task(BadDefault)

    class Again(UtteranceLengthTask):
        name = "ctc"

    with pytest.raises(ValueError, match="task 'ctc' is CTCTask already"):
        register_task(Again)
    assert TASK_CLASSES["ctc"].__name__ == "CTCTask" and "unstated" not in TASK_CLASSES

    class Headless(torch.nn.Module):
        task = "headless"

    with pytest.raises(TypeError, match="Headless does not state description, hf_architecture"):
        register_model_task(Headless)
    assert "headless" not in MODEL_TASKS
