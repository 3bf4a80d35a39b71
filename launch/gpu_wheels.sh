#!/usr/bin/env bash
# Wheels for the lent GPU machine (one H200, offline; its image: Python 3.12.3, torch 2.11.0+cu130,
# nvcc 13.0, ninja): the packages ds_w2v needs that the image lacks, for CPython 3.12 manylinux
# x86_64, built here into .whl/ (git-ignored), which travels with a device call that names it in carry.
#   bash launch/gpu_wheels.sh [--clean]       fill .whl/, reusing the wheels already there (--clean: empty it first)
#   bash launch/gpu_wheels.sh --list          the pins (PINS in this script), one name==version a line
#   bash launch/gpu_wheels.sh --check         check .whl/ only: every pin there, one version each, every
#                                             requirement met by a wheel or the image, deepspeed pure; downloads nothing
#   bash launch/gpu_wheels.sh --check --installed   there, after the install line: also the versions installed
# Env: WHL_DIR (default: .whl in the repository root); PYTHON (runs pip and builds deepspeed; default
# .venv/bin/python, else python3). Binary wheels come from `pip download --only-binary=:all:`; deepspeed
# is an sdist on PyPI, so it is built here as a py3-none-any wheel with DS_BUILD_OPS=0: no op is
# compiled here; there, each op is JIT-compiled on first use with the image's nvcc + ninja.
# There, with carry [".whl"] (the image's torch stays; no venv):
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD PATH=/tmp/site/bin:$PATH
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# One version of each (two stop the install there). Bump a pin here and rerun: the old wheel goes.
PINS=(
  "deepspeed==0.19.8"          # setup.py: >=0.16,<0.20; the version the CPU tests run. sdist only on PyPI: built here
  "hjson==3.1.0"               # deepspeed requires it (JSON-with-comments configs); the CPU venv's version
  "pydantic==2.14.4"           # deepspeed requires pydantic>=2 (its config models); the CPU venv's version
  "pydantic-core==2.50.5"      # exactly the version pydantic 2.14.4 requires (pydantic-core==2.50.5); cp312 build
  "annotated-types==0.8.0"     # pydantic requires >=0.6.0
  "typing-inspection==0.4.5"   # pydantic requires >=0.4.4
  "typing-extensions==4.16.0"  # pydantic + pydantic-core require >=4.16.0; the image has typing-extensions, but its
                               # version was never read there and 4.16 is recent: carried so `import pydantic` cannot
                               # fail on an older one (a newer typing_extensions keeps the old names; torch is fine)
  "webdataset==1.0.2"          # setup.py: >=0.2.86; the CPU venv's version
  "braceexpand==0.1.7"         # webdataset requires it (shard patterns like shard-{000..099}.tar)
  "jiwer==4.0.0"               # setup.py: >=3.0 (WER/CER of CTC fine-tuning); the CPU venv's version
  "rapidfuzz==3.14.6"          # jiwer 4.0 requires >=3.9.7; cp312 build
  "soundfile==0.14.0"          # setup.py: >=0.12; its manylinux wheel bundles libsndfile (the image has none)
  "cffi==2.1.1"                # soundfile requires >=1.0; cp312 build
  "pycparser==3.12"            # cffi requires it on CPython
  "soxr==1.1.0"                # setup.py: >=0.3 (resampling in prepare); abi3 build
  "espeakng-loader==0.2.4"     # setup.py's demo extra: >=0.2; bundles libespeak-ng + voices (the biggest, ~10 MB)
)
# pip matches manylinux_2_N exactly, so each N a pinned wheel may carry is named; all <= 2_28 (glibc 2.28).
PLATFORMS=(manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64)
MAX_MIB=40  # of the 64 MiB a device call may carry in all; the checkout itself needs the rest
# The image's Python packages (/work/.library/device/KINDS.md, "Python packages already there", read on a
# machine running it on 2026-11-17): a requirement one of them meets needs no wheel. Versions unread.
IMAGE_PACKAGES="absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch
build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx
huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin
jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax
llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack
multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda numpy numpyro
nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime nvidia-cudnn-cu13 nvidia-cufft
nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse nvidia-cusparselt-cu13 nvidia-ml-py
nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx onnx-ir onnxruntime onnxscript
opencv-python-headless optax opt-einsum opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec
patsy peft pillow pip pluggy portalocker prometheus-client propcache protobuf psutil pyarrow pybind11
py-cpuinfo pygments pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock
pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich sacrebleu
safetensors scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece sentence-transformers
setuptools shellingham simplejson six sortedcontainers statsmodels sympy tabulate tensorboard
tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz torch torchaudio
torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope triton typer
typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp"

