"""What this machine is and what it can do fast: the CPU's model and instruction sets, the cores
this process may use, memory, GPUs. The one place the trainer's automatic choices (precision,
threads, data workers) and ``ds-w2v env`` read the hardware from.

Why it matters: on a CPU without native bf16 instructions (AVX2 only: AMD Zen 1-3, most Intel
client chips) a bf16 matmul is emulated. Measured on a 2-core AMD EPYC (torch 2.13 CPU, one
thread), 512x256 @ 256x1024: fp32 5.5 ms, bf16 403 ms (74x slower); with AVX-512 BF16 the same
matmul takes 3.3 ms in fp32 and 1.2 ms in bf16. So bf16 is chosen on a CPU only where it is native.

Nothing here imports deepspeed or CUDA libraries beyond ``torch`` itself, and nothing raises:
a fact that cannot be read is reported as unknown.
"""
from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field

# oneDNN's ISA caps (``ONEDNN_MAX_CPU_ISA``) below which its bf16 kernels are emulated: capping
# at one of these (to emulate an older CPU) makes bf16 as slow as on that CPU.
_ONEDNN_NO_BF16 = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI")
# ATen's kernel levels (``ATEN_CPU_CAPABILITY``, torch.backends.cpu.get_cpu_capability()) without AVX-512
_ATEN_NO_AVX512 = ("DEFAULT", "NO AVX", "AVX2", "ZVECTOR", "VSX")


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none: macOS, Windows)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    if fields:
                        break
                    continue
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def cpu_model() -> str:
    info = _cpuinfo()
    return info.get("model name") or info.get("Processor") or platform.processor() or platform.machine() or "cpu"


def cpu_flags() -> set[str]:
    info = _cpuinfo()
    return set((info.get("flags") or info.get("Features") or "").split())


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup CPU quota (a container
    given 2 CPUs of a 64-core host sees 64 in ``os.cpu_count()``)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:  # cgroup v2: "max 100000" or "200000 100000" (quota, period in microseconds)
        with open("/sys/fs/cgroup/cpu.max", encoding="utf-8") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) // int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def memory_gib() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (AttributeError, ValueError, OSError):
        return None


@dataclass(frozen=True)
class CpuBf16:
    """Whether bf16 matmuls run natively on this CPU, and the one-line reason."""

    native: bool
    reason: str


def cpu_bf16() -> CpuBf16:
    """bf16 is native where the CPU has AVX-512 BF16 or AMX (as torch reports them) and neither
    ``ATEN_CPU_CAPABILITY`` nor ``ONEDNN_MAX_CPU_ISA`` caps the kernels below them."""
    import torch

    isa = []
    try:
        if torch.cpu._is_avx512_bf16_supported():
            isa.append("AVX512_BF16")
        if torch.cpu._is_amx_tile_supported():
            isa.append("AMX")
    except AttributeError:  # an older torch without the private probes: read the flags
        flags = cpu_flags()
        isa = [name for name, flag in (("AVX512_BF16", "avx512_bf16"), ("AMX", "amx_bf16")) if flag in flags]
    if not isa:
        return CpuBf16(False, f"the CPU has no native bf16 (no AVX512_BF16 or AMX; {isa_summary()})")
    onednn = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if onednn in _ONEDNN_NO_BF16:
        return CpuBf16(False, f"ONEDNN_MAX_CPU_ISA={onednn} caps oneDNN below its bf16 kernels")
    capability = torch.backends.cpu.get_cpu_capability().upper()
    if capability in _ATEN_NO_AVX512:
        return CpuBf16(False, f"torch's CPU kernels run at {capability} (ATEN_CPU_CAPABILITY), without bf16")
    return CpuBf16(True, f"the CPU has native bf16 ({' + '.join(isa)})")


def isa_summary() -> str:
    """The vector ISA levels that matter for torch on this CPU: "AVX2", "AVX-512, AVX512_BF16, AMX"."""
    flags = cpu_flags()
    names = [(flag, name) for flag, name in (("avx2", "AVX2"), ("avx512f", "AVX-512"), ("avx512_bf16", "AVX512_BF16"),
                                             ("amx_bf16", "AMX"), ("asimd", "NEON"), ("sve", "SVE"))]
    found = [name for flag, name in names if flag in flags]
    if "AVX-512" in found and "AVX2" in found:
        found.remove("AVX2")  # implied
    return ", ".join(found) or "no AVX2"


