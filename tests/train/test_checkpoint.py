"""Checkpoint tags and pointers: ``best`` is a tag directory of its own written before the
``checkpoints/best`` pointer moves (a failed save keeps the previous best), ``prune`` never
removes a tag a pointer names, ``resolve_tag`` turns latest / best / a tag name into the directory
(or one FileNotFoundError line), a best of the older layout (a directory) is still read, with a
warning, and replaced by the next best save. Then the same through DeepSpeed: save, load and
``ds-w2v export --tag latest|best`` give back the weights that were saved."""
from __future__ import annotations

import errno
import json
import logging
import shutil
from pathlib import Path

import pytest
import torch

from ds_w2v import load_model
from ds_w2v.cli import main as cli
from ds_w2v.train import checkpoint as ckpt
from ds_w2v.train import checkpoint_tags as ckpt_tags
from ds_w2v.train import checkpoint_export as ckpt_export
from ds_w2v.train.checkpoint import prune
from ds_w2v.train.checkpoint_tags import best_tag, ckpt_dir, latest_tag, resolve_tag

MODEL_FILE = "mp_rank_00_model_states.pt"
OPTIM_FILE = "zero_pp_rank_0_mp_rank_00_optim_states.pt"


class FilesEngine:
    """Stands in for DeepSpeed's engine in save(): writes a tag directory of two files, or (a full
    disk) the first file and then raises as torch.save does."""

    def __init__(self, fail: bool = False):
        self.fail = fail

    def save_checkpoint(self, save_dir, tag, client_state, save_latest):
        d = Path(save_dir) / tag
        d.mkdir(parents=True, exist_ok=True)
        (d / MODEL_FILE).write_text(json.dumps(client_state))
        if self.fail:
            raise OSError(errno.ENOSPC, "No space left on device", str(d / OPTIM_FILE))
        (d / OPTIM_FILE).write_text("optimizer")


def _fake_tags(run: Path, *tags: str, latest: str | None = None, best: str | None = None) -> None:
    for tag in tags:
        (ckpt_dir(run) / tag).mkdir(parents=True)
        (ckpt_dir(run) / tag / MODEL_FILE).write_text(json.dumps({"update": tag}))
    if latest:
        (ckpt_dir(run) / "latest").write_text(latest)
    if best:
        (ckpt_dir(run) / "best").write_text(best)


def _dirs(run: Path) -> list[str]:
    return sorted(p.name for p in ckpt_dir(run).iterdir() if p.is_dir())


def _saved_update(run: Path, tag: str) -> int:
    return json.loads((ckpt_dir(run) / tag / MODEL_FILE).read_text())["update"]


def _save_best(run: Path, update: int, fail: bool = False) -> str:
    return ckpt.save(FilesEngine(fail), run, "best", {"update": update}, keep_last=2, is_rank0=True,
                     save_latest=False)


# -- the best pointer ------------------------------------------------------------------------------
def test_best_is_a_new_tag_then_the_pointer_moves_and_the_old_best_goes(tmp_path):
    run = tmp_path / "run"
    assert _save_best(run, 4) == "best_update_00000004"
    assert (ckpt_dir(run) / "best").is_file() and best_tag(run) == "best_update_00000004"
    assert _save_best(run, 6) == "best_update_00000006"
    assert best_tag(run) == "best_update_00000006" and _saved_update(run, "best_update_00000006") == 6
    assert _dirs(run) == ["best_update_00000006"]  # the replaced best is removed
    assert latest_tag(run) is None  # save_latest=False (the trainer's best save) leaves latest alone
    assert not (ckpt_dir(run) / "best.tmp").exists()


def test_a_failed_best_save_removes_its_partial_tag_and_keeps_the_previous_best(tmp_path):
    run = tmp_path / "run"
    _save_best(run, 4)
    with pytest.raises(OSError, match="No space left"):
        _save_best(run, 8, fail=True)
    assert best_tag(run) == "best_update_00000004" and _dirs(run) == ["best_update_00000004"]
    assert resolve_tag(run, "best") == "best_update_00000004"


def test_a_best_saved_again_at_its_update_does_not_overwrite_the_tag_best_names(tmp_path):
    """A run killed after its best save at update 6 but before latest reached 6 resumes from an
    earlier update and reaches 6 again: that best is written beside the one best names."""
    run = tmp_path / "run"
    _save_best(run, 6)
    with pytest.raises(OSError):  # the second save of update 6 fails half-way: the first is intact
        _save_best(run, 6, fail=True)
    assert best_tag(run) == "best_update_00000006" and (ckpt_dir(run) / "best_update_00000006" / OPTIM_FILE).is_file()
    assert _save_best(run, 6) == "best_update_00000006_1"
    assert best_tag(run) == "best_update_00000006_1" and _dirs(run) == ["best_update_00000006_1"]
    assert _save_best(run, 6) == "best_update_00000006"  # and back: never the name best holds


