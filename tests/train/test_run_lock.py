"""One writer per run directory (ds_w2v/train/run_lock.py): a second run in the same run_dir is
refused in one line naming the holder, a lock left by a dead run is taken over, and a rank ends
when its launcher dies."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ds_w2v.train.run_lock import LOCK_NAME, RunLock, _proc_start

BIN = Path(sys.executable).parent


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_live_holder_is_named_and_the_second_run_refused(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": holder.pid, "pid_start": _proc_start(holder.pid),
                                                      "host": socket.gethostname(), "started": "then",
                                                      "command": "ds-w2v pretrain x"}))
        with pytest.raises(ValueError, match=rf"^run_dir {tmp_path} is in use by pid {holder.pid} on host "
                                             r"\S+ since then \(ds-w2v pretrain x\): one run writes a run directory"):
            RunLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()


def test_a_lock_left_by_a_dead_run_is_taken_over_with_a_warning(tmp_path, caplog):
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname(),
                                                  "started": "then", "command": "killed"}))
    lock = RunLock(tmp_path).acquire()
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert any("taking over the lock" in r.getMessage() and "no longer running" in r.getMessage()
               for r in caplog.records)
    lock.release()
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_recycled_pid_is_not_the_holder(tmp_path):
    # the pid is alive (this test process's parent) but the lock says it started at another time: a recycled pid
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": os.getppid(), "pid_start": "1", "host": socket.gethostname()}))
    RunLock(tmp_path).acquire().release()


def test_a_lock_from_another_host_is_refused_with_the_way_out(tmp_path):
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": "then", "command": "c"}))
    with pytest.raises(ValueError, match=rf"on another host: if that run is gone, delete {tmp_path / LOCK_NAME}"):
        RunLock(tmp_path).acquire()


def test_the_same_process_takes_its_own_lock_again(tmp_path):
    first = RunLock(tmp_path).acquire()
    second = RunLock(tmp_path).acquire()  # a trainer built twice in one process
    assert first.held and second.held
    second.release()
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_rank_ends_when_its_launcher_dies(tmp_path):
    """A fake launcher starts a rank (LOCAL_RANK set) that calls die_with_launcher and sleeps; the
    launcher is killed with SIGKILL; the rank must end (SIGTERM from the kernel) within seconds."""
    pid_file = tmp_path / "rank.pid"
    rank = (f"import os, time; from ds_w2v.train.run_lock import die_with_launcher; die_with_launcher(); "
            f"open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)")
    launcher = (f"import os, subprocess, sys, time; "
                f"subprocess.Popen([sys.executable, '-c', {rank!r}], env={{**os.environ, 'LOCAL_RANK': '0'}}); "
                "time.sleep(120)")
    parent = subprocess.Popen([sys.executable, "-c", launcher])
    deadline = time.time() + 60
    while not pid_file.exists() and time.time() < deadline:
        time.sleep(0.2)
    rank_pid = int(pid_file.read_text())
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            os.kill(rank_pid, 0)
        except ProcessLookupError:
            return
        state = Path(f"/proc/{rank_pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "Z":  # ended, not yet reaped by init
            return
        time.sleep(0.2)
    os.kill(rank_pid, signal.SIGKILL)
    pytest.fail("the rank kept running after its launcher died")


@pytest.mark.slow
def test_two_runs_started_in_one_run_dir_through_the_console_script(small_timit_shards, tmp_path):
    """The issue's case: one command each, started together. The second is refused in one line,
    exit 1, before writing anything; the first finishes alone (one row per update)."""
    pytest.importorskip("deepspeed")
    run = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k not in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE",
                                                              "LOCAL_RANK", "LOCAL_SIZE")}
    env["DS_ACCELERATOR"] = "cpu"
    cmd = [str(BIN / "ds-w2v"), "pretrain", "--recipe", "pretrain_tiny", f"data.shards={small_timit_shards}",
           f"run_dir={run}", "max_updates=4", "precision=fp32", "data.batch_s=8", "global_batch_s=16", "log_every=1",
           "eval_every=1000", "save_every=1000", "data.dev_split=null", "device=cpu"]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run / LOCK_NAME).exists() and time.time() < deadline and first.poll() is None:
        time.sleep(0.1)
    second = subprocess.run(cmd + ["seed=2"], env=env, capture_output=True, text=True, timeout=300)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-3000:]
    assert second.returncode == 1
    line = second.stderr.strip().splitlines()[-1]
    assert line.startswith(f"ds-w2v pretrain: error: run_dir {run} is in use by pid {first.pid} on host ")
    rows = [json.loads(r) for r in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["update"] for r in rows if "train/loss" in r] == [1, 2, 3, 4]
    import yaml

    assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == 1  # the second wrote nothing
    assert not (run / LOCK_NAME).exists()  # released at the end