def isa_cap() -> str | None:
    """The environment's cap on the kernels' ISA (set to emulate an older CPU), or None."""
    caps = [f"{k}={os.environ[k]}" for k in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS")
            if os.environ.get(k)]
    return ", ".join(caps) or None


def key_inductor_cache_by_isa() -> str | None:
    """Point inductor's on-disk cache (``torch.compile``) at a folder of this process's CPU kernel
    level, ``<its default>/isa-<level>``, unless the user chose one (``TORCHINDUCTOR_CACHE_DIR``).
    Returns the folder set, or None.

    Inductor keys its cached graphs without the level that ``ATEN_CPU_CAPABILITY`` caps, so a
    graph compiled under ``ATEN_CPU_CAPABILITY=avx2`` (an AVX2 CPU emulated, as the docs do) and
    then loaded by an uncapped process on the same AVX-512 machine corrupted the heap: "malloc():
    unaligned tcache chunk detected" / "double free or corruption" (torch 2.13, seen 2026-12-07).
    Importing ``torch._inductor`` writes its default folder into the variable, so that value
    counts as unset."""
    import torch
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    given = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    default = os.path.abspath(default_cache_dir())
    if given and os.path.abspath(given) != default:
        return None
    folder = os.path.join(default, f"isa-{torch.backends.cpu.get_cpu_capability().lower()}")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = folder
    return folder


def default_threads(local_world_size: int = 1) -> int:
    """torch compute threads per process when the user sets none (``OMP_NUM_THREADS``): the
    available cores shared out among this node's ranks, never more threads than cores."""
    return max(1, available_cores() // max(1, local_world_size))


@dataclass
class GpuInfo:
    name: str
    capability: str
    memory_gib: float
    bf16: bool


def gpus() -> list[GpuInfo]:
    import torch

    found = []
    try:
        if not torch.cuda.is_available():
            return []
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            found.append(GpuInfo(p.name, f"{p.major}.{p.minor}", p.total_memory / 2**30,
                                 bool(p.major >= 8)))  # bf16 tensor cores from Ampere (sm_80) on
    except Exception:  # noqa: BLE001 -- a broken driver is reported as no GPU, never a crash
        return found
    return found


@dataclass
class Machine:
    """One line of this, ``Machine.read().line()``, names the machine every figure came from."""

    cpu: str
    isa: str
    cores: int
    memory_gib: float | None
    gpus: list[GpuInfo] = field(default_factory=list)

    @classmethod
    def read(cls) -> "Machine":
        cap = isa_cap()
        isa = isa_summary() + (f"; kernels capped by {cap}" if cap else "")
        return cls(cpu_model(), isa, available_cores(), memory_gib(), gpus())

    def line(self) -> str:
        mem = f", {self.memory_gib:.0f} GiB" if self.memory_gib else ""
        cpu = f"{self.cpu} ({self.isa}), {self.cores} cores{mem}"
        if not self.gpus:
            return cpu
        names = {}
        for g in self.gpus:
            names[g.name] = names.get(g.name, 0) + 1
        return ", ".join(f"{n} x {name}" for name, n in names.items()) + f"; {cpu}"


def local_world_size() -> int:
    """Ranks on this node, as the launcher says (torchrun: LOCAL_WORLD_SIZE; deepspeed: LOCAL_SIZE)."""
    for key in ("LOCAL_WORLD_SIZE", "LOCAL_SIZE"):
        value = os.environ.get(key, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


def apply_default_threads() -> tuple[int, str]:
    """Set torch's compute threads from the machine unless the user set ``OMP_NUM_THREADS``:
    (threads, why). torch's own default is every physical core of the host, per process, which
    oversubscribes the cores when several ranks share a node or a container has a CPU quota."""
    import torch

    given = os.environ.get("OMP_NUM_THREADS", "")
    if given.isdigit() and int(given) > 0:
        return torch.get_num_threads(), f"OMP_NUM_THREADS={given}"
    ranks = local_world_size()
    threads = default_threads(ranks)
    torch.set_num_threads(threads)
    return threads, f"{available_cores()} cores available / {ranks} rank(s) on this node"


def data_workers(requested: int | str, device_type: str, ranks_per_node: int | None = None) -> int:
    """``data.num_workers`` resolved: an integer as given; ``auto``: 0 on a CPU (its cores run the
    compute threads), min(6, the rank's share of the cores - 1) on a GPU (fairseq BASE runs 6)."""
    if requested != "auto":
        return int(requested)
    if device_type != "cuda":
        return 0
    per_rank = available_cores() // max(1, ranks_per_node or local_world_size())
    return max(0, min(6, per_rank - 1))
