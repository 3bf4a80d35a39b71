"""``launch/gpu_wheels.sh``: the wheels the GPU machine's image lacks. Nothing here downloads: the pins
(``--list``) cover every missing package, one version each, inside what setup.py asks; the checker
(``--check``) passes a consistent set and names each fault of a broken one (fake wheels in a temporary
folder); and the real ``.whl/``, where this checkout has one (made here, never in CI), passes it."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name as canon

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "launch" / "gpu_wheels.sh"
# what the image lacks (its package list: /work/.library/device/KINDS.md), ds_w2v's needs and theirs
MISSING_FROM_IMAGE = ["deepspeed", "hjson", "pydantic", "pydantic-core", "annotated-types", "typing-inspection",
                      "webdataset", "braceexpand", "jiwer", "rapidfuzz", "soundfile", "cffi", "pycparser", "soxr",
                      "espeakng-loader"]


def _script(*args: str, whl_dir: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHON=sys.executable)  # the checker needs only `packaging`
    if whl_dir is not None:
        env["WHL_DIR"] = str(whl_dir)
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def _pins() -> dict[str, str]:
    proc = _script("--list")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split()
    assert all(line.count("==") == 1 for line in lines), lines  # exact pins only
    names = [canon(line.split("==")[0]) for line in lines]
    assert len(names) == len(set(names)), f"a package pinned twice: {names}"
    return dict(zip(names, (line.split("==")[1] for line in lines)))


def _setup_requirements() -> list[Requirement]:
    """install_requires and every extra of setup.py, read as literals (setup.py is not run)."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "setup")
    kw = {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg in ("install_requires", "extras_require")}
    return [Requirement(r) for r in kw["install_requires"] + [r for rs in kw["extras_require"].values() for r in rs]]


def test_help_prints_usage_and_install_line():
    proc = _script("--help")
    assert proc.returncode == 0, proc.stderr
    for word in ("--clean", "--list", "--check", "--installed", "--target /tmp/site .whl/*.whl", "PYTHONPATH=/tmp/site"):
        assert word in proc.stdout, word
    assert _script("--bogus").returncode != 0


def test_pins_cover_every_package_the_image_lacks():
    pins = _pins()
    assert not [n for n in map(canon, MISSING_FROM_IMAGE) if n not in pins], pins


def test_pins_meet_setup_py():
    pins = _pins()
    reqs = {canon(r.name): r for r in _setup_requirements()}
    assert reqs["deepspeed"].specifier.contains(pins["deepspeed"]), (reqs["deepspeed"], pins["deepspeed"])
    for name, version in pins.items():
        if name in reqs:
            assert reqs[name].specifier.contains(version), f"pinned {name}=={version}; setup.py asks {reqs[name]}"


# ---- the checker, on fake wheels ---------------------------------------------------------------------------

def _fake_wheel(folder: Path, name: str, version: str, requires=(), tag="py3-none-any", files=None) -> Path:
    dist = f"{canon(name).replace('-', '_')}-{version}"
    path = folder / f"{dist}-{tag}.whl"
    meta = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nRequires-Python: >=3.8\n"
    meta += "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{dist}.dist-info/METADATA", meta)
        zf.writestr(f"{dist}.dist-info/WHEEL", f"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: {tag}\n")
        for fname, text in (files or {"placeholder.py": ""}).items():
            zf.writestr(fname, text)
    return path


def _deepspeed_files(op_built=False) -> dict[str, str]:
    return {"deepspeed/__init__.py": "",
            "deepspeed/git_version_info_installed.py":
                f"version='0.19.8'\ninstalled_ops={{'fused_adam': {op_built}, 'cpu_adam': False}}\n",
            "deepspeed/ops/op_builder/builder.py": "",
            "deepspeed/ops/csrc/adam/multi_tensor_adam.cu": "",
            "deepspeed/ops/csrc/adam/fused_adam_frontend.cpp": ""}