def test_best_and_update_saves_keep_their_own_pointers(tmp_path):
    run = tmp_path / "run"
    for update in (2, 4, 6):
        ckpt.save(FilesEngine(), run, ckpt_tags.tag_for(update), {"update": update}, keep_last=2, is_rank0=True)
        if update == 2:
            _save_best(run, 2)
    assert latest_tag(run) == "update_00000006" and best_tag(run) == "best_update_00000002"
    assert _dirs(run) == ["best_update_00000002", "update_00000004", "update_00000006"]


# -- keep_best: the N best tags and their record ---------------------------------------------------
def _ranked_save(run: Path, update: int, value: float, keep: int, fail: bool = False) -> str | None:
    """What the trainer does after a dev evaluation (lower is better): a new best, or a value among
    the ``keep`` best so far, is saved as a best tag; anything else is not saved (None)."""
    record = ckpt_tags.kept_bests(run)
    new_best = not record or value < min(e["value"] for e in record)
    rank = ckpt_tags.BestRank(value, higher_is_better=False, keep=keep, new_best=new_best)
    if not (new_best or ckpt_tags.ranks_among_bests(run, rank)):
        return None
    return ckpt.save(FilesEngine(fail), run, "best", {"update": update}, keep_last=2, is_rank0=True,
                     save_latest=False, rank=rank)


def _record(run: Path) -> list[tuple[str, float]]:
    return [(e["tag"], e["value"]) for e in ckpt_tags.kept_bests(run)]


def test_keep_best_keeps_the_n_best_tags_ranked_by_dev_value(tmp_path):
    run = tmp_path / "run"
    saved = [_ranked_save(run, u, v, keep=3) for u, v in [(1, 0.9), (2, 0.8), (3, 0.85), (4, 0.95), (5, 0.82)]]
    # 4 (0.95) is worse than the three kept then; 5 (0.82) pushes 1 (0.9) out
    assert saved == ["best_update_00000001", "best_update_00000002", "best_update_00000003", None,
                     "best_update_00000005"]
    assert _record(run) == [("best_update_00000002", 0.8), ("best_update_00000005", 0.82),
                            ("best_update_00000003", 0.85)]
    assert best_tag(run) == "best_update_00000002"  # only a new best moves the pointer
    assert _dirs(run) == ["best_update_00000002", "best_update_00000003", "best_update_00000005"]
    prune(run, keep_last=1)  # the record's tags are kept like the pointers' ones
    assert _dirs(run) == ["best_update_00000002", "best_update_00000003", "best_update_00000005"]
    assert ckpt_tags.complete_tags(run) == {"best_update_00000002": 2, "best_update_00000003": 3,
                                       "best_update_00000005": 5}


def test_keep_best_1_is_the_single_best(tmp_path):
    run = tmp_path / "run"
    saved = [_ranked_save(run, u, v, keep=1) for u, v in [(1, 0.9), (2, 0.95), (3, 0.8)]]
    assert saved == ["best_update_00000001", None, "best_update_00000003"]
    assert _dirs(run) == ["best_update_00000003"] and _record(run) == [("best_update_00000003", 0.8)]
    assert best_tag(run) == "best_update_00000003"


def test_a_failed_ranked_save_leaves_the_record_pointer_and_tags(tmp_path):
    run = tmp_path / "run"
    for u, v in [(1, 0.9), (2, 0.8)]:
        _ranked_save(run, u, v, keep=2)
    before = (_record(run), best_tag(run), _dirs(run))
    for value in (0.7, 0.85):  # a new best, and one that only ranks among the two
        with pytest.raises(OSError, match="No space left"):
            _ranked_save(run, 3, value, keep=2, fail=True)
        assert (_record(run), best_tag(run), _dirs(run)) == before


