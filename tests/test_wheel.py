"""A wheel built from the checkout works outside it: built (``pip wheel``), installed into a fresh
venv that sees this environment's dependencies but not the checkout's editable ds_w2v, then run
from an empty directory — ``ds-w2v pretrain --recipe pretrain_tiny`` trains, and every shipped
recipe's DeepSpeed config resolves inside the installed package. The sdist carries the configs too.
~1 min on 2 cores, most of it the two-update run."""
from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from ds_w2v.cli import main as cli

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted(p.name for p in (ROOT / "ds_w2v" / "recipes").glob("*.yaml"))
DS_CONFIGS = sorted(p.name for p in (ROOT / "ds_configs").glob("*.json"))
# launcher variables an earlier in-process test may have left in os.environ
_DIST = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_SIZE", "LOCAL_WORLD_SIZE", "CROSS_RANK", "CROSS_SIZE",
         "MASTER_ADDR", "MASTER_PORT")


def _run(cmd, timeout_s, **kwargs) -> str:
    """stdout + stderr of ``cmd``; fails with their tail on a non-zero exit or past ``timeout_s``."""
    try:
        proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout_s, **kwargs)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"") + (e.stderr or b"")
        out = out.decode(errors="replace") if isinstance(out, bytes) else out
        pytest.fail(f"{cmd[0]} {cmd[1] if len(cmd) > 1 else ''}: still running after {timeout_s} s:\n{out[-4000:]}")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"exit {proc.returncode}: {' '.join(map(str, cmd))}\n{out[-4000:]}"
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", out, ROOT], 300)
    (whl,) = out.glob("ds_w2v-*.whl")
    return whl


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory):
    """(python, ds-w2v script, clean environment, the new venv's site-packages) of a fresh venv
    holding the wheel, its dependencies visible through a ``.pth`` listing this environment's
    site-packages: a path line only adds the path, so the editable install's finder ``.pth``
    there is not run and ``import ds_w2v`` can only find the wheel's copy."""
    root = tmp_path_factory.mktemp("venv") / "v"
    _run([sys.executable, "-m", "venv", "--without-pip", root], 120)
    python = root / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in _DIST and k not in ("PYTHONPATH", "PYTHONHOME",
                                                                                 "VIRTUAL_ENV")}
    env.update(DS_ACCELERATOR="cpu", PYTHONNOUSERSITE="1", PATH=f"{root / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    # installed before the .pth exists, so pip sees no other ds_w2v to replace
    _run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index", wheel], 180,
         env=env)
    purelib = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], 60,
                        env=env).strip())
    (purelib / "test_env_deps.pth").write_text("".join(f"{p}\n" for p in site.getsitepackages()))
    return python, root / "bin" / "ds-w2v", env, purelib


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    # the smallest corpus synth makes: 24 core-test speakers + 1 train speaker, 3 sentences each
    root = tmp_path_factory.mktemp("timit")
    assert cli(["synth", "timit", "--out", str(root / "TIMIT"), "--speakers", "25", "--sentences-per-speaker", "3",
                "--workers", "1", "--overwrite"]) == 0
    assert cli(["prepare", "--format", "timit", str(root / "TIMIT"), "--out", str(root / "shards"), "--workers", "1",
                "--no-progress"]) == 0
    return root / "shards"


def test_wheel_and_sdist_carry_the_recipes_and_deepspeed_configs(wheel, tmp_path):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"ds_w2v/ds_configs/{n}" for n in DS_CONFIGS} <= names
    assert {f"ds_w2v/recipes/{n}" for n in RECIPES} <= names
    # the research around the product (demo, report, study, GPU check) stays in the checkout
    research = sorted(n for n in names if n.startswith(("experiments/", "ds_w2v/study/"))
                      or n in ("ds_w2v/demo.py", "ds_w2v/report.py") or n.startswith("ds_w2v/bench/gpu_"))
    assert research == []
    # the sdist through setuptools' PEP 517 hook, as pip and `python -m build` make it
    sdist = _run([sys.executable, "-c", f"import setuptools.build_meta as b; print(b.build_sdist({str(tmp_path)!r}))"],
                 120, cwd=ROOT).strip().splitlines()[-1]
    with tarfile.open(tmp_path / sdist) as tar:
        members = {m.split("/", 1)[1] for m in tar.getnames() if "/" in m}
    assert {f"ds_configs/{n}" for n in DS_CONFIGS} | {"setup.py", "README.md", "MANIFEST.in"} <= members


# every shipped recipe, loaded by the installed package from an empty directory: where its
# DeepSpeed config resolves, and that it builds (CPU recipes for CPU, the others for 8 GPUs)
_RESOLVE = """
import json, sys
import ds_w2v
from ds_w2v.train.config import RECIPE_DIR, load_config
from ds_w2v.train.deepspeed_config import build_ds_config, find_ds_config
out = {"ds_w2v": ds_w2v.__file__, "editable_finder": [type(f).__module__ for f in sys.meta_path
                                                       if "editable" in type(f).__module__]}
for recipe in sorted(RECIPE_DIR.glob("*.yaml")):
    config = load_config(recipe.stem, ["data.shards=/nowhere"])
    device = "cpu" if config.deepspeed_config.endswith(("cpu.json", "cpu_zero3.json")) else "cuda"
    ds = build_ds_config(config, 1 if device == "cpu" else 8, device)
    out[recipe.stem] = {"ds_config": str(find_ds_config(config.deepspeed_config)), "device": device,
                        "optimizer": "optimizer" in ds}
print(json.dumps(out))
"""


def test_installed_package_resolves_every_recipe_outside_the_checkout(venv, tmp_path):
    python, _, env, purelib = venv
    got = json.loads(_run([python, "-c", _RESOLVE], 120, cwd=tmp_path, env=env).strip().splitlines()[-1])
    package = purelib / "ds_w2v"
    assert Path(got["ds_w2v"]).parent == package and got["editable_finder"] == []
    assert sorted(f"{k}.yaml" for k in got if k not in ("ds_w2v", "editable_finder")) == RECIPES
    for recipe in RECIPES:
        r = got[recipe.removesuffix(".yaml")]
        assert Path(r["ds_config"]).parent == package / "ds_configs", (recipe, r)
    assert got["finetune_ctc_tiny"]["device"] == "cpu" and not got["finetune_ctc_tiny"]["optimizer"]
    assert got["finetune_ctc_original"]["device"] == "cuda" and got["finetune_ctc_original"]["optimizer"]


def test_ds_w2v_pretrain_runs_from_the_wheel(venv, shards, tmp_path):
    _, ds_w2v, env, _ = venv
    cwd, run = tmp_path / "elsewhere", tmp_path / "run"
    cwd.mkdir()
    _run([ds_w2v, "pretrain", "--recipe", "pretrain_tiny", f"data.shards={shards}", f"run_dir={run}",
          "max_updates=2", "precision=fp32", "data.batch_s=12", "global_batch_s=24", "log_every=1",
          "eval_every=1000", "save_every=1000", "data.dev_split=null", "device=cpu"], 240, cwd=cwd, env=env)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if "train/loss" in r]
    assert [r["update"] for r in train] == [1, 2]
    assert list(cwd.iterdir()) == []  # everything went into run_dir, nothing into the working directory


def test_version_from_the_installed_console_script(venv):
    import ds_w2v as checkout

    _, ds_w2v, env, _ = venv
    assert _run([ds_w2v, "--version"], 60, env=env).strip() == f"ds-w2v {checkout.__version__}"
