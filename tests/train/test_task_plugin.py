"""A task on a new head, registered in one file outside the package (``assets/duration_task.py``),
trains, evaluates and runs inference through the real console script: ``DS_W2V_PLUGINS`` names
the file, and nothing in ds_w2v knows it. Also the plugin loader's own refusals, one line each."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ds_w2v

sys.path.insert(0, str(Path(__file__).parents[1] / "reliability"))  # pytest runs with --import-mode=importlib
from reliability_helpers import subprocess_env  # noqa: E402  (less an earlier in-process Trainer's variables)

PLUGIN = Path(__file__).parent / "assets" / "duration_task.py"
BIN = Path(sys.executable).parent
FAST = ["precision=fp32", "data.batch_s=12", "global_batch_s=24", "log_every=1", "save_every=1000",
        "data.shuffle_buffer=16", "device=cpu", "max_updates=3", "eval_every=3"]


def ds_w2v_cli(*args: str, plugins: str | None = str(PLUGIN), timeout: int = 600) -> subprocess.CompletedProcess:
    env = subprocess_env(**({"DS_W2V_PLUGINS": plugins} if plugins is not None else {}))
    if plugins is None:
        env.pop("DS_W2V_PLUGINS", None)
    return subprocess.run([str(BIN / "ds-w2v"), *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_a_plugin_task_trains_evaluates_and_predicts_through_the_console_script(timit_shards, tmp_path):
    pytest.importorskip("deepspeed")
    import soundfile as sf

    package = Path(ds_w2v.__file__).parent
    assert not [p for p in package.rglob("*.py") if "duration" in p.read_text() and "finetune-duration" in p.read_text()]
    # the help lists the task's commands only when the plugin is named
    assert "finetune-duration" in ds_w2v_cli("--help").stdout
    assert "finetune-duration" not in ds_w2v_cli("--help", plugins=None).stdout

    run = tmp_path / "run"
    train = ds_w2v_cli("finetune-duration", "--recipe", "finetune_cls_tiny", f"data.shards={timit_shards}",
                       f"run_dir={run}", *FAST)
    assert train.returncode == 0, train.stderr[-3000:]
    result = json.loads(train.stdout)
    index = json.loads((timit_shards / "dataset.json").read_text())
    assert result["task"] == "duration" and result["updates"] == 3
    assert set(result["test"]) == {"loss", "mae_s", "num_utterances", "audio_s"}  # the task's own metrics
    assert result["test"]["num_utterances"] == index["splits"]["test"]["num_samples"]
    dev = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    dev = [r for r in dev if "dev/mae_s" in r]
    assert [r["update"] for r in dev] == [3] and result["best_dev"] == pytest.approx(dev[0]["dev/mae_s"])

    # the same batches as the run's own test pass (padding reaches the conv encoder's group norm)
    scored = ds_w2v_cli("evaluate", f"data.shards={timit_shards}", f"model.init={run}", "--split", "test", "device=cpu",
                        "data.batch_s=12")
    assert scored.returncode == 0, scored.stderr[-3000:]
    scores = json.loads(scored.stdout)
    assert scores["task"] == "duration"
    assert scores["splits"]["test"]["mae_s"] == pytest.approx(result["test"]["mae_s"], rel=1e-4)

    wavs = []
    for seconds in (1.0, 2.5):
        wavs.append(tmp_path / f"tone_{seconds}.wav")
        t = np.arange(int(16000 * seconds)) / 16000
        sf.write(wavs[-1], (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    predicted = ds_w2v_cli("predict-duration", str(run), *map(str, wavs))
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    lines = [json.loads(line) for line in predicted.stdout.splitlines()]
    assert [x["path"] for x in lines] == list(map(str, wavs)) and [x["duration_s"] for x in lines] == [1.0, 2.5]
    assert all(x["predicted_s"] > 0 for x in lines)

    # another command handed this model names the task's inference command
    wrong = ds_w2v_cli("classify", str(run), str(wavs[0]))
    assert wrong.returncode == 1 and "use `ds-w2v predict-duration` for it" in wrong.stderr


def test_a_plugin_that_does_not_import_stops_the_command_naming_it(tmp_path):
    broken = tmp_path / "broken_task.py"
    broken.write_text("import no_such_module_here\n")
    for plugins, reason in ((str(broken), "ModuleNotFoundError: No module named 'no_such_module_here'"),
                            (str(tmp_path / "absent.py"), "no such file"),
                            ("no_such_plugin_module", "ModuleNotFoundError")):
        proc = ds_w2v_cli("env", plugins=plugins, timeout=120)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert proc.stderr.startswith("ds-w2v: error: plugin ") and reason in proc.stderr


def test_a_task_may_not_take_a_command_another_holds(tmp_path):
    from ds_w2v.train.tasks import TASK_CLASSES, register_task
    from ds_w2v.train.tasks.cls import ClsTask

    class Twin(ClsTask):
        name = "twin"
        command = "finetune-cls"

    with pytest.raises(ValueError, match="Twin: command 'finetune-cls' is task cls's already"):
        register_task(Twin)
    assert "twin" not in TASK_CLASSES
    clash = tmp_path / "clash_task.py"
    clash.write_text("from ds_w2v.train.tasks import register_task\nfrom ds_w2v.train.tasks.cls import ClsTask\n\n\n"
                     "class Env(ClsTask):\n    name = 'env_task'\n    command = 'env'\n\n\nregister_task(Env)\n")
    proc = ds_w2v_cli("--help", plugins=str(clash), timeout=120)
    assert proc.returncode == 2 and "task env_task (Env) names a command 'env' that ds-w2v has already" in proc.stderr


def test_every_task_names_commands_the_table_has():
    """The built-in tasks' training and inference commands are commands of ``ds-w2v``."""
    from ds_w2v.cli import COMMANDS, task_commands
    from ds_w2v.train.tasks import TASK_CLASSES

    table = {**COMMANDS, **task_commands()}
    for task in TASK_CLASSES.values():
        assert task.command is None or task.command in table
        assert task.inference_command is None or task.inference_command in table
    assert [n for n in task_commands() if n in ("pretrain", "finetune-ctc", "finetune-cls")] == \
        ["pretrain", "finetune-ctc", "finetune-cls"]