def test_a_kill_between_the_record_and_the_best_pointer_keeps_both_bests(tmp_path, monkeypatch):
    """The record names the new best before ``best`` moves; in between, neither best is removed."""
    run = tmp_path / "run"
    _ranked_save(run, 1, 0.9, keep=1)
    write = ckpt_tags.write_pointer

    def killed_at_the_pointer(run_dir, name, text):
        if name == ckpt_tags.BEST:
            raise KeyboardInterrupt  # the process dies here
        write(run_dir, name, text)

    monkeypatch.setattr(ckpt, "write_pointer", killed_at_the_pointer)  # as checkpoint.save calls it
    with pytest.raises(KeyboardInterrupt):
        _ranked_save(run, 2, 0.8, keep=1)
    monkeypatch.undo()
    assert best_tag(run) == "best_update_00000001" and _record(run) == [("best_update_00000002", 0.8)]
    prune(run, keep_last=1)
    assert _dirs(run) == ["best_update_00000001", "best_update_00000002"]
    assert _ranked_save(run, 3, 0.7, keep=1) == "best_update_00000003"  # the next best save tidies up
    assert _dirs(run) == ["best_update_00000003"] and best_tag(run) == "best_update_00000003"


# -- prune -------------------------------------------------------------------------------------------
def test_prune_keeps_the_newest_update_tags_and_every_tag_a_pointer_names(tmp_path):
    run = tmp_path / "run"
    _fake_tags(run, *(ckpt_tags.tag_for(u) for u in range(1, 7)), "best_update_00000002", "best_update_00000005",
               latest="update_00000003", best="best_update_00000002")
    prune(run, keep_last=2)
    # update tags: the newest two and the one latest names; best tags: the one best names (the
    # other is what a killed best save leaves behind)
    assert _dirs(run) == ["best_update_00000002", "update_00000003", "update_00000005", "update_00000006"]


def test_prune_keeps_the_tag_latest_names_in_the_best_family_too(tmp_path):
    run = tmp_path / "run"
    _fake_tags(run, "best_update_00000002", "best_update_00000004", "update_00000001",
               latest="best_update_00000002", best="best_update_00000004")
    prune(run, keep_last=0)  # 0: keep every update tag
    assert _dirs(run) == ["best_update_00000002", "best_update_00000004", "update_00000001"]


# -- resolve_tag -------------------------------------------------------------------------------------
def test_resolve_tag_follows_the_pointers_and_takes_tag_names_as_they_are(tmp_path):
    run = tmp_path / "run"
    _fake_tags(run, "update_00000002", "update_00000004", "best_update_00000002",
               latest="update_00000004", best="best_update_00000002")
    assert resolve_tag(run, "latest") == "update_00000004"
    assert resolve_tag(run, "best") == "best_update_00000002"
    assert resolve_tag(run, None) == "best_update_00000002"  # the default: best if there is one
    assert resolve_tag(run, "update_00000002") == "update_00000002"
    (ckpt_dir(run) / "best").unlink()
    assert resolve_tag(run, None) == "update_00000004"  # else latest


@pytest.mark.parametrize("tag", ["update_00000009", "best", "../run", ""])
def test_resolve_tag_names_the_run_the_tag_and_what_exists_when_missing(tmp_path, tag):
    run = tmp_path / "run"
    _fake_tags(run, "update_00000002", "update_00000004", latest="update_00000004")
    with pytest.raises(FileNotFoundError) as e:
        resolve_tag(run, tag)
    assert str(e.value) == (f"{run}: no checkpoint {tag!r} (tags: update_00000002, update_00000004; "
                            "latest -> update_00000004)")


def test_a_pointer_to_a_missing_tag_is_no_checkpoint(tmp_path):
    run = tmp_path / "run"
    _fake_tags(run, "update_00000002", latest="update_00000004", best="best_update_00000001")
    for tag in ("latest", "best", None):
        with pytest.raises(FileNotFoundError, match=r"no checkpoint '(latest|best)' \(tags: update_00000002\)$"):
            resolve_tag(run, tag)


