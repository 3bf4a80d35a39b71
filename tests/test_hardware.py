"""ds_w2v/hardware.py: the machine facts precision=auto and threads are chosen from."""
from __future__ import annotations

import torch

from ds_w2v import hardware


def _cpu(monkeypatch, bf16: bool, amx: bool = False):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)


def test_native_bf16_needs_avx512_bf16_or_amx(monkeypatch):
    _cpu(monkeypatch, bf16=False)
    found = hardware.cpu_bf16()
    assert not found.native and "no native bf16" in found.reason
    _cpu(monkeypatch, bf16=False, amx=True)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    assert hardware.cpu_bf16().native and "AMX" in hardware.cpu_bf16().reason


def test_an_isa_cap_emulating_an_older_cpu_turns_native_bf16_off(monkeypatch):
    _cpu(monkeypatch, bf16=True)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    assert hardware.cpu_bf16().native
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx2")
    found = hardware.cpu_bf16()
    assert not found.native and "ONEDNN_MAX_CPU_ISA=AVX2" in found.reason
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA")
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    found = hardware.cpu_bf16()
    assert not found.native and "AVX2" in found.reason


def test_default_threads_share_the_cores_among_local_ranks(monkeypatch):
    monkeypatch.setattr(hardware, "available_cores", lambda: 16)
    assert hardware.default_threads(1) == 16
    assert hardware.default_threads(4) == 4
    assert hardware.default_threads(32) == 1  # never 0


def test_threads_follow_omp_num_threads_when_set(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(hardware, "available_cores", lambda: 2)
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
        threads, why = hardware.apply_default_threads()
        assert threads == 1 == torch.get_num_threads() and "2 rank(s)" in why
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        threads, why = hardware.apply_default_threads()
        assert why == "OMP_NUM_THREADS=2" and threads == torch.get_num_threads() == 1  # left as it was
    finally:
        torch.set_num_threads(before)


def test_local_world_size_reads_torchrun_then_deepspeed(monkeypatch):
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.delenv("LOCAL_SIZE", raising=False)
    assert hardware.local_world_size() == 1
    monkeypatch.setenv("LOCAL_SIZE", "3")
    assert hardware.local_world_size() == 3
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert hardware.local_world_size() == 2


def test_the_machine_line_names_cpu_isa_and_cores(monkeypatch):
    m = hardware.Machine("AMD EPYC", "AVX-512, AVX512_BF16", 2, 23.4)
    assert m.line() == "AMD EPYC (AVX-512, AVX512_BF16), 2 cores, 23 GiB"
    m.gpus = [hardware.GpuInfo("NVIDIA H100", "9.0", 79.2, True)]
    assert m.line().startswith("1 x NVIDIA H100; AMD EPYC")
    real = hardware.Machine.read()  # never raises on a machine without a GPU
    assert real.cores >= 1 and real.cpu


def test_data_workers_auto_none_on_a_cpu_and_the_rank_share_on_a_gpu(monkeypatch):
    monkeypatch.setattr(hardware, "available_cores", lambda: 16)
    assert hardware.data_workers("auto", "cpu", 1) == 0
    assert hardware.data_workers("auto", "cuda", 1) == 6  # capped at BASE's 6
    assert hardware.data_workers("auto", "cuda", 4) == 3  # 16 cores / 4 ranks - 1
    assert hardware.data_workers("auto", "cuda", 16) == 0
    assert hardware.data_workers(2, "cpu", 1) == 2 and hardware.data_workers(0, "cuda", 1) == 0


def test_the_config_takes_auto_or_a_count_of_workers():
    import pytest

    from ds_w2v.train.config import load_config

    c = load_config("pretrain_tiny", ["data.shards=x"])
    assert c.data.num_workers == "auto"
    c.validate()
    assert load_config("pretrain_tiny", ["data.shards=x", "data.num_workers=3"]).data.num_workers == 3
    for bad in ("-1", "many"):
        with pytest.raises(ValueError, match=r"^config key data.num_workers: must be auto or an integer >= 0"):
            load_config("pretrain_tiny", ["data.shards=x", f"data.num_workers={bad}"]).validate()


def test_inductor_cache_is_kept_apart_per_cpu_kernel_level(monkeypatch, tmp_path):
    """A graph compiled under ATEN_CPU_CAPABILITY=avx2 and loaded by an uncapped process corrupted
    the heap (tests/train/test_speed_options.py runs that sequence for real)."""
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # inductor's default folder is under the temp dir
    monkeypatch.setattr("tempfile.tempdir", None)
    folders = {}
    for level in ("AVX2", "AVX512"):
        monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda level=level: level)
        folders[level] = hardware.key_inductor_cache_by_isa()
        assert cache_dir() == folders[level]  # what inductor now reads
    assert folders["AVX2"].endswith("isa-avx2") and folders["AVX512"].endswith("isa-avx512")
    assert folders["AVX2"].startswith(str(tmp_path))
    # the default folder that importing torch._inductor writes into the variable counts as unset
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "torchinductor_x" / ".." / "torchinductor_x"))
    monkeypatch.setattr("torch._inductor.runtime.cache_dir_utils.default_cache_dir", lambda: str(tmp_path / "torchinductor_x"))
    assert hardware.key_inductor_cache_by_isa() == str(tmp_path / "torchinductor_x" / "isa-avx512")
    # a folder the user chose is theirs
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "mine"))
    assert hardware.key_inductor_cache_by_isa() is None and cache_dir() == str(tmp_path / "mine")
