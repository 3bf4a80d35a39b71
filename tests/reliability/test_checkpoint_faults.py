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

from ds_w2v.train.checkpoint_export import model_from_run
from ds_w2v.train.checkpoint_tags import ckpt_dir, latest_tag
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
            pytest.raises(TrainingAborted, match=r"update 6: checkpoint update_00000006 in \S+checkpoints not "
                                                 r"written \(no space left on device \([\d,]+ MiB free on the "
                                                 r"filesystem of \S+\)\); checkpoints/latest still names "
                                                 r"update_00000002; free space and resume"):
        trainer.train()
    assert failures == ["update_00000004", "update_00000006"]
    # the first failure was logged and training went on to update 6
    assert any("checkpoint update_00000004 in " in r.getMessage() and "not written (no space left" in r.getMessage() and "training goes on" in r.getMessage()
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


def test_a_full_disk_at_a_best_save_stops_cleanly_and_the_resume_equals_the_uninterrupted_run(speech, tmp_path,
                                                                                                monkeypatch):
    """The best-on-dev save (and its keep_best record) fails as a periodic save does: one line naming
    the path and the full disk, the pointers on complete tags, and a resume that recomputes the same
    updates. keep_best=3: every one of the first three dev evaluations saves a best tag."""
    run = tmp_path / "run"
    config = load_config("pretrain_tiny", overrides(speech["timit"], run, "max_updates=6", "data.dev_split=dev",
                                                    "eval_every=2", "keep_best=3", "eval_max_batches=2"))
    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        if "best_update_00000004" in str(f):
            raise RuntimeError("[enforce fail at inline_container.cc:778] . PytorchStreamWriter failed writing "
                               "file data/3: file write failed")  # what torch says on a full disk
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    monkeypatch.setattr("ds_w2v.train.checkpoint.FULL_DISK_BYTES", 2**62)  # "the disk is full" after the failure
    trainer = Trainer(config)
    with pytest.raises(TrainingAborted, match=r"^update 4: best checkpoint \(dev loss [\d.]+\) in \S+checkpoints not "
                                              r"written \(no space left on device \(.*\)\); checkpoints/latest "
                                              r"still names update_00000002, checkpoints/best best_update_00000002; "
                                              r"free space and resume$"):
        trainer.train()
    assert latest_tag(run) == "update_00000002"
    assert not any("00000004" in p.name for p in ckpt_dir(run).iterdir())  # no partial tag holds the space
    assert not (run / "results.json").exists()

    monkeypatch.undo()
    del trainer
    resumed = Trainer(config)
    assert resumed.update == 2
    assert resumed.train()["updates"] == 6
    logged = _figures_by_update(run)
    for update in (3, 4):  # logged before the failure, then again after the resume: the same
        assert len(logged[update]) == 2 and logged[update][0] == logged[update][1], update
    assert (ckpt_dir(run) / "best_update_00000004").is_dir()  # saved this time (keep_best=3 keeps it)


def test_an_error_that_is_not_a_full_disk_is_named_as_it_is(tmp_path):
    from ds_w2v.train.checkpoint import save_failure

    assert save_failure(RuntimeError("Permission denied: x\nmore"), tmp_path) == "RuntimeError: Permission denied: x"
    full = OSError(errno.ENOSPC, "No space left on device")
    assert save_failure(full, tmp_path).startswith("no space left on device (")
    wrapped = RuntimeError("file write failed")
    wrapped.__cause__ = full
    assert save_failure(wrapped, tmp_path).startswith("no space left on device (")
