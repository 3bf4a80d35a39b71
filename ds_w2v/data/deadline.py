"""Reads with a deadline: a shard stream that sends nothing for ``timeout_s`` is cut off.

WebDataset reads http(s) shards through ``curl`` (no ``--max-time``) and ``pipe:`` shards through
the user's command; a server that accepts the connection and never answers, or a command that
hangs, used to stall the whole run with no output (stopped from outside after 150 s). A
:class:`DeadlineReader` reads the stream on a helper thread in chunks; the training thread waits
for each chunk at most ``timeout_s`` seconds, then kills the command behind the stream (which ends
the helper's blocked read) and raises :class:`ReadTimeout`, which the stream's shard handler turns
into an ``unreachable_shard`` (nothing came) or ``bad_shard`` (it stalled midway) skip: a warning,
counted, and the other shards go on.
"""
from __future__ import annotations

import errno
import os
import queue
import signal
import threading
from pathlib import Path
from typing import Any

CHUNK_BYTES = 1 << 20  # per read on the helper thread: a shard's members are ~100 KB-1 MB of audio


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid``, from /proc (empty where there is none)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class ReadTimeout(OSError):
    """No byte arrived for ``timeout_s`` seconds."""

    def __init__(self, timeout_s: float):
        super().__init__(errno.ETIMEDOUT, f"sent nothing for {timeout_s:g} s (data.read_timeout_s)")
        self.timeout_s = timeout_s


class DeadlineReader:
    """A read-only file object over ``stream`` whose every read waits at most ``timeout_s``.
    Other attributes (a WebDataset ``Pipe``'s ``proc`` and ``args``) are the inner stream's."""

    def __init__(self, stream: Any, timeout_s: float):
        self._stream, self.timeout_s = stream, timeout_s
        self._chunks: queue.Queue = queue.Queue(maxsize=4)  # bounded: at most ~4 MiB read ahead
        self._buffer = bytearray()
        self._eof = False
        self._failed: BaseException | None = None
        self._thread = threading.Thread(target=self._pump, name="shard-read", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        try:
            while True:
                chunk = self._stream.read(CHUNK_BYTES)
                self._chunks.put(chunk)
                if not chunk:
                    return
        except BaseException as e:  # noqa: BLE001 -- handed to the reading thread, which raises it
            self._chunks.put(e)

    def _fill(self) -> bool:
        """One more chunk into the buffer; False at the end of the stream."""
        if self._eof:
            return False
        try:
            item = self._chunks.get(timeout=self.timeout_s)
        except queue.Empty:
            self._kill()
            self._failed = ReadTimeout(self.timeout_s)
            raise self._failed from None
        if isinstance(item, BaseException):
            self._failed = item
            raise item
        if not item:
            self._eof = True
            return False
        self._buffer += item
        return True

    def read(self, n: int = -1) -> bytes:
        if self._failed is not None:
            raise self._failed
        if n is None or n < 0:
            while self._fill():
                pass
            n = len(self._buffer)
        while len(self._buffer) < n and self._fill():
            pass
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        return out

    def _kill(self) -> None:
        """End the command behind the stream (curl, a pipe: command) and what it started (a pipe:
        URL runs under ``sh -c``: its ``curl``/``aws`` child holds the pipe open after ``sh`` ends),
        so that the blocked read sees the end of the stream."""
        proc = getattr(self._stream, "proc", None)
        if proc is None:
            return
        for pid in [*_descendants(proc.pid), proc.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def close(self) -> None:
        if self._failed is not None:
            self._kill()  # a stalled command: Pipe.close would wait for it (its default: 2 hours)
        try:
            self._stream.close()
        except Exception:  # noqa: BLE001 -- a killed command's non-zero status; the skip is already counted
            pass

    def readable(self) -> bool:
        return True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
