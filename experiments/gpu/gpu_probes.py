"""The GPU check's probes, each run in a process of its own by ``gpu_check.py`` under its timeout:

    python -m experiments.gpu.gpu_probes env JSON                       # versions, GPU, SDPA; builds nothing
    python -m experiments.gpu.gpu_probes build-op FusedAdamBuilder JSON # DeepSpeed's op, JIT-built once
    python -m experiments.gpu.gpu_probes max-batch JSON --preset original --seconds 14.583
    python -m experiments.gpu.gpu_probes loader JSON --shards DIR --workers 16
    python -m experiments.gpu.gpu_probes matmul JSON

Each writes its JSON as soon as it knows something and again after every figure, so a probe cut
by its timeout (its whole process group killed) still leaves what it had measured.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str) + "\n")
    os.replace(tmp, path)  # a reader (the check, after a kill) never sees half a file


# -- env: what the machine has; SDPA first, and no op build -----------------------------------------------
def probe_env(path: Path) -> int:
    import torch

    out: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
                           "gpu": None, "cpu_count": os.cpu_count()}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        out.update(gpu=props.name, gpu_mem_gib=round(props.total_memory / 2**30, 1),
                   capability=f"{props.major}.{props.minor}", sms=props.multi_processor_count)
    try:  # the line every figure names its machine with (ds-w2v env)
        from ds_w2v.hardware import Machine

        out["machine"] = Machine.read().line()
    except Exception as e:  # noqa: BLE001 -- a description that fails is no reason to stop the probe
        out["machine"] = f"unknown ({type(e).__name__}: {e})"[:160]
    _write(path, out)
    out["sdpa"] = sdpa_backends()  # before anything that could hang (an op build is the next step's)
    _write(path, out)
    from importlib.metadata import version

    for mod in ("deepspeed", "transformers", "webdataset", "jiwer", "soundfile", "soxr", "espeakng-loader"):
        try:
            __import__(mod.replace("-", "_"))  # importable here, not only installed
            out[mod] = version(mod)
        except Exception as e:  # noqa: BLE001 -- a missing package is what this step reports
            out[mod] = f"missing ({type(e).__name__}: {e})"[:120]
    nvcc = shutil.which("nvcc")
    if nvcc:
        text = subprocess.run([nvcc, "--version"], capture_output=True, text=True, timeout=30).stdout
        m = re.search(r"release ([\d.]+)", text)
        out["nvcc"] = m.group(1) if m else text.strip().splitlines()[-1:]
    _write(path, out)
    return 0


def sdpa_backends() -> dict[str, str]:
    """Which SDPA backends run attention with a boolean padding mask (bf16 on CUDA, fp32 on CPU)."""
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    cuda = torch.cuda.is_available()
    device, dtype = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    b, h, t, d = 2, 12, 400, 64  # BASE's heads and head size, ~8 s of frames
    q, k, v = (torch.randn(b, h, t, d, device=device, dtype=dtype) for _ in range(3))
    lengths = torch.tensor([t, t // 2], device=device)
    mask = (torch.arange(t, device=device)[None, :] < lengths[:, None])[:, None, None, :]  # [B, 1, 1, T] keys
    with sdpa_kernel(SDPBackend.MATH):
        ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    out = {}
    for backend in ("FLASH_ATTENTION", "EFFICIENT_ATTENTION", "CUDNN_ATTENTION", "MATH"):
        try:
            with sdpa_kernel(getattr(SDPBackend, backend)):
                got = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            err = float((got.float() - ref.float()).norm() / ref.float().norm())
            out[backend] = f"yes (rel. err. {err:.1e})"
        except Exception as e:  # noqa: BLE001 -- a backend that refuses the mask is the finding
            out[backend] = f"no ({str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__})"
    return out


# -- build-op: DeepSpeed's op, as the trainer's first engine would build it ----------------------------------
def probe_build_op(builder: str, path: Path) -> int:
    """0 when the op built (or loaded from torch's extension cache), 3 when it cannot be: the
    failure is then in ``DS_W2V_OP_RECORD`` (``engine.probe_op_builder`` records it)."""
    _write(path, {"builder": builder, "status": "building", "pid": os.getpid()})
    from ds_w2v.train.engine import probe_op_builder

    build = probe_op_builder(builder)
    _write(path, {"builder": builder, "status": "built" if build.error is None else "failed",
                  "seconds": round(build.build_s, 1), "error": build.error})
    return 0 if build.error is None else 3


# -- max-batch: the most utterances one update of the preset fits ------------------------------------------
def _one_update(preset: str, precision: str, zero: int, batch: int, seconds: float, device) -> float:
    """Peak MiB of building an engine and one update at ``batch`` x ``seconds``; raises on OOM."""
    import torch

    from ds_w2v.models.wav2vec2 import build_model, preset_config
    from ds_w2v.train.engine import build_engine
    from ds_w2v.bench.harness import fixed_batch
    from ds_w2v.bench.train import bench_config

    wave, lengths = fixed_batch(batch, seconds, device)
    config, ds = bench_config(zero, precision, wave.numel() / 16000, device)
    torch.manual_seed(0)
    engine, _ = build_engine(build_model(preset_config(preset, encoder_layerdrop=0.0), "pretrain"), ds,
                             config.optim, device)
    try:
        dtype = next(engine.module.parameters()).dtype
        out = engine(wave.to(dtype), lengths)
        engine.backward(out.loss / out.sample_size)
        engine.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            return torch.cuda.max_memory_allocated(device) / 2**20
        return float("nan")
    finally:
        if hasattr(engine, "destroy"):
            engine.destroy()
        del engine


def _is_oom(e: BaseException) -> bool:
    import torch

    return isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in str(e).lower()


def probe_max_batch(path: Path, preset: str, precision: str, zero: int, seconds: float, start: int,
                    limit: int) -> int:
    """Doubles the batch from ``start`` until an update runs out of memory (or ``limit``), then
    bisects between the last that fit and the first that did not."""
    import gc

    import torch

    from ds_w2v.train.distributed import init_distributed
    from ds_w2v.bench.train import quiet_deepspeed

    device = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    init_distributed(device)
    quiet_deepspeed()
    out: dict[str, Any] = {"preset": preset, "precision": precision, "zero": zero, "seconds": seconds,
                           "limit": limit, "tries": [], "largest": None, "oom_at": None}

    def fits(batch: int) -> bool:
        t0 = time.perf_counter()
        try:
            peak = _one_update(preset, precision, zero, batch, seconds, device)
            ok, note = True, None
        except Exception as e:  # noqa: BLE001 -- an OOM is the answer; anything else is reported
            if not _is_oom(e):
                raise
            ok, peak, note = False, None, "out of memory"
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        out["tries"].append({"batch": batch, "fits": ok, "peak_mib": None if peak != peak else peak,
                             "seconds": round(time.perf_counter() - t0, 1), **({"note": note} if note else {})})
        if ok:
            out["largest"] = max(out["largest"] or 0, batch)
        else:
            out["oom_at"] = batch if out["oom_at"] is None else min(out["oom_at"], batch)
        _write(path, out)
        return ok

    _write(path, out)
    batch = start
    while batch <= limit and fits(batch):
        batch *= 2
    low, high = out["largest"] or 0, out["oom_at"]
    while high is not None and high - low > max(1, low // 8):  # to within 1/8 of the answer
        mid = (low + high) // 2
        if fits(mid):
            low = mid
        else:
            high = mid
    out["done"] = True
    _write(path, out)
    return 0


# -- loader: the training stream with many workers ---------------------------------------------------------
def probe_loader(path: Path, shards: str, workers: int, batch_s: float, epochs: int) -> int:
    """Audio-seconds per second a ``StreamingLoader`` of ``workers`` workers delivers over the
    prepared train split, per epoch (the first one includes starting the workers)."""
    from ds_w2v.data.index import read_split
    from ds_w2v.data.loader import StreamingLoader
    from ds_w2v.data.stream import StreamConfig

    split = read_split(shards, "train")
    config = StreamConfig(kind="pretrain", batch_s=batch_s, num_workers=workers, seed=0)
    loader = StreamingLoader.from_split(split, config, rank=0, world_size=1)
    out: dict[str, Any] = {"workers": workers, "batch_s": batch_s, "split_hours": round(split.total_s / 3600, 3),
                           "batches_per_epoch": len(loader), "epochs": []}
    _write(path, out)
    for _ in range(epochs):
        t0, audio = time.perf_counter(), 0.0
        for batch in loader:
            audio += batch.num_audio_s
        wall = time.perf_counter() - t0
        out["epochs"].append({"seconds": round(wall, 2), "audio_s": round(audio, 1),
                              "audio_s_per_s": round(audio / wall, 1)})
        _write(path, out)
    loader.close()
    return 0


# -- matmul: what the device's dense matmul reaches, to put MFU against --------------------------------------
def probe_matmul(path: Path, size: int, dtype_name: str, repeats: int) -> int:
    import torch

    device = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    dtype = getattr(torch, {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}[dtype_name])
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(3):  # warm-up: cuBLAS picks its kernel
        a @ b
    sync()
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync()
    seconds = (time.perf_counter() - t0) / repeats
    tflops = 2.0 * size**3 / seconds / 1e12
    _write(path, {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
                  "dtype": dtype_name, "size": size, "repeats": repeats, "seconds": seconds, "tflops": tflops})
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gpu_probes", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="probe", required=True)
    sub.add_parser("env").add_argument("json", type=Path)
    b = sub.add_parser("build-op")
    b.add_argument("builder")
    b.add_argument("json", type=Path)
    m = sub.add_parser("max-batch")
    m.add_argument("json", type=Path)
    m.add_argument("--preset", default="original")
    m.add_argument("--precision", default="bf16")
    m.add_argument("--zero", type=int, default=2)
    m.add_argument("--seconds", type=float, default=14.583)
    m.add_argument("--start", type=int, default=6)
    m.add_argument("--limit", type=int, default=512)
    ld = sub.add_parser("loader")
    ld.add_argument("json", type=Path)
    ld.add_argument("--shards", required=True)
    ld.add_argument("--workers", type=int, default=16)
    ld.add_argument("--batch-s", type=float, default=87.5)
    ld.add_argument("--epochs", type=int, default=3)
    mm = sub.add_parser("matmul")
    mm.add_argument("json", type=Path)
    mm.add_argument("--size", type=int, default=8192)
    mm.add_argument("--dtype", default="bf16", choices=("bf16", "fp16", "fp32"))
    mm.add_argument("--repeats", type=int, default=50)
    a = p.parse_args(argv)
    if a.probe == "env":
        return probe_env(a.json)
    if a.probe == "build-op":
        return probe_build_op(a.builder, a.json)
    if a.probe == "max-batch":
        if a.start < 1 or a.limit < a.start:
            p.error("max-batch: need 1 <= --start <= --limit")
        return probe_max_batch(a.json, a.preset, a.precision, a.zero, a.seconds, a.start, a.limit)
    if a.probe == "loader":
        return probe_loader(a.json, a.shards, a.workers, a.batch_s, a.epochs)
    return probe_matmul(a.json, a.size, a.dtype, a.repeats)


if __name__ == "__main__":
    sys.exit(main())
