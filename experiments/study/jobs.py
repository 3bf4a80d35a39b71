"""The study's jobs, for the demo's runner (``experiments.demo.run_jobs``: dependencies, two at a time
on a CPU with one torch thread each, a finished run reused): the demo's :class:`~experiments.demo.Job`
with what the study needs beyond it:

* a run that diverges (exit 3: ``max_bad_updates`` non-finite updates in a row, what a too high
  lr of a grid does) is a result, not a failure: ``results.json`` gets ``{"diverged": true}``
  and the study goes on;
* a job whose ``skip()`` gives a reason when it is due (the HF reference it would probe was
  skipped; every lr of a grid diverged) records ``{"skipped": reason}`` instead of running;
* the command line may be decided when the job starts (``argv`` a callable), and
  :class:`ChosenJob`'s run directory too (the chosen lr of an arm's grid).

Every job is a subprocess through a real entry point: trainer runs through
``launch/_launch.sh COMMAND --recipe R run_dir=D key=value...`` (as ``launch/pretrain.sh`` & co.
start them: one process on a CPU, ``deepspeed`` over the GPUs), the rest ``python -m ...``.
"""
from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from typing import Callable

from ..demo import Job

ROOT = Path(__file__).resolve().parents[2]
DIVERGED_EXIT = 3  # commands/train.py (TrainingAborted) and hf_reference.py: non-finite updates in a row


class StudyJob(Job):
    """``argv`` (or a callable giving it when the job starts) run from the repository root; its
    result is ``run_dir/results.json``; its output goes to ``run_dir``'s ``.log`` next to it."""

    def __init__(self, name: str, argv: list[str] | Callable[[], list[str]], run_dir: Path,
                 needs: tuple[str, ...] = (), skip: Callable[[], str | None] | None = None,
                 current: Callable[[dict], bool] | None = None):
        super().__init__(name, "", [], run_dir, needs)
        self._argv = argv
        self.skip = skip or (lambda: None)
        self._skipped: str | None = None
        self.current = current
        """Whether a finished result still stands for what the job would run now (a probe of
        an arm's chosen run is stale once the arm chooses another lr); None: always."""

    def cached(self) -> bool:
        return super().cached() and (self.current is None or self.current(self.result))

    def argv(self) -> list[str]:
        return self._argv() if callable(self._argv) else self._argv

    def shown(self, argv: list[str]) -> str:
        return shlex.join(["python", *argv[1:]] if argv[0] == sys.executable else argv)

    def start(self, threads: int | None) -> subprocess.Popen:
        self._skipped = self.skip()
        if self._skipped:
            print(f"  [{self.name}] skipped: {self._skipped}", flush=True)
            self._begin()
            return subprocess.Popen([sys.executable, "-c", ""])
        return super().start(threads)

    def finish(self, returncode: int) -> None:
        if self._skipped:
            self._end()
            return self.record({"skipped": self._skipped})
        if returncode == DIVERGED_EXIT:
            self._end()
            self.record({"diverged": True, "log_tail": self.log.read_text().splitlines()[-3:]})
            print(f"  [{self.name}] diverged (non-finite updates) after {self.wall_s:.0f} s: recorded", flush=True)
            return
        super().finish(returncode)


def trainer_argv(command: str, recipe: str, run_dir: Path, overrides: list[str]) -> list[str]:
    return ["bash", str(ROOT / "launch" / "_launch.sh"), command, "--recipe", recipe, f"run_dir={run_dir}", *overrides]


def train_job(name: str, command: str, recipe: str, run_dir: Path, overrides: list[str],
              needs: tuple[str, ...] = ()) -> StudyJob:
    """``ds-w2v COMMAND --recipe RECIPE run_dir=RUN_DIR OVERRIDES`` (pretrain, finetune-ctc, finetune-cls)."""
    return StudyJob(name, trainer_argv(command, recipe, run_dir, overrides), run_dir, needs)


def python_job(name: str, args: list[str] | Callable[[], list[str]], run_dir: Path, needs: tuple[str, ...] = (),
               skip: Callable[[], str | None] | None = None, current: Callable[[dict], bool] | None = None) -> StudyJob:
    """``python ARGS`` (``-m ds_w2v probe ...``, ``-m experiments.study.hf_reference ...``)."""
    argv = (lambda: [sys.executable, *args()]) if callable(args) else [sys.executable, *args]
    return StudyJob(name, argv, run_dir, needs, skip, current)


class ChosenJob(StudyJob):
    """A trainer run whose run directory and overrides come from ``resolve()`` -> (run_dir,
    overrides), or a str saying why there is nothing to run, or None while the runs it reads
    are unfinished; called when its ``needs`` are done (and by ``cached`` if they already were)."""

    def __init__(self, name: str, command: str, recipe: str,
                 resolve: Callable[[], tuple[Path, list[str]] | str | None], needs: tuple[str, ...], placeholder: Path):
        super().__init__(name, [], placeholder, needs, skip=lambda: self._reason)
        self.command, self.recipe, self._resolve = command, recipe, resolve
        self._reason: str | None = None
        self.resolved = False
        self._reused = False

    def _try_resolve(self) -> bool:
        if not self.resolved:
            got = self._resolve()
            if got is None:
                return False
            if isinstance(got, str):
                self._reason = got
            else:
                run_dir, overrides = got
                self.set_run_dir(run_dir)
                self._argv = trainer_argv(self.command, self.recipe, run_dir, overrides)
            self.resolved = True
        return True

    def cached(self) -> bool:
        return self._try_resolve() and super().cached()

    def start(self, threads: int | None) -> subprocess.Popen:
        if not self._try_resolve():
            raise RuntimeError(f"{self.name}: the runs it depends on have no results")
        # Its grid finished in this invocation, so the runner could not see at the start that the
        # chosen run had finished in an earlier one. Rerunning it would resume a finished run:
        # a second test evaluation, and its results.json and log rewritten with the resume's time
        self._reused = not self._reason and Job.cached(self)
        if self._reused:
            print(f"  [{self.name}] reused: {self.run_dir} (finished in an earlier run)", flush=True)
            return subprocess.Popen([sys.executable, "-c", ""])
        return super().start(threads)

    def finish(self, returncode: int) -> None:
        if not self._reused:
            super().finish(returncode)
