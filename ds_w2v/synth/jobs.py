"""Run synthesis jobs in parallel, each from a pristine libespeak-ng state.

Why the fork per job: libespeak-ng keeps state across utterances that its API cannot reset
(the pitch-flutter index is a function-static in the wave generator, and phoneme boundaries
snap to pitch periods), so the same text twice in a row comes out a few samples different.
The output of an utterance therefore depends on everything the process synthesised before.
To make a corpus byte-identical for a seed *whatever the number of workers*, every job (one
speaker, one actor) runs in a child forked from a worker that has never synthesised; inside a
job the order of utterances is fixed, so its output is a function of the job alone.

Workers are *spawned* (not forked from the caller), so a caller that has itself used espeak
(a test, a notebook) cannot leak its state into the corpus. A fork costs a few milliseconds,
against ~50 ms of synthesis per job.
"""
from __future__ import annotations

import multiprocessing
import os
import pickle
import sys
from dataclasses import dataclass
from typing import Any, Callable


def run_isolated(fn: Callable[[Any], Any], arg: Any) -> Any:
    """``fn(arg)`` in a forked child; returns its (picklable) result or re-raises its error."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        code = 0
        try:
            payload = pickle.dumps((True, fn(arg)))
        except BaseException as e:  # report any failure to the parent, never fall through
            payload = pickle.dumps((False, RuntimeError(f"{type(e).__name__}: {e}")))
            code = 1
        try:
            with os.fdopen(write_fd, "wb") as f:
                f.write(payload)
        finally:
            sys.stdout.flush()
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    if not data:
        raise RuntimeError("synthesis child died without a result")
    ok, value = pickle.loads(data)
    if not ok:
        raise value
    return value


class _Isolated:
    """Picklable wrapper: call ``fn`` on a job inside :func:`run_isolated`."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, job):
        return run_isolated(self.fn, job)


def run_jobs(work: Callable[[Any], tuple[int, float]], jobs: list, workers: int) -> tuple[int, float]:
    """Run ``work(job) -> (num_files, audio_s)`` over ``jobs`` in ``workers`` spawned processes.

    ``work`` must be a module-level function. Returns the summed (num_files, audio_s).
    """
    if not jobs:
        return 0, 0.0
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(min(workers, len(jobs))) as pool:
        results = list(pool.imap_unordered(_Isolated(work), jobs))
    return sum(r[0] for r in results), sum(r[1] for r in results)


@dataclass
class BuildReport:
    """What a build wrote: ``num_files`` audio files, ``audio_s`` seconds of audio, ``wall_s``."""

    num_files: int
    audio_s: float
    wall_s: float

    @property
    def realtime_factor(self) -> float:
        return self.audio_s / max(self.wall_s, 1e-9)
