"""precision=auto through the console script, on both kinds of CPU: this one as it is, and an
AVX2-only one emulated by capping the kernels' ISA (``ONEDNN_MAX_CPU_ISA=AVX2
ATEN_CPU_CAPABILITY=avx2``, under which a bf16 matmul is ~80x slower than fp32 here, as on a real
AVX2 CPU). The choice is printed once at start and kept in metrics.jsonl's first row and in
results.json."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("deepspeed")

BIN = Path(sys.executable).parent
AVX2 = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


def _pretrain(shards: Path, run: Path, *overrides: str, keep_caps: bool = False, **env: str) -> subprocess.CompletedProcess:
    # the ISA caps of the suite's own environment are dropped unless kept (``keep_caps``): each test
    # says which CPU it runs on
    drop = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_SIZE", *([] if keep_caps else AVX2))
    environ = {k: v for k, v in os.environ.items() if k not in drop}
    cmd = [str(BIN / "ds-w2v"), "pretrain", "--recipe", "pretrain_tiny", f"data.shards={shards}", f"run_dir={run}",
           "max_updates=1", "data.batch_s=8", "global_batch_s=16", "log_every=1", "eval_every=1000",
           "save_every=1000", "data.dev_split=null", "device=cpu", *overrides]
    proc = subprocess.run(cmd, env={**environ, "DS_ACCELERATOR": "cpu", **env}, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc


def _start_row(run: Path) -> dict:
    first = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert first["event"] == "start" and first["update"] == 0
    return first


def test_auto_on_an_avx2_cpu_runs_fp32_and_records_why(small_timit_shards, tmp_path):
    run = tmp_path / "avx2"
    proc = _pretrain(small_timit_shards, run, **AVX2)
    assert "precision fp32: auto: ONEDNN_MAX_CPU_ISA=AVX2" in proc.stderr
    first = _start_row(run)
    assert first["precision"] == "fp32" and "capped by ONEDNN_MAX_CPU_ISA=AVX2" in first["machine"]
    assert first["torch_threads"] >= 1
    result = json.loads((run / "results.json").read_text())
    assert result["precision"] == "fp32" and result["precision_reason"] == first["precision_reason"]
    # stdout is the result alone (DeepSpeed's prints went to stderr), and with no terminal a plain
    # progress line stands in for the bar
    assert json.loads(proc.stdout)["precision"] == "fp32"
    assert "update 1/1 | loss " in proc.stderr and " audio-s/s | " in proc.stderr and "ETA 0:00:00" in proc.stderr


def test_auto_on_this_cpu_follows_its_bf16(small_timit_shards, tmp_path):
    import torch

    from ds_w2v.hardware import cpu_bf16

    run = tmp_path / "here"
    _pretrain(small_timit_shards, run, keep_caps=True)  # as this process sees the CPU (caps included)
    expected = "bf16" if cpu_bf16().native else "fp32"
    assert _start_row(run)["precision"] == expected
    assert json.loads((run / "results.json").read_text())["precision"] == expected
    assert torch.get_num_threads() >= 1


def test_explicit_bf16_on_an_avx2_cpu_runs_with_one_warning(small_timit_shards, tmp_path):
    run = tmp_path / "bf16"
    proc = _pretrain(small_timit_shards, run, "precision=bf16", "model.overrides.encoder_layers=1", **AVX2)
    assert proc.stderr.count("bf16 on this CPU is emulated") == 1 and "74x" in proc.stderr
    assert _start_row(run)["precision"] == "bf16"
