"""Helpers of the reliability tests (imported by path: pytest runs with --import-mode=importlib)."""
from __future__ import annotations

import importlib.util
import io
import json
import os
import sys
import tarfile
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]

# tiny, fast, deterministic: fp32, no LayerDrop, 12 audio-s micro-batches x 2 = 24 audio-s per
# update, no dev evaluation (the dir corpus has no dev split), every update logged, on the CPU
# (gloo) even where a GPU is visible
FAST = ["precision=fp32", "data.batch_s=12", "global_batch_s=24", "log_every=1", "eval_every=1000", "save_every=2",
        "data.shuffle_buffer=16", "model.overrides.encoder_layerdrop=0.0", "data.dev_split=null", "device=cpu"]


def overrides(shards: Path, run_dir: Path, *extra: str) -> list[str]:
    return [f"data.shards={shards}", f"run_dir={run_dir}", *FAST, *extra]


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a training subprocess: this one's, less the process-group variables
    that an in-process Trainer of an earlier test left in ``os.environ`` (its MASTER_PORT is
    still taken by its store), on CPU."""
    dist = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_SIZE", "CROSS_RANK", "CROSS_SIZE")
    env = {k: v for k, v in os.environ.items() if k not in dist}
    return {**env, "DS_ACCELERATOR": "cpu", "PYTHONUNBUFFERED": "1", **extra}


def load_module(path: Path, name: str):
    """A helper module of another test folder, by path, imported once."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def metrics_rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def read_members(shard: Path) -> list[tuple[str, dict[str, bytes]]]:
    """``[(key, {ext: bytes})]`` of a shard, in tar order."""
    samples: dict[str, dict[str, bytes]] = {}
    with tarfile.open(shard) as tar:
        for m in tar.getmembers():
            key, ext = m.name.split(".", 1)
            samples.setdefault(key, {})[ext] = tar.extractfile(m).read()
    return list(samples.items())


def add_member(tar: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


def repack(src: Path, out: Path, sizes: list[int], split: str = "train") -> list[Path]:
    """Write the utterances of ``src``'s train split into shards of ``sizes`` utterances (very
    uneven on purpose) under ``out`` with a matching ``dataset.json``; returns the shard paths."""
    index = json.loads((src / "dataset.json").read_text())
    samples = [s for name in index["splits"]["train"]["shards"] for s in read_members(src / name)]
    assert sum(sizes) <= len(samples)
    out.mkdir(parents=True, exist_ok=True)
    names, seconds, counts, start = [], [], [], 0
    for i, n in enumerate(sizes):
        name = f"{split}-{i:06d}.tar"
        with tarfile.open(out / name, "w") as tar:
            for key, parts in samples[start:start + n]:
                for ext, payload in sorted(parts.items()):
                    add_member(tar, f"{key}.{ext}", payload)
        names.append(name)
        counts.append(n)
        seconds.append(round(sum(json.loads(p["json"])["duration_s"] for _, p in samples[start:start + n]), 3))
        start += n
    index["splits"] = {split: {"shards": names, "num_samples": sum(counts), "hours": sum(seconds) / 3600,
                               "shard_num_samples": counts, "shard_seconds": seconds}}
    (out / "dataset.json").write_text(json.dumps(index, indent=1))
    return [out / n for n in names]
