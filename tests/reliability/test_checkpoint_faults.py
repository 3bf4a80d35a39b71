"""A full disk in the middle of a checkpoint save (``torch.save`` writes half a file, then raises
``OSError(ENOSPC)``): the partial tag is removed, ``latest`` keeps naming the previous complete
checkpoint, the run logs the failure and trains on to the next save; a second failure in a row
stops it with ``TrainingAborted``; the run then resumes from ``latest`` and recomputes exactly
what it had computed."""
from __future__ import annotations

import errno
import io
import logging
import sys
from pathlib import Path

import pytest
import torch

from ds_w2v.train.checkpoint import ckpt_dir, latest_tag, model_from_run
from ds_w2v.train.config import load_config
from ds_w2v.train.trainer import Trainer, TrainingAborted

sys.path.insert(0, str(Path(__file__).parent))  # pytest runs with --import-mode=importlib
from reliability_helpers import metrics_rows, overrides  # noqa: E402

pytest.importorskip("deepspeed")


def _figures_by_update(run_dir: Path) -> dict[int, list[float]]:
    """update -> every train/loss logged for it, in order."""
    out: dict[int, list[float]] = {}
    for row in metrics_rows(run_dir):
        if "train/loss" in row:
            out.setdefault(row["update"], []).append(row["train/loss"])
    return out


def test_a_full_disk_mid_save_keeps_latest_complete_and_the_run_resumable(speech, tmp_path, monkeypatch, caplog):
    run = tmp_path / "run"
    config = load_config("pretrain_tiny", overrides(speech["dir"], run, "max_updates=6"))
    real_save = torch.save
    failures = []

    def full_disk(obj, f, *args, **kwargs):
        path = str(f)
        # update 4: the model file is written, the optimizer file half; update 6: the model file half
        if ("update_00000004" in path and "optim_states" in path) or "update_00000006" in path:
            buf = io.BytesIO()
            real_save(obj, buf, *args, **kwargs)
            Path(path).write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
            failures.append(Path(path).parent.name)
            raise OSError(errno.ENOSPC, "No space left on device", path)
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    trainer = Trainer(config)
    with caplog.at_level(logging.ERROR, logger="ds_w2v.train"), \
            pytest.raises(TrainingAborted, match=r"update 6: checkpoint update_00000006 not written \(OSError: "
                                                 r"\[Errno 28\] No space left on device.*latest still names "
                                                 r"update_00000002; free space and resume"):
        trainer.train()
    assert failures == ["update_00000004", "update_00000006"]
    # the first failure was logged and training went on to update 6
    assert any("checkpoint update_00000004 not written" in r.getMessage() and "training goes on" in r.getMessage()
               for r in caplog.records if r.levelno == logging.ERROR)
    assert trainer.update == 6
    # no partial tag is left (they would hold the space), latest names a complete checkpoint
    assert latest_tag(run) == "update_00000002"
    assert sorted(p.name for p in ckpt_dir(run).iterdir() if p.name.startswith("update_")) == ["update_00000002"]
    saved = model_from_run(run)
    assert saved._num_updates == 2 and all(bool(torch.isfinite(p).all()) for p in saved.parameters())
    assert not (run / "results.json").exists()

    # space is back: the run resumes from update 2 and recomputes updates 3-6 bit for bit
    monkeypatch.undo()
    del trainer
    resumed = Trainer(config)
    assert resumed.update == 2
    result = resumed.train()
    assert result["updates"] == 6 and latest_tag(run) == "update_00000006"
    logged = _figures_by_update(run)
    assert sorted(logged) == [1, 2, 3, 4, 5, 6]
    for update in (3, 4, 5, 6):  # logged before the failure, then again after the resume
        assert len(logged[update]) == 2 and logged[update][0] == logged[update][1], update
