"""Bad configurations and command lines, end to end (``python -m ds_w2v.train ...``):
exit 1, quickly, one line on stderr naming the key or file, no traceback, and no process group
ever started (a probe reports ``torch.distributed.is_initialized()`` as the process exits).
tests/train/test_config.py checks config loading in-process; this is the CLI path."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from ds_w2v import build_model, save_model

sys.path.insert(0, str(Path(__file__).parent))  # pytest runs with --import-mode=importlib
from reliability_helpers import FAST, subprocess_env  # noqa: E402

# ``python -m ds_w2v.train ARGS`` plus a report, at exit, of whether a process group was started
PROBE = (  # torch imported first: `import ds_w2v` no longer does, and a first import at exit fails
    "import atexit, runpy\n"
    "import torch.distributed as dist\n"
    "def report():\n"
    "    print(f'PROCESS_GROUP_STARTED={dist.is_available() and dist.is_initialized()}', flush=True)\n"
    "atexit.register(report)\n"
    "runpy.run_module('ds_w2v.train', run_name='__main__', alter_sys=True)\n"
)

# (command, recipe, overrides, what stderr must say); {shards}/{ctc_shards}/{tmp} are filled in
CASES = {
    "unknown_key": ("pretrain", "pretrain_tiny", ["optim.lrr=0.1"], "config key optim.lrr: unknown"),
    "wrong_type": ("pretrain", "pretrain_tiny", ["max_updates=many"], "config key max_updates: expected an integer"),
    "batch_does_not_divide": ("pretrain", "pretrain_tiny", ["global_batch_s=30"],
                              "config key global_batch_s: 30 audio-s is not a whole multiple"),
    "missing_shards_dir": ("pretrain", "pretrain_tiny", ["data.shards={tmp}/absent"],
                           "{tmp}/absent/dataset.json: no dataset index"),
    "missing_split": ("pretrain", "pretrain_tiny", ["data.train_split=nope"], "no split 'nope'; known splits: train"),
    "missing_recipe": ("pretrain", "pretrain_nope", [], "pretrain_nope: no such recipe file"),
    "missing_deepspeed_config": ("pretrain", "pretrain_tiny", ["deepspeed_config=nope.json"],
                                 "config key deepspeed_config: nope.json: no such file"),
    "fp16_on_cpu": ("pretrain", "pretrain_tiny", ["precision=fp16"], "config key precision: fp16 needs a GPU"),
    "compile_with_zero3": ("pretrain", "pretrain_tiny", ["compile=blocks", "deepspeed_config=cpu_zero3.json"],
                           "config key compile: blocks is refused with ZeRO-3"),
    "max_train_s_not_positive": ("pretrain", "pretrain_tiny", ["max_train_s=0"], "config key max_train_s: must be > 0"),
    "vocabulary_differs": ("finetune-ctc", "finetune_ctc_tiny",
                           ["data.shards={ctc_shards}", "model.init={tmp}/other.pt"],
                           "model.init: the checkpoint's vocabulary (7 symbols) differs from the data's"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_config_fails_in_one_line_before_any_process_group(speech, tmp_path, case):
    command, recipe, extra, message = CASES[case]
    fill = {"tmp": tmp_path, "shards": speech["dir"], "ctc_shards": speech["timit"]}
    if case == "vocabulary_differs":
        save_model(build_model("tiny", "ctc", vocab=["<pad>", "<s>", "</s>", "<unk>", "|", "x", "y"]),
                   tmp_path / "other.pt")
    args = [f"data.shards={speech['dir']}", f"run_dir={tmp_path / 'run'}", *FAST] + [a.format(**fill) for a in extra]
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", PROBE, command, "--recipe", recipe, *args], capture_output=True,
                          text=True, timeout=120, env=subprocess_env())
    elapsed_s = time.monotonic() - started
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert len(err) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert err[0].startswith(f"ds-w2v {command}: error: ") and message.format(**fill) in err[0], err[0]
    assert "PROCESS_GROUP_STARTED=False" in proc.stdout, proc.stdout[-2000:]
    assert not (tmp_path / "run" / "checkpoints").exists()
    assert elapsed_s < 60, elapsed_s  # refused from the config and the index, not after a model is trained


# (argv after ``python -m ds_w2v.train``, exit code, what the one stderr line must say)
CLI_CASES = {
    "local_rank_twice": (["--local_rank=0", "pretrain", "--local_rank", "1", "--recipe", "pretrain_tiny"], 2,
                         "ds-w2v: error: --local_rank given 2 times (0, 1)"),
    "local_rank_malformed": (["--local_rank=one", "pretrain", "--recipe", "pretrain_tiny"], 2,
                             "ds-w2v: error: --local_rank='one': not a non-negative integer"),
    "local_rank_without_value": (["pretrain", "--recipe", "pretrain_tiny", "--local_rank"], 2,
                                 "ds-w2v: error: --local_rank needs a value"),
    "local_rank_disagrees_with_env": (["--local_rank=1", "pretrain", "--recipe", "pretrain_tiny"], 2,
                                      "ds-w2v: error: --local_rank=1 disagrees with LOCAL_RANK=0"),
    "evaluate_unknown_split": (["evaluate", "data.shards={shards}", "model.init={tmp}/m.pt", "--split", "nope"], 1,
                               "ds-w2v evaluate: error: {shards}/dataset.json: no split 'nope'; known splits: train"),
    "evaluate_without_index": (["evaluate", "data.shards={tmp}/absent", "model.init={tmp}/m.pt"], 1,
                               "ds-w2v evaluate: error: {tmp}/absent/dataset.json: no dataset index"),
    "evaluate_without_model": (["evaluate", "data.shards={shards}", "--split", "train"], 1,
                               "ds-w2v evaluate: error: evaluate needs model.init="),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_bad_command_line_fails_in_one_line(speech, tmp_path, case):
    argv, code, message = CLI_CASES[case]
    save_model(build_model("tiny", "pretrain"), tmp_path / "m.pt")
    fill = {"tmp": tmp_path, "shards": speech["dir"]}
    env = subprocess_env(LOCAL_RANK="0") if case == "local_rank_disagrees_with_env" else subprocess_env()
    proc = subprocess.run([sys.executable, "-c", PROBE, *[a.format(**fill) for a in argv]], capture_output=True,
                          text=True, timeout=120, env=env, cwd=tmp_path)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == code, proc.stderr[-3000:]
    assert len(err) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert err[0].startswith(message.format(**fill)), err[0]
    assert "PROCESS_GROUP_STARTED=False" in proc.stdout, proc.stdout[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]  # nothing written (no runs/run)