@pytest.fixture
def fake_set(tmp_path) -> Path:
    """A wheel for every pin, with the requirements that matter to the checker: exact, ranged, an
    image package, a marker for another platform and an extra (both to be ignored)."""
    folder = tmp_path / "whl"
    folder.mkdir()
    pins = _pins()
    requires = {"deepspeed": ["hjson", "pydantic>=2.0.0", "torch>=2.0.0", "numpy"],
                "pydantic": [f"pydantic-core=={pins['pydantic-core']}", "typing-extensions>=4.6",
                             "tzdata; platform_system == 'Windows'", "email-validator>=2; extra == 'email'"],
                "jiwer": ["click>=8.1.8", "rapidfuzz>=3.9.7"]}
    for name, version in pins.items():
        _fake_wheel(folder, name, version, requires.get(name, ()),
                    files=_deepspeed_files() if name == "deepspeed" else None)
    return folder


def test_check_passes_a_consistent_set(fake_set):
    proc = _script("--check", whl_dir=fake_set)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok: complete and consistent" in proc.stdout
    assert "click>=8.1.8 (jiwer)" in proc.stdout  # an image package's bound, reported since it is unread here


def test_check_names_each_fault(fake_set):
    (soxr,) = fake_set.glob("soxr-*.whl")
    soxr.unlink()                                                      # a pin with no wheel
    _fake_wheel(fake_set, "hjson", "3.0.0")                            # a second version
    (pydantic,) = fake_set.glob("pydantic-*.whl")
    pydantic.unlink()
    _fake_wheel(fake_set, "pydantic", _pins()["pydantic"], ["pydantic-core==9.9.9", "not-in-image>=1"])
    (ds,) = fake_set.glob("deepspeed-*.whl")
    ds.unlink()                                                        # an op compiled in
    files = _deepspeed_files(op_built=True) | {"deepspeed/ops/adam/fused_adam_op.cpython-312-x86_64-linux-gnu.so": ""}
    _fake_wheel(fake_set, "deepspeed", _pins()["deepspeed"], tag="cp312-cp312-manylinux_2_28_x86_64", files=files)
    _fake_wheel(fake_set, "onlymac", "1.0", tag="cp312-cp312-macosx_11_0_arm64")  # no tag the machine accepts
    (fake_set / "broken-1.0-py3-none-any.whl").write_bytes(b"not a zip")

    pins = _pins()
    proc = _script("--check", whl_dir=fake_set)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    for fault in (f"soxr=={pins['soxr']}: pinned, no wheel", "two versions of hjson",
                  f"pydantic requires pydantic-core==9.9.9; the wheel is pydantic-core {pins['pydantic-core']}",
                  "not-in-image>=1: neither a wheel here nor in the image",
                  "deepspeed: tag ['cp312-cp312-manylinux_2_28_x86_64'], not py3-none-any",
                  "deepspeed: compiled files inside", "deepspeed: ops built in (need DS_BUILD_OPS=0): ['fused_adam']",
                  "onlymac-1.0-cp312-cp312-macosx_11_0_arm64.whl: no tag", "broken-1.0-py3-none-any.whl: unreadable"):
        assert fault in proc.stderr, (fault, proc.stderr)


def test_check_fails_without_the_folder(tmp_path):
    proc = _script("--check", whl_dir=tmp_path / "absent")
    assert proc.returncode == 1 and "make it with: bash launch/gpu_wheels.sh" in proc.stderr


# ---- the real .whl/, where this checkout has one ----------------------------------------------------------

def test_real_wheels_are_complete_and_consistent():
    folder = ROOT / ".whl"
    have = {canon(p.name.split("-")[0]) for p in folder.glob("*.whl")}
    missing = sorted(set(_pins()) - have)
    if missing:
        pytest.skip(f"no complete .whl/ here (missing {', '.join(missing)}): made by bash launch/gpu_wheels.sh, "
                    "which downloads; CI does not")
    proc = _script("--check", whl_dir=folder)
    assert proc.returncode == 0, proc.stdout + proc.stderr
