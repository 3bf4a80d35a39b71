"""kill -9 while a new best checkpoint is being written: the best that was there is kept.

A ``tiny`` CPU fp32 classification fine-tune (the real console script, ``ds-w2v finetune-cls``)
evaluates after every update, with settings under which every evaluation is a new best: the head
alone trains (``freeze_transformer_updates`` = all, conv encoder frozen) and "dev" is the first
two batches of the training split, scored by loss, so the loss on them falls at each update (and
"test" is the training split too: one actor, 60 utterances, is all the data). The
test polls ``checkpoints/`` every 2 ms and SIGKILLs the process group as soon as a best tag newer
than the one ``checkpoints/best`` names appears, i.e. while DeepSpeed writes that new best's
files and before the pointer moves (no pause hook: a save takes ~0.1 s; the kill has so far
landed with the model file there, being written, and no optimizer file yet). Then ``checkpoints/best`` still names the
earlier, complete best; ``ds-w2v export --tag best`` writes it and the model file loads; the
metrics show the interrupted save was a genuine new best; no process of the run is left. The
same command run again (from scratch: no ``latest``) finishes, its best saves step around the
tag ``best`` names and remove the interrupted one, and its test evaluation loads its best.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ds_w2v import load_model
from ds_w2v.cli import main as cli
from ds_w2v.train.checkpoint_tags import BEST_TAG_RE, best_tag, ckpt_dir, resolve_tag

sys.path.insert(0, str(Path(__file__).parent))  # pytest runs with --import-mode=importlib
from reliability_helpers import metrics_rows, subprocess_env  # noqa: E402

pytest.importorskip("deepspeed")
pytestmark = pytest.mark.slow

NUM_UPDATES = 12  # a new best at each: 11 chances to land inside one save
ATTEMPTS = 3
RUN_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def emotion_shards(tmp_path_factory) -> Path:
    """One RAVDESS actor (60 utterances, ~3 min): the train split (the default actor split puts
    actor 1 in train)."""
    root = tmp_path_factory.mktemp("ravdess")
    assert cli(["synth", "ravdess", "--out", str(root / "RAVDESS"), "--actors", "1", "--workers", "2",
                "--overwrite"]) == 0
    assert cli(["prepare", "--format", "ravdess", str(root / "RAVDESS"), "--out", str(root / "shards"),
                "--workers", "2", "--no-progress"]) == 0
    return root / "shards"


def _command(shards: Path, run_dir: Path) -> list[str]:
    return [str(Path(sys.executable).parent / "ds-w2v"), "finetune-cls", "--recipe", "finetune_cls_tiny",
            f"data.shards={shards}", f"run_dir={run_dir}", "precision=fp32", "data.batch_s=12", "global_batch_s=24",
            "data.shuffle_buffer=16", "model.overrides.encoder_layerdrop=0.0", "model.overrides.feature_grad_mult=0.0",
            f"max_updates={NUM_UPDATES}", f"freeze_transformer_updates={NUM_UPDATES}", "optim.lr=2e-3",
            "log_every=1", "eval_every=1", "save_every=1000", "data.dev_split=train", "eval_max_batches=2",
            "best_metric=loss", "data.test_split=train", "device=cpu"]


def _update_of(tag: str) -> int:
    return int(BEST_TAG_RE.match(tag).group(1))


def _best_being_written(run_dir: Path) -> tuple[str, str] | None:
    """(the tag best names, a newer best tag): a new best is being saved, its pointer not moved."""
    current = best_tag(run_dir)
    if current is None:
        return None
    try:
        newer = [p for p in ckpt_dir(run_dir).iterdir()
                 if BEST_TAG_RE.match(p.name) and _update_of(p.name) > _update_of(current)]
    except FileNotFoundError:  # a directory removed while we looked
        return None
    return (current, newer[0].name) if newer else None


def _gone(pgid: int, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def _kill_during_a_best_save(shards: Path, run_dir: Path, stderr_path: Path) -> tuple[str, str] | None:
    with open(stderr_path, "w") as stderr:
        proc = subprocess.Popen(_command(shards, run_dir), env=subprocess_env(), stdout=subprocess.DEVNULL,
                                stderr=stderr, start_new_session=True)
    hit = None
    try:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while proc.poll() is None and hit is None:
            if time.monotonic() > deadline:
                pytest.fail(f"the fine-tune made no progress in {RUN_TIMEOUT_S} s: {stderr_path.read_text()[-2000:]}")
            hit = _best_being_written(run_dir)
            if hit is None:
                time.sleep(0.002)
        if hit is not None:
            with contextlib.suppress(ProcessLookupError):  # it may have ended by itself just now
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert _gone(proc.pid), "a process of the killed run is still alive"
    if hit is None:
        assert proc.returncode == 0, stderr_path.read_text()[-3000:]
    return hit


def test_sigkill_while_a_new_best_is_written_keeps_the_previous_best(emotion_shards, tmp_path):
    for attempt in range(1, ATTEMPTS + 1):
        run = tmp_path / f"run{attempt}"
        hit = _kill_during_a_best_save(emotion_shards, run, tmp_path / f"stderr{attempt}.txt")
        if hit and best_tag(run) == hit[0]:  # (not if that save completed between the look and the kill)
            break
    else:
        pytest.fail(f"{ATTEMPTS} runs ended before a kill landed inside a best save")
    earlier, interrupted = hit
    left = sorted(p.name for p in (ckpt_dir(run) / interrupted).iterdir())
    print(f"killed in attempt {attempt} while {interrupted} was written ({left}); best: {earlier}")

    # best still names the earlier tag, which is complete; the interrupted one is newer
    assert best_tag(run) == earlier == resolve_tag(run, "best") and _update_of(interrupted) > _update_of(earlier)
    files = sorted(p.name for p in (ckpt_dir(run) / earlier).iterdir())
    assert any(f.endswith("model_states.pt") for f in files) and any(f.endswith("optim_states.pt") for f in files)
    assert not (run / "results.json").exists()
    # the interrupted save was a new best: its dev loss (logged just before the save) is lower
    dev = {r["update"]: r["dev/loss"] for r in metrics_rows(run) if "dev/loss" in r}
    assert dev[_update_of(interrupted)] < dev[_update_of(earlier)] == min(v for u, v in dev.items()
                                                                         if u <= _update_of(earlier))
    # export writes the earlier best, and the model file loads
    out = tmp_path / "best.pt"
    assert cli(["export", str(run), str(out), "--tag", "best"]) == 0
    model = load_model(out)
    assert model.task == "cls" and model._num_updates == _update_of(earlier)

    # the same command again: from scratch (no latest), it reaches the end and loads its best
    done = subprocess.run(_command(emotion_shards, run), env=subprocess_env(), capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((run / "results.json").read_text())
    assert result["best_update"] == NUM_UPDATES and _update_of(best_tag(run)) == NUM_UPDATES and "test" in result
    assert [p.name for p in ckpt_dir(run).iterdir() if BEST_TAG_RE.match(p.name)] == [best_tag(run)]
