"""A time-boxed sequence of steps for one command on a lent machine (the GPU check, the GPU study):
each step a function given its budget in seconds, whose commands run in process groups of their
own (``timebox.py``); a step that fails is a result and the next one runs; nothing runs past the
deadline; and what was measured is on disk as it comes: ``results.json``, ``summary.md`` and
``log.txt`` under ``out`` are rewritten (atomically) after every step and every row a step adds
with :meth:`StepRunner.partial`. Subclasses give the steps, ``render`` (the summary) and
``failures`` (what makes the exit status non-zero).
"""
from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ds_w2v.train import op_record
from .timebox import GRACE_S, run_timeboxed, tail

ROOT = Path(__file__).resolve().parents[2]
TAIL_CHARS = 4000  # of each command's output kept in log.txt
MIN_STEP_S = 5.0  # a step with less than this left is skipped, not started


@dataclass
class StepResult:
    status: str  # ok | failed | timeout | skipped | running
    seconds: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)
    error: str = ""


class _Partial:
    """A step's figures so far: ``update`` writes them to disk at once (the step is still running)."""

    def __init__(self, runner: "StepRunner", name: str, t0: float):
        self.runner, self.name, self.t0, self.data = runner, name, t0, {}

    def update(self, **data: Any) -> None:
        self.data.update(data)
        self.runner.results[self.name] = StepResult("running", time.monotonic() - self.t0, dict(self.data))
        self.runner.write()


class StepRunner:
    """Steps within ``minutes`` from now; ``out`` holds what comes back, ``work`` everything else
    (each command's whole output in ``work/logs``, corpora, runs)."""

    title = "steps"

    def __init__(self, out: Path, work: Path, python: str, minutes: float, dry_run: bool):
        self.out, self.work, self.python, self.minutes, self.dry_run = out, work, python, minutes, dry_run
        self.deadline = time.monotonic() + minutes * 60
        self.results: dict[str, StepResult] = {}
        self.log: list[str] = []
        self.started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        self._partial: _Partial | None = None

    def remaining_s(self) -> float:
        return self.deadline - time.monotonic()

    def env(self) -> dict[str, str]:
        """Every command's environment: the checkout first on PYTHONPATH, no launcher variables, the
        op-build record (``op_record``: a build that failed is not tried again), CPU-only on a dry run."""
        env = {k: v for k, v in os.environ.items()
               if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT", "MASTER_ADDR")}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
        env["PYTHONUNBUFFERED"] = "1"
        env[op_record.ENV] = str(self.work / "op_record")
        if self.dry_run:
            env.update(DS_ACCELERATOR="cpu", DS_W2V_GPU_TESTS_ON_CPU="1", CUDA_VISIBLE_DEVICES="")
        return env

    def run_cmd(self, name: str, cmd: list[str], timeout_s: float) -> tuple[int | None, str]:
        """(exit code, or None when ``timeout_s`` cut it; output tail). The command runs in its own
        process group, killed as a group when it ends; its output goes to ``work/logs/`` as it
        comes, and its command and tail to log.txt. Never runs past the deadline."""
        timeout_s = max(1.0, min(timeout_s, self.remaining_s() - GRACE_S))
        log = self.work / "logs" / (name.replace(" ", "_").replace("/", "_") + ".log")
        self.log.append(f"## {name}: {' '.join(cmd)}")
        code, _ = run_timeboxed(cmd, timeout_s, log, cwd=ROOT, env=self.env())
        text = tail(log, TAIL_CHARS)
        if code is None:
            text += f"\n[timed out after {timeout_s:.0f} s; its process group was killed]"
        self.log.append(text)
        return code, text

    def partial(self, **data: Any) -> None:
        """Record the running step's figures so far (written to disk now)."""
        if self._partial is not None:
            self._partial.update(**data)

    def step(self, name: str, fn: Callable[[float], dict[str, Any]], budget: float) -> None:
        """Run ``fn(budget)`` (at most ``budget`` seconds, less if the deadline is nearer) as step
        ``name``: its dict is the step's data, ``_status`` / ``_error`` in it its outcome."""
        budget = min(budget, self.remaining_s() - GRACE_S)
        if budget < MIN_STEP_S:
            self.results[name] = StepResult("skipped", error="no time left in the budget")
        else:
            t0 = time.monotonic()
            self._partial = _Partial(self, name, t0)
            try:
                data = fn(budget)
                status = data.pop("_status", "ok")
                error = data.pop("_error", "")
                self.results[name] = StepResult(status, time.monotonic() - t0, data, error)
            except Exception as e:  # noqa: BLE001 -- a step's failure is a result; the next step runs
                self.results[name] = StepResult("failed", time.monotonic() - t0, dict(self._partial.data),
                                                f"{type(e).__name__}: {e}")
            finally:
                self._partial = None
        self.write()
        r = self.results[name]
        print(f"[{self.title}] {name}: {r.status} ({r.seconds:.0f} s){' - ' + r.error[:200] if r.error else ''}",
              flush=True)

    @staticmethod
    def outcome(code: int | None, text: str) -> dict[str, Any]:
        """A command's exit as a step's ``_status`` / ``_error`` ({} when it succeeded)."""
        if code == 0:
            return {}
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        if code is None:
            return {"_status": "timeout", "_error": lines[-1] if lines else "timed out"}
        return {"_status": "failed", "_error": (lines[-1] if lines else f"exit {code}")[:500]}

    def probe(self, name: str, args: list[str], path: Path, timeout_s: float) -> dict[str, Any]:
        """``gpu_probes`` in its own process: its JSON (as far as it got) and the outcome."""
        path.unlink(missing_ok=True)
        code, text = self.run_cmd(name, [self.python, "-m", "experiments.gpu.gpu_probes", *args], timeout_s)
        data = json.loads(path.read_text()) if path.is_file() else {}
        return {**data, **self.outcome(code, text)}

    def failures(self) -> list[str]:
        """The steps that make the exit status non-zero (default: every step not ok)."""
        return [n for n, r in self.results.items() if r.status not in ("ok", "skipped")]

    # -- output -------------------------------------------------------------------------------
    def as_dict(self) -> dict[str, Any]:
        env = self.results.get("env")
        return {"started": self.started, "dry_run": self.dry_run, "minutes": self.minutes,
                "machine": (env.data.get("machine") or env.data.get("gpu") if env else None) or platform.node(),
                "steps": {k: {"status": r.status, "seconds": round(r.seconds, 1), "error": r.error, **r.data}
                          for k, r in self.results.items()}}

    def render(self, data: dict[str, Any]) -> str:
        raise NotImplementedError

    def write(self) -> None:
        data = self.as_dict()
        self.out.mkdir(parents=True, exist_ok=True)
        for name, text in (("results.json", json.dumps(data, indent=1, default=str) + "\n"),
                           ("summary.md", self.render(data)), ("log.txt", "\n".join(self.log) + "\n")):
            tmp = self.out / f".{name}.tmp"
            tmp.write_text(text)
            os.replace(tmp, self.out / name)  # a kill mid-write leaves the previous whole file


def terminate_on_signals() -> None:
    """SIGTERM / SIGHUP (the lending tool's limit) unwind like an exception: ``run_timeboxed``
    kills the running step's group on the way out, and the caller's ``finally`` writes the results."""
    import signal

    def _raise(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise)
