"""``ds-w2v env [--json]``: this machine on one screen, and what a run here would use.

CPU model and instruction sets (AVX2 / AVX-512 / AVX512_BF16 / AMX), cores, memory; GPUs with
compute capability and memory; torch, CUDA, DeepSpeed and transformers versions; and the choices
a training run would make here: precision (``precision=auto``), torch threads, attention kernel,
optimizer (can DeepSpeed's FusedAdam be built?) and DeepSpeed's shared-memory CPU collectives.
Its first line (``machine: ...``) is the line every figure in BENCHMARKS.md names its machine by.
It never fails for want of a GPU, a compiler or a package: it says what is missing.
"""
from __future__ import annotations

import argparse


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="print the facts as one JSON object")
    return p


def _version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _op(builder_name: str) -> str:
    """Whether DeepSpeed's op can be used here, without building it (a first build takes minutes):
    already built (in torch's extension cache), buildable (compiler found), or why not."""
    import contextlib
    import io
    import logging
    import os

    try:
        logging.getLogger("DeepSpeed").setLevel(logging.ERROR)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            from deepspeed.ops import op_builder

            builder = getattr(op_builder, builder_name)()
            compatible = builder.is_compatible(verbose=False)
        from torch.utils.cpp_extension import _get_build_directory

        built = any(f.endswith(".so") for f in os.listdir(_get_build_directory(builder.name, False))
                    ) if os.path.isdir(_get_build_directory(builder.name, False)) else False
    except Exception as e:  # noqa: BLE001 -- no deepspeed, a broken CUDA: say so, never fail
        return f"unknown ({type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''})"
    if built:
        return "built (in torch's extension cache)"
    if compatible:
        return "buildable (JIT on first use: minutes)"
    return "cannot be built here (" + (builder.error_log or "not compatible").strip().splitlines()[0] + ")"


def facts() -> dict:
    import os
    import shutil

    import torch

    from ..hardware import Machine, cpu_bf16, default_threads, local_world_size
    from ..train.precision import resolve_precision

    machine = Machine.read()
    on_gpu = bool(machine.gpus)
    device_type = "cuda" if on_gpu else "cpu"
    precision = resolve_precision("auto", {}, device_type)
    bf16 = cpu_bf16()
    threads_env = os.environ.get("OMP_NUM_THREADS")
    if on_gpu:
        attention = "SDPA on CUDA: flash / memory-efficient kernels (padding masks: memory-efficient)"
        optimizer_op = _op("FusedAdamBuilder")
        optimizer = ("DeepSpeed FusedAdam" if not optimizer_op.startswith(("cannot", "unknown"))
                     else "torch.optim.AdamW (fused): FusedAdam " + optimizer_op)
    else:
        attention = "SDPA on CPU (flash-attention CPU kernel; math kernel with padding masks)"
        optimizer_op = None
        optimizer = "torch.optim.AdamW (fused); ds_configs/cpu.json names no DeepSpeed optimizer"
    return {
        "machine": machine.line(),
        "cpu": {"model": machine.cpu, "isa": machine.isa, "cores_available": machine.cores,
                "native_bf16": bf16.native, "bf16_reason": bf16.reason,
                "torch_capability": torch.backends.cpu.get_cpu_capability()},
        "memory_gib": round(machine.memory_gib, 1) if machine.memory_gib else None,
        "gpus": [{"name": g.name, "capability": g.capability, "memory_gib": round(g.memory_gib, 1), "bf16": g.bf16}
                 for g in machine.gpus],
        "versions": {"python": ".".join(map(str, __import__("sys").version_info[:3])), "torch": torch.__version__,
                     "cuda": torch.version.cuda, "deepspeed": _version("deepspeed"),
                     "transformers": _version("transformers"), "ds_w2v": _version("ds_w2v")},
        "compilers": {"nvcc": shutil.which("nvcc"), "c++": shutil.which("c++") or shutil.which("g++"),
                      "ninja": shutil.which("ninja")},
        "run": {"device": device_type, "precision": precision.name, "precision_reason": precision.reason,
                "torch_threads": int(threads_env) if (threads_env or "").isdigit() else default_threads(local_world_size()),
                "threads_reason": f"OMP_NUM_THREADS={threads_env}" if threads_env else "available cores / local ranks",
                "attention": attention, "optimizer": optimizer, "fused_adam": optimizer_op,
                "shm_comm": None if on_gpu else _op("ShareMemCommBuilder")},
    }


def main(args: argparse.Namespace) -> int:
    import json

    f = facts()
    if args.json:
        print(json.dumps(f, indent=1))
        return 0
    c, v, r = f["cpu"], f["versions"], f["run"]
    missing = lambda x: x or "not found"  # noqa: E731
    lines = [
        f"machine:      {f['machine']}",
        f"cpu:          {c['model']}; ISA {c['isa']}; {c['cores_available']} cores available; torch kernels "
        f"{c['torch_capability']}",
        f"              native bf16: {'yes' if c['native_bf16'] else 'no'} ({c['bf16_reason']})",
        f"memory:       {f['memory_gib']} GiB" if f["memory_gib"] else "memory:       unknown",
    ]
    if f["gpus"]:
        lines += [f"gpu {i}:        {g['name']}, sm_{g['capability'].replace('.', '')}, {g['memory_gib']} GiB, "
                  f"bf16 {'yes' if g['bf16'] else 'no'}" for i, g in enumerate(f["gpus"])]
    else:
        lines.append("gpu:          none (torch sees no CUDA device)")
    lines += [
        f"versions:     python {v['python']}, torch {v['torch']}, CUDA {missing(v['cuda'])}, DeepSpeed "
        f"{missing(v['deepspeed'])}, transformers {missing(v['transformers'])}, ds_w2v {missing(v['ds_w2v'])}",
        "compilers:    " + ", ".join(f"{k} {missing(p)}" for k, p in f["compilers"].items()),
        f"a run here:   {r['device']}, precision {r['precision']} ({r['precision_reason']})",
        f"              {r['torch_threads']} torch threads per rank ({r['threads_reason']})",
        f"              attention: {r['attention']}",
        f"              optimizer: {r['optimizer']}",
    ]
    if r["shm_comm"] is not None:
        lines.append(f"              DeepSpeed shared-memory CPU collectives: {r['shm_comm']}")
    print("\n".join(lines))
    return 0
