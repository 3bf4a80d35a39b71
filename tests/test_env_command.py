"""``ds-w2v env`` through the console script: one screen or JSON, on any machine."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def _env(args=(), **extra):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", **extra}
    for k in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS"):
        if k not in extra:
            env.pop(k, None)
    return subprocess.run([str(BIN / "ds-w2v"), "env", *args], capture_output=True, text=True, env=env, timeout=120)


def test_env_json_names_the_machine_and_what_a_run_would_use():
    out = _env(["--json"])
    assert out.returncode == 0, out.stderr
    f = json.loads(out.stdout)
    assert f["gpus"] == [] and f["run"]["device"] == "cpu"
    assert f["cpu"]["cores_available"] >= 1 and f["cpu"]["model"] in f["machine"]
    import torch

    assert f["versions"]["torch"] == torch.__version__
    # the run's precision is the rule's answer for this CPU
    expected = "bf16" if f["cpu"]["native_bf16"] else "fp32"
    assert f["run"]["precision"] == expected and f["run"]["precision_reason"].startswith("auto: ")


def test_env_under_an_avx2_cap_chooses_fp32_and_says_so():
    out = _env(["--json"], ONEDNN_MAX_CPU_ISA="AVX2", ATEN_CPU_CAPABILITY="avx2")
    assert out.returncode == 0, out.stderr
    f = json.loads(out.stdout)
    assert f["cpu"]["native_bf16"] is False and f["run"]["precision"] == "fp32"
    assert "capped by ONEDNN_MAX_CPU_ISA=AVX2" in f["machine"]


def test_env_screen_without_compilers_or_gpu_says_what_is_missing(tmp_path):
    # PATH with nothing but this interpreter's folder: no nvcc, c++ or ninja
    (tmp_path / "bin").mkdir()
    out = _env(PATH=str(tmp_path / "bin"), OMP_NUM_THREADS="1")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.splitlines()[0].startswith("machine:      ")
    assert "gpu:          none" in text and "nvcc not found" in text and "ninja not found" in text
    assert "1 torch threads per rank (OMP_NUM_THREADS=1)" in text


def test_env_into_a_pipe_that_closes_early_is_no_error():
    out = subprocess.run(f"{BIN / 'ds-w2v'} env | head -1", shell=True, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert out.stdout.startswith("machine:      ") and len(out.stdout.splitlines()) == 1
    assert "Traceback" not in out.stderr and "BrokenPipe" not in out.stderr


def test_import_ds_w2v_does_not_import_torch():
    # build-lm, prepare and --help start without torch (PEP 562: the model names load on first use)
    code = "import sys, ds_w2v; assert 'torch' not in sys.modules; ds_w2v.build_model; assert 'torch' in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
