"""Non-finite losses, in fp32 and in bf16 on CPU: an isolated one is skipped (the parameters are
not changed, the skip is counted) and training goes on; ``max_bad_updates`` in a row stop the
run with ``TrainingAborted`` and a clear message, after saving a checkpoint that loads, exports
and resumes. (The 2-rank test puts the NaN on one rank only.)"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from ds_w2v import load_model
from ds_w2v.train.checkpoint_export import export, model_from_run
from ds_w2v.train.checkpoint_tags import latest_tag
from ds_w2v.train.config import load_config
from ds_w2v.train.tasks import StepResult
from ds_w2v.train.trainer import Trainer, TrainingAborted

sys.path.insert(0, str(Path(__file__).parent))  # pytest runs with --import-mode=importlib
from reliability_helpers import metrics_rows, overrides  # noqa: E402

pytest.importorskip("deepspeed")

MAX_BAD = 3


def _inject_nan(trainer: Trainer, attempts) -> None:
    """The task's loss is NaN on the last micro-batch of the update attempts ``attempts(i)``."""
    step = trainer.task.step
    calls = {"n": 0}

    def nan_step(model, batch):
        i, micro = divmod(calls["n"], trainer.accum)
        calls["n"] += 1
        res = step(model, batch)
        if attempts(i) and micro == trainer.accum - 1:
            return StepResult(res.loss * float("nan"), res.sample_size, res.logs)
        return res

    trainer.task.step = nan_step


def _finite(params) -> bool:
    return all(bool(torch.isfinite(p.float()).all()) for p in params)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_nonfinite_updates_are_skipped_counted_and_stop_the_run_after_max_bad_updates(speech, tmp_path, precision):
    run = tmp_path / "run"
    config = load_config("pretrain_tiny", overrides(speech["dir"], run, "max_updates=6", f"precision={precision}",
                                                    f"max_bad_updates={MAX_BAD}"))
    trainer = Trainer(config)
    assert trainer.precision == precision
    # attempt 0 -> update 1; 1 NaN (skipped); 2 -> update 2 (saved); 3 -> update 3; 4, 5, 6 NaN: stop
    _inject_nan(trainer, lambda i: i == 1 or i >= 4)
    with pytest.raises(TrainingAborted, match=rf"stopped after {MAX_BAD} non-finite updates in a row "
                                              r"\(train.max_bad_updates\).*update_00000003"):
        trainer.train()
    assert trainer.update == 3 and trainer.bad_total == 4
    assert trainer.engine.skipped_steps == 4  # DeepSpeed skipped each of them (else the trainer raises)
    assert _finite(trainer.module.parameters())
    rows = metrics_rows(run)
    assert [r["update"] for r in rows if "train/loss" in r] == [1, 2, 3]
    assert [r["train/skipped_updates"] for r in rows if "train/skipped_updates" in r] == [1, 2, 3, 4]

    # the checkpoint written on the way out: loads, is finite, is the model in memory, exports
    assert latest_tag(run) == "update_00000003"
    saved = model_from_run(run)
    assert saved._num_updates == 3 and _finite(saved.parameters())
    in_memory = dict(trainer.module.named_parameters())
    for name, p in saved.named_parameters():
        assert torch.equal(p.to(in_memory[name].dtype), in_memory[name].detach()), name
    exported = load_model(export(run, tmp_path / "aborted.pt"))
    assert _finite(exported.parameters())

    # and the run resumes from it once the losses are finite again
    del trainer
    result = Trainer(config).train()
    assert result["updates"] == 6 and result["skipped_updates"] == 4
