"""One writer per run directory: ``RUN_DIR/.lock``, taken before anything is written there.

Two runs started in one ``run_dir`` used to both exit 0 with two rows per update in metrics.jsonl,
the first run's weights gone and config.yaml naming one of them. The lock holds the holder's pid,
its process start time (so a recycled pid is not mistaken for it), host, start time and command;
it is created with ``O_CREAT | O_EXCL`` (atomic on local filesystems and NFSv3+).

- held by a live process: refused in one line naming the holder;
- held by a process that is gone on this host (a ``kill -9``, a crash): taken over with a warning,
  which is how a resume after a kill proceeds;
- held from another host: refused (its liveness cannot be checked from here) with the line to
  delete it by hand;
- held by this very process (a trainer built twice in one Python process, as tests do): re-taken.

Rank 0 holds it for a multi-process run; it is removed when the run ends (``release``, and at exit).
"""
from __future__ import annotations

import atexit
import json
import logging
import os
import shlex
import socket
import sys
import time
from pathlib import Path

log = logging.getLogger("ds_w2v.train")
LOCK_NAME = ".lock"


def _proc_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22), or None where
    there is no /proc or no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # fields after the command name, which may hold spaces


def _alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    now = _proc_start(pid)
    return start is None or now is None or now == start


def _holder(info: dict) -> str:
    return (f"pid {info.get('pid')} on host {info.get('host')} since {info.get('started')} "
            f"({info.get('command', '?')})")


class RunLock:
    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_NAME
        self.held = False

    def acquire(self) -> "RunLock":
        """Take the lock or raise ValueError (one line). Creates ``run_dir`` if needed."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        pid = os.getpid()
        mine = {"pid": pid, "pid_start": _proc_start(pid), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                "command": shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])[:300]}
        for _ in range(10):  # a stale lock is removed, then created again (another process may race us)
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._clear_stale(mine)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(mine, f)
            self.held = True
            atexit.register(self.release)
            return self
        raise ValueError(f"run_dir {self.path.parent}: could not take its lock {self.path} (taken and released "
                         "by other processes meanwhile); try again")

    def _clear_stale(self, mine: dict) -> None:
        """Remove a lock whose holder is gone (or is this process); raise when it is alive."""
        try:
            info = json.loads(self.path.read_text() or "{}")
        except FileNotFoundError:
            return  # released meanwhile
        except (OSError, ValueError):
            info = {}  # cut short: its holder was killed while writing it, or is writing it now
        if not info:
            try:
                if time.time() - self.path.stat().st_mtime < 2.0:  # being written: look again
                    time.sleep(0.5)
                    return
            except FileNotFoundError:
                return
        pid = info.get("pid")
        same_host = info.get("host") == mine["host"]
        if isinstance(pid, int) and same_host and pid == mine["pid"] and info.get("pid_start") == mine["pid_start"]:
            pass  # this process took it before (a second trainer in one process): take it again
        elif isinstance(pid, int) and same_host and _alive(pid, info.get("pid_start")):
            raise ValueError(f"run_dir {self.path.parent} is in use by {_holder(info)}: one run writes a run "
                             "directory; wait for it, stop it, or choose another run_dir")
        elif info and not same_host:
            raise ValueError(f"run_dir {self.path.parent} is locked by {_holder(info)}, on another host: if that run "
                             f"is gone, delete {self.path} and start again")
        else:
            log.warning("run_dir %s: taking over the lock of %s, which is no longer running", self.path.parent,
                        _holder(info) if info else "a process that left an unreadable lock")
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        try:
            info = json.loads(self.path.read_text())
            if info.get("pid") == os.getpid():
                self.path.unlink()
        except (OSError, ValueError):
            pass


def die_with_launcher() -> None:
    """Under a launcher (torchrun, deepspeed), end this rank when the process that started it dies:
    a launcher killed alone used to leave its ranks training unsupervised, and a restart then made
    two writers. Linux only (prctl PR_SET_PDEATHSIG); elsewhere a no-op. A single process started
    from a shell is left alone (nohup must keep working)."""
    if "LOCAL_RANK" not in os.environ or not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        parent = os.getppid()
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent or parent == 1:  # the launcher died before the call: go now
            os.kill(os.getpid(), signal.SIGTERM)
    except (OSError, AttributeError):
        pass
