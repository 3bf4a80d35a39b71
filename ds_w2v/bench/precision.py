"""``ds-w2v bench precision``: what each precision costs on this CPU (figures, not pass/fail).

    ds-w2v bench precision                      # this machine
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ds-w2v bench precision

One torch thread; a 512x256 @ 256x1024 matmul and a Conv1d 256->256 (kernel 3) over 4 x 400
frames (the sizes of tiny's feed-forward layers and positional conv), forward only, no grad, in
fp32 and bf16; after one warm-up call each, the median of ``--repeats`` timed calls. Where bf16
is emulated (no AVX512_BF16 / AMX, or an ISA cap) it is tens of times slower than fp32: that is
why ``precision=auto`` takes fp32 there (``ds_w2v/train/precision.py``). The machine line and the
precision ``auto`` would choose head the table.
"""
from __future__ import annotations

import argparse
import statistics
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per cell, the median reported (5)")


def _median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def run(args: argparse.Namespace) -> int:
    import torch

    from ..hardware import Machine
    from ..train.precision import resolve_precision

    if args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    a, b = torch.randn(512, 256), torch.randn(256, 1024)
    conv, x = torch.nn.Conv1d(256, 256, 3), torch.randn(4, 256, 400)
    rows = {}
    with torch.no_grad():
        for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            a_, b_, conv_, x_ = a.to(dtype), b.to(dtype), conv.to(dtype), x.to(dtype)
            rows[name] = (_median_ms(lambda: a_ @ b_, args.repeats), _median_ms(lambda: conv_(x_), args.repeats))
    choice = resolve_precision("auto", {}, "cpu")
    print(f"machine: {Machine.read().line()}; torch {torch.__version__}, 1 thread")
    print(f"{choice.line()}")
    print("| precision | matmul 512x256 @ 256x1024 | Conv1d 256->256 k3, 4 x 400 |")
    print("|---|---|---|")
    for name, (mm, cv) in rows.items():
        rel = "" if name == "fp32" else f" ({mm / rows['fp32'][0]:.2f}x / {cv / rows['fp32'][1]:.2f}x fp32)"
        print(f"| {name}{rel} | {mm:.2f} ms | {cv:.2f} ms |")
    return 0
