"""A command under a wall-clock limit, in a process group of its own, killed as a group.

    code, seconds = run_timeboxed(["python", "-m", "pytest", ...], timeout_s=120, log=Path("tests.log"))
    # code: the exit status, or None when the limit cut it (the whole group was killed)

``subprocess.run(timeout=...)`` kills only its direct child: a pytest's training subprocess, a
DeepSpeed build's ninja and nvcc, a DataLoader's workers live on and hold the GPU, a build lock
or the CPU while the next step runs. Here the command starts a new session
(``start_new_session``: its pid is its process group's id, which every descendant inherits unless
it starts a session of its own), and when it ends — by itself or by the limit — the group gets
SIGTERM, ``grace_s`` seconds to exit, then SIGKILL, so nothing it started outlives it.

Its stdout and stderr go to ``log`` as they come (a step cut by the limit still leaves what it
printed); :func:`tail` reads the end back.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

GRACE_S = 5.0  # between SIGTERM and SIGKILL: long enough for a process to flush its files


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member changed its user: it exists
        return True
    return True


def _wait_empty(proc: subprocess.Popen, pgid: int, wait_s: float) -> bool:
    """Whether the group emptied within ``wait_s`` seconds."""
    end = time.monotonic() + wait_s
    while True:
        proc.poll()  # reap the leader: a zombie leader still counts as a member
        if not _group_alive(pgid):
            return True
        if time.monotonic() >= end:
            return False
        time.sleep(0.05)


def kill_group(proc: subprocess.Popen, grace_s: float = GRACE_S) -> None:
    """SIGTERM to ``proc``'s process group, SIGKILL after ``grace_s`` if any member is left; reaps ``proc``."""
    pgid = proc.pid  # start_new_session: the leader's pid is the group's id, even after the leader exits
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break  # the group is empty
        if _wait_empty(proc, pgid, wait_s):
            break
    try:
        proc.wait(timeout=2.0)
    except subprocess.TimeoutExpired:  # pragma: no cover -- SIGKILL cannot be ignored
        pass


def run_timeboxed(cmd: list[str], timeout_s: float, log: Path, *, cwd: str | Path | None = None,
                  env: dict[str, str] | None = None, grace_s: float = GRACE_S) -> tuple[int | None, float]:
    """(exit status, or None when ``timeout_s`` cut it; seconds it ran). The command's output is
    written to ``log`` as it comes; its process group is killed when it ends, either way."""
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        code: int | None = None
        try:
            code = proc.wait(timeout=max(0.1, timeout_s))
        except subprocess.TimeoutExpired:
            code = None
        finally:  # the limit, an exception, or a signal to this process: nothing it started survives
            kill_group(proc, grace_s)
    return code, time.monotonic() - start


def tail(log: Path, chars: int) -> str:
    """The last ``chars`` characters of ``log`` (undecodable bytes replaced); '' if it is missing."""
    try:
        with open(log, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 4 * chars))
            text = f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""
    return text[-chars:]