die() { echo "gpu_wheels: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }

clean=0 list=0 check=0 installed=0
for a in "$@"; do
  case "$a" in
    --clean) clean=1 ;;
    --list) list=1 ;;
    --check) check=1 ;;
    --installed) installed=1 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$a' (see --help)" ;;
  esac
done
if [ "$list" = 1 ]; then printf '%s\n' "${PINS[@]}"; exit 0; fi
[ "$installed" = 1 ] && [ "$check" = 0 ] && die "--installed goes with --check"

WHL_DIR="${WHL_DIR:-$ROOT/.whl}"
if [ -n "${PYTHON:-}" ]; then PY="$PYTHON"
elif [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"
else PY=python3; fi

# The checker: reads every wheel in WHL_DIR (not its file name alone: its METADATA and WHEEL too).
check_wheels() {
  IMAGE_PACKAGES="$IMAGE_PACKAGES" MAX_MIB="$MAX_MIB" PLATFORMS="${PLATFORMS[*]}" INSTALLED="$installed" \
    "$PY" - "$WHL_DIR" "${PINS[@]}" <<'PY'
import ast, os, re, sys, zipfile
from email.parser import Parser
from pathlib import Path
try:
    from packaging import tags
    from packaging.markers import Marker
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.utils import canonicalize_name as canon, parse_wheel_filename
    from packaging.version import Version
except ImportError:
    sys.exit(f"gpu_wheels: the check needs 'packaging' in {sys.executable}")

whl_dir, pins = Path(sys.argv[1]), dict(p.split("==") for p in sys.argv[2:])
pins = {canon(n): v for n, v in pins.items()}
image = {canon(n) for n in os.environ["IMAGE_PACKAGES"].split()}
installed = os.environ["INSTALLED"] == "1"
platforms = os.environ["PLATFORMS"].split()
# the GPU machine's interpreter: CPython 3.12.3 on Linux x86-64
env = {"python_version": "3.12", "python_full_version": "3.12.3", "implementation_name": "cpython",
       "implementation_version": "3.12.3", "platform_python_implementation": "CPython", "os_name": "posix",
       "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64", "extra": ""}
supported = set(tags.cpython_tags((3, 12), abis=["cp312"], platforms=platforms))
supported |= set(tags.compatible_tags((3, 12), "cp312", platforms))
errors, notes, wheels = [], [], {}

for path in sorted(whl_dir.glob("*.whl")):
    try:
        fname, fver, _, ftags = parse_wheel_filename(path.name)
        with zipfile.ZipFile(path) as zf:
            if (bad := zf.testzip()) is not None:
                raise zipfile.BadZipFile(f"bad CRC in {bad}")
            names = zf.namelist()
            meta_name = next(n for n in names if re.fullmatch(r"[^/]+\.dist-info/METADATA", n))
            meta = Parser().parsestr(zf.read(meta_name).decode())
            info = {"path": path, "names": names, "tags": ftags, "meta": meta,
                    "version": Version(meta["Version"]), "size": path.stat().st_size}
            if "deepspeed/git_version_info_installed.py" in names:  # what DeepSpeed's setup.py built in
                src = zf.read("deepspeed/git_version_info_installed.py").decode()
                info["installed_ops"] = ast.literal_eval(re.search(r"installed_ops=(\{.*\})", src)[1])
    except Exception as e:  # a truncated download, a stray file: say which
        errors.append(f"{path.name}: unreadable as a wheel ({type(e).__name__}: {e})")
        continue
    name = canon(meta["Name"])
    if (name, info["version"]) != (canon(fname), fver):
        errors.append(f"{path.name}: its METADATA says {meta['Name']} {meta['Version']}")
    if name in wheels:
        errors.append(f"two versions of {name}: {wheels[name]['path'].name} and {path.name} (the install refuses two)")
        continue
    wheels[name] = info
    if not ftags & supported:
        errors.append(f"{path.name}: no tag CPython 3.12 on manylinux <= 2_28 x86_64 accepts")
    if (rp := meta.get("Requires-Python")) and not SpecifierSet(rp).contains("3.12.3"):
        errors.append(f"{path.name}: Requires-Python {rp} excludes 3.12.3")
    if name not in pins:
        notes.append(f"{path.name}: not pinned in gpu_wheels.sh (kept, checked like the others)")
    if name in image:
        notes.append(f"{name}: shadows the image's own (/tmp/site comes first on PYTHONPATH)")

for name, version in pins.items():
    if name not in wheels:
        errors.append(f"{name}=={version}: pinned, no wheel in {whl_dir}")
    elif wheels[name]["version"] != Version(version):
        errors.append(f"{name}: pinned {version}, the wheel is {wheels[name]['version']}")

floors = []  # requirements on the image's packages with a version bound: unread here
for name, info in wheels.items():
    for line in info["meta"].get_all("Requires-Dist") or []:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate(env):
            continue  # an extra, or another platform
        dep = canon(req.name)
        if dep in wheels:
            if not req.specifier.contains(wheels[dep]["version"], prereleases=True):
                errors.append(f"{name} requires {req}; the wheel is {dep} {wheels[dep]['version']}")
        elif dep in image:
            if req.specifier:
                floors.append((dep, str(req.specifier), name))
        else:
            errors.append(f"{name} requires {req}: neither a wheel here nor in the image")

if (ds := wheels.get("deepspeed")) is not None:
    names = ds["names"]
    if {str(t) for t in ds["tags"]} != {"py3-none-any"}:
        errors.append(f"deepspeed: tag {sorted(map(str, ds['tags']))}, not py3-none-any (an op was compiled in)")
    if so := [n for n in names if n.endswith((".so", ".pyd"))]:
        errors.append(f"deepspeed: compiled files inside: {so[:3]}")
    if "installed_ops" not in ds:
        errors.append("deepspeed: no deepspeed/git_version_info_installed.py (not built by its setup.py?)")
    elif built := [k for k, v in ds["installed_ops"].items() if v]:
        errors.append(f"deepspeed: ops built in (need DS_BUILD_OPS=0): {built}")
    csrc = [n for n in names if n.startswith("deepspeed/ops/csrc/")]
    if not any(n.endswith(".cu") for n in csrc) or not any(n.endswith(".cpp") for n in csrc) \
            or "deepspeed/ops/op_builder/builder.py" not in names:
        errors.append("deepspeed: ops/csrc sources or op_builder missing: the JIT build there needs them")

if installed:  # there, after the install line: what Python imports is what was checked
    from importlib.metadata import PackageNotFoundError, version as installed_version
    for name, info in wheels.items():
        try:
            got = Version(installed_version(name))
        except PackageNotFoundError:
            got = None
        if got != info["version"]:
            errors.append(f"{name}: installed {got}, the wheel is {info['version']} (PYTHONPATH=/tmp/site?)")
    for dep, spec, by in floors:
        try:
            got = installed_version(dep)
        except PackageNotFoundError:
            errors.append(f"{dep}{spec} (for {by}): not installed")
            continue
        if not SpecifierSet(spec).contains(got, prereleases=True):
            errors.append(f"{dep}{spec} (for {by}): installed {got}")

total = sum(i["size"] for i in wheels.values())
for name, info in sorted(wheels.items()):
    print(f"  {info['size'] / 2**20:7.2f} MiB  {name}=={info['version']}  {info['path'].name}")
print(f"  {total / 2**20:7.2f} MiB  in all, {len(wheels)} wheels in {whl_dir} (limit {os.environ['MAX_MIB']} MiB)")
if total > int(os.environ["MAX_MIB"]) * 2**20:
    errors.append(f"{total / 2**20:.1f} MiB in all: over {os.environ['MAX_MIB']} MiB")
if floors and not installed:
    print("  the image's packages must meet (versions unread here; --check --installed there reads them): "
          + ", ".join(f"{d}{s} ({b})" for d, s, b in sorted(set(floors))))
for n in notes:
    print(f"  note: {n}")
for e in errors:
    print(f"gpu_wheels: FAIL {e}", file=sys.stderr)
print("gpu_wheels: " + (f"{len(errors)} problem(s)" if errors else "ok: complete and consistent for CPython 3.12"
                        + (" (installed versions too)" if installed else "")))
sys.exit(1 if errors else 0)
PY
}

if [ "$check" = 1 ]; then
  [ -d "$WHL_DIR" ] || die "no $WHL_DIR (make it with: bash launch/gpu_wheels.sh)"
  check_wheels; exit
fi

# The wheel file of NAME==VERSION in WHL_DIR, if any (names compared as PEP 503 normalises them).
norm() { echo "$1" | tr '[:upper:]' '[:lower:]' | sed -E 's/[-_.]+/-/g'; }
find_wheel() {  # NAME VERSION -> prints the file's path; removes the same NAME at another VERSION
  local want found="" f base dist ver
  want="$(norm "$1")"
  for f in "$WHL_DIR"/*.whl; do
    [ -e "$f" ] || continue
    base="$(basename "$f")"; dist="${base%%-*}"; ver="${base#*-}"; ver="${ver%%-*}"
    [ "$(norm "$dist")" = "$want" ] || continue
    if [ "$ver" = "$2" ]; then found="$f"
    else echo "gpu_wheels: removing $base (pinned: $1==$2)" >&2; rm -f "$f"; fi
  done
  [ -n "$found" ] && echo "$found"
  return 0
}

mkdir -p "$WHL_DIR"
if [ "$clean" = 1 ]; then rm -f "$WHL_DIR"/*.whl; fi
platform_args=(); for p in "${PLATFORMS[@]}"; do platform_args+=(--platform "$p"); done
for pin in "${PINS[@]}"; do
  name="${pin%%==*}" version="${pin#*==}"
  if [ -n "$(find_wheel "$name" "$version")" ]; then echo "gpu_wheels: reusing $pin"; continue; fi
  if [ "$name" = deepspeed ]; then
    "$PY" -c "import torch, setuptools" 2>/dev/null \
      || die "building deepspeed needs torch and setuptools in $PY (its setup.py imports torch; set PYTHON=...)"
    echo "gpu_wheels: building $pin (sdist -> py3-none-any wheel, DS_BUILD_OPS=0, about a minute)"
    # No op compiled in: DS_BUILD_OPS=0 and no DS_BUILD_<OP>=1 left from the caller's environment.
    # DS_ACCELERATOR=cuda: the wheel records the target (accelerator_name='cuda'), not this CPU machine.
    # --no-binary: from PyPI's sdist, never a wheel a local find-links may hold.
    if ! env $(compgen -e | grep '^DS_BUILD_' | sed 's/^/-u /') DS_BUILD_OPS=0 DS_ACCELERATOR=cuda \
        "$PY" -m pip wheel -q --no-deps --no-build-isolation --no-cache-dir --no-binary deepspeed \
        -w "$WHL_DIR" "$pin"; then
      die "building $pin failed (output above): network to PyPI? torch importable in $PY?"
    fi
  else
    echo "gpu_wheels: downloading $pin"
    if ! "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${platform_args[@]}" -d "$WHL_DIR" "$pin"; then
      die "downloading $pin failed (output above): no CPython 3.12 wheel for manylinux <= 2_28 x86_64 at that version, or no network to PyPI"
    fi
  fi
  [ -n "$(find_wheel "$name" "$version")" ] || die "$pin: pip succeeded but no $name $version wheel is in $WHL_DIR"
done

check_wheels || die "the wheels in $WHL_DIR are not a consistent set (above); --clean starts afresh"
whl_ref="$WHL_DIR"; [ "$WHL_DIR" = "$ROOT/.whl" ] && whl_ref=".whl"
echo "gpu_wheels: on the GPU machine (carry [\"$whl_ref\"]), from the repository root:"
echo "  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $whl_ref/*.whl && export PYTHONPATH=/tmp/site:\$PWD PATH=/tmp/site/bin:\$PATH"