# -- a best of the older layout (a directory) -----------------------------------------------------
def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_an_older_best_directory_is_used_with_one_warning_then_replaced(tmp_path, caplog):
    run = tmp_path / "run"
    _fake_tags(run, "update_00000004", "best", latest="update_00000004")
    with caplog.at_level(logging.WARNING, logger="ds_w2v.train"):
        assert resolve_tag(run, "best") == "best"
        assert resolve_tag(run, None) == "best"
    assert _warnings(caplog) == [f"{run}: checkpoints/best is a best checkpoint in the layout before the best "
                                 "pointer file; using it (the run's next best save replaces it)"] * 2
    with pytest.raises(OSError):  # a failed save leaves the old best as it was
        _save_best(run, 6, fail=True)
    assert (ckpt_dir(run) / "best" / MODEL_FILE).is_file() and _dirs(run) == ["best", "update_00000004"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ds_w2v.train"):
        assert _save_best(run, 6) == "best_update_00000006"
        assert resolve_tag(run, "best") == "best_update_00000006"
    assert (ckpt_dir(run) / "best").is_file() and _dirs(run) == ["best_update_00000006", "update_00000004"]
    assert _warnings(caplog) == []


def test_a_kill_between_the_renames_that_replace_an_older_best_keeps_it(tmp_path, caplog):
    """The older best directory is moved aside (best.replaced) before the pointer file takes its
    name; in between, best.replaced is the best."""
    run = tmp_path / "run"
    _fake_tags(run, "best.replaced", "best_update_00000006")
    with caplog.at_level(logging.WARNING, logger="ds_w2v.train"):
        assert resolve_tag(run, "best") == "best.replaced"
    assert "checkpoints/best.replaced is a best checkpoint in the layout before" in _warnings(caplog)[0]
    assert _save_best(run, 8) == "best_update_00000008"
    assert _dirs(run) == ["best_update_00000008"]


# -- through DeepSpeed -----------------------------------------------------------------------------
def _params(module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _export(run: Path, out: Path, *tag: str) -> dict[str, torch.Tensor]:
    assert cli(["export", str(run), str(out), *tag]) == 0
    return dict(load_model(out).named_parameters())


def test_best_and_latest_round_trip_through_deepspeed_and_export(ravdess_shards, tmp_path, caplog, capsys):
    pytest.importorskip("deepspeed")
    from ds_w2v.train.config import load_config
    from ds_w2v.train.trainer import Trainer

    run = tmp_path / "cls"
    trainer = Trainer(load_config("finetune_cls_tiny", [
        f"data.shards={ravdess_shards}", f"run_dir={run}", "precision=fp32", "data.batch_s=12", "global_batch_s=24",
        "data.shuffle_buffer=16", "max_updates=10", "freeze_transformer_updates=0", "device=cpu"]))
    trainer.train_step()
    trainer.save()  # update_00000001, latest
    at_latest = _params(trainer.module)
    trainer.train_step()
    trainer.save("best", latest=False)  # the trainer's call when dev improves
    at_best = _params(trainer.module)
    trainer.train_step()
    assert not _equal(_params(trainer.module), at_best)
    assert latest_tag(run) == "update_00000001" and best_tag(run) == "best_update_00000002"

    client = ckpt.load(trainer.engine, run, "best")  # as before the final test evaluation
    assert client["update"] == 2 and _equal(_params(trainer.module), at_best)
    assert _equal(_export(run, tmp_path / "latest.pt", "--tag", "latest"), at_latest)
    assert _equal(_export(run, tmp_path / "best.pt", "--tag", "best"), at_best)
    assert _equal(_export(run, tmp_path / "default.pt"), at_best)
    assert _equal(_export(run, tmp_path / "named.pt", "--tag", "update_00000001"), at_latest)
    capsys.readouterr()  # (zero_to_fp32's progress bars)
    assert cli(["export", str(run), str(tmp_path / "x.pt"), "--tag", "update_00000007"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"ds-w2v export: error: {run}: no checkpoint 'update_00000007' (tags: best_update_00000002, "
        "update_00000001; latest -> update_00000001; best -> best_update_00000002)")

    # the same run as an older version left it: checkpoints/best a directory
    (ckpt_dir(run) / "best").unlink()
    (ckpt_dir(run) / "best_update_00000002").rename(ckpt_dir(run) / "best")
    ckpt.load(trainer.engine, run, "latest")
    with caplog.at_level(logging.WARNING, logger="ds_w2v.train"):
        assert ckpt.load(trainer.engine, run, "best")["update"] == 2
        assert _equal(_params(trainer.module), at_best)
        assert _equal(dict(ckpt_export.model_from_run(run).named_parameters()), at_best)  # model.init=RUN_DIR
        assert _equal(_export(run, tmp_path / "old.pt", "--tag", "best"), at_best)
    assert len(_warnings(caplog)) == 3 and all("checkpoints/best is a best checkpoint in the layout before"
                                               in w for w in _warnings(caplog))
    # its next best save: the new layout, the old directory gone
    trainer.train_step()
    at_new_best, new_best = _params(trainer.module), f"best_update_{trainer.update:08d}"
    trainer.save("best", latest=False)
    assert (ckpt_dir(run) / "best").is_file() and best_tag(run) == new_best
    assert _dirs(run) == [new_best, "update_00000001"]
    trainer.train_step()
    assert ckpt.load(trainer.engine, run, "best")["update"] == trainer.update - 1
    assert _equal(_params(trainer.module), at_new_best)
    shutil.rmtree(ckpt_dir(run) / new_best)  # a pointer to nothing: one clear line
    with pytest.raises(FileNotFoundError, match=r"no checkpoint 'best' \(tags: update_00000001; latest -> "):
        ckpt.load(trainer.engine, run, "best")
