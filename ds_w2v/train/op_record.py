"""The record of DeepSpeed op builds that failed, so that no later attempt builds them again.

A JIT build of a DeepSpeed op (FusedAdam with nvcc, ~1 min; the CPU's shm comm op with c++) that
fails fails the same way the next time: in one process, ``build_engine`` would try again for every
engine it builds; across processes (every step of the GPU check, every run of a study) each would
spend its own minutes on it. Two places remember a failure:

* this process: :func:`recorded_failure` answers from memory after the first failure here;
* every process given ``DS_W2V_OP_RECORD=DIR`` (the GPU check exports it to each step): a failure
  is written there as ``DIR/<BuilderName>.failed`` (one line: why), read before any build. Only
  failures are recorded; a built op loads from torch's extension cache in ~1 s.

A build cut short (killed by a timeout) leaves torch's ``lock`` file in the extension's build
directory, and every later build of that op waits on it for ever (``FileBaton.wait``):
:func:`stale_locks` finds those files, for whoever killed the build to remove.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

ENV = "DS_W2V_OP_RECORD"

# DeepSpeed builder class -> its extension's name (the build directory under torch's extension root)
EXTENSION_NAMES = {"FusedAdamBuilder": "fused_adam", "CPUAdamBuilder": "cpu_adam",
                   "ShareMemCommBuilder": "deepspeed_shm_comm"}

_failed_here: dict[str, str] = {}  # builder name -> why, for this process


def _record_dir(environ: Mapping[str, str]) -> Path | None:
    value = environ.get(ENV, "").strip()
    return Path(value) if value else None


def recorded_failure(builder_name: str, environ: Mapping[str, str] = os.environ) -> str | None:
    """Why ``builder_name``'s op could not be built, if an earlier attempt recorded it; else None."""
    if builder_name in _failed_here:
        return _failed_here[builder_name]
    folder = _record_dir(environ)
    if folder is None:
        return None
    try:
        text = (folder / f"{builder_name}.failed").read_text().strip()
    except OSError:
        return None
    return text or "failed (no reason recorded)"


def record_failure(builder_name: str, error: str, environ: Mapping[str, str] = os.environ) -> None:
    """Remember that ``builder_name``'s op failed: here, and in ``DS_W2V_OP_RECORD`` if set."""
    line = " ".join(error.split()) or "failed"
    _failed_here[builder_name] = line
    folder = _record_dir(environ)
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{builder_name}.failed"
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(line + "\n")
    os.replace(tmp, path)  # atomic: ranks recording at once leave one whole line


def forget_failures() -> None:
    """Clear this process's memory of failures (tests)."""
    _failed_here.clear()


def extension_root(environ: Mapping[str, str] = os.environ) -> tuple[Path, bool]:
    """(torch's JIT extension root, whether it holds the build directories itself): with
    ``TORCH_EXTENSIONS_DIR`` the builds are ``<it>/<name>``, else ``~/.cache/torch_extensions``
    (``XDG_CACHE_HOME`` honoured) holds a ``py<ver>_<cuda|cpu>`` folder per interpreter and toolkit."""
    given = environ.get("TORCH_EXTENSIONS_DIR")
    if given:
        return Path(given), True
    cache = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "torch_extensions", False


def stale_locks(builder_name: str, environ: Mapping[str, str] = os.environ) -> list[Path]:
    """The ``lock`` files of ``builder_name``'s extension build directories that exist now."""
    name = EXTENSION_NAMES.get(builder_name)
    if name is None:
        return []
    root, flat = extension_root(environ)
    pattern = f"{name}/lock" if flat else f"*/{name}/lock"
    return sorted(root.glob(pattern))
