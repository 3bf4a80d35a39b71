"""``ds-w2v probe``: the console script end to end on tiny synthetic corpora, and its refusals."""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from ds_w2v.cli import main as cli
from ds_w2v.data.shard_format import read_index

LAYERS = ["conv", "layer0", "layer1", "layer2", "layer3", "layer4"]


def _script() -> str:
    path = Path(sys.executable).parent / "ds-w2v"
    return str(path) if path.exists() else shutil.which("ds-w2v")


def _probe(*args: str) -> subprocess.CompletedProcess:
    # one thread: the tiny model's small matmuls are faster so, and on a shared machine much faster
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([_script(), "probe", *args], capture_output=True, text=True, env=env, timeout=300)


def test_probe_command_end_to_end(probe_timit, probe_ravdess, tiny_model_file, tmp_path):
    cache, out = tmp_path / "cache", tmp_path / "probe.json"
    run = _probe(str(tiny_model_file), "--data", str(probe_timit), "--data", str(probe_ravdess),
                 "--max-utterances", "16", "--epochs", "3", "--cache", str(cache), "--out", str(out),
                 "--device", "cpu")
    assert run.returncode == 0, run.stderr
    r = json.loads(out.read_text())
    assert r["layers"] == LAYERS and r["task"] == "pretrain" and r["device"] == "cpu"
    assert len(r["upstream_fingerprint"]) == 64
    timit, ravdess = r["datasets"][str(probe_timit)], r["datasets"][str(probe_ravdess)]
    assert timit["protocols"] == ["linear", "pr"] and ravdess["protocols"] == ["er"]
    for d in (timit, ravdess):
        assert set(d["splits"]) == {"train", "dev", "test"}
        assert all(s["cache"] == "miss" and 0 < s["utterances"] <= 16 for s in d["splits"].values())
    lin = timit["linear"]
    assert list(lin["layers"]) == LAYERS and all(0.0 <= a <= 1.0 for a in lin["layers"].values())
    assert lin["best_acc"] == max(lin["layers"].values()) == lin["layers"][lin["best_layer"]]
    assert lin["num_eval_frames"] > 1000 and lin["num_classes"] == 39
    pr, er = timit["pr"], ravdess["er"]
    assert pr["per"] >= 0 and list(pr["layer_weights"]) == LAYERS[1:] and 1 <= pr["best_epoch"] <= 3
    assert sum(pr["layer_weights"].values()) == pytest.approx(1.0)
    assert er["labels"] == read_index(probe_ravdess)["labels"] and 0.0 <= er["acc"] <= 1.0
    assert er["chance"] == pytest.approx(1 / len(er["labels"]))
    # the printed table: a row per layer, the scores
    for name in LAYERS:
        assert any(line.split()[:1] == [name] for line in run.stdout.splitlines())
    assert "linear phone probe (CPC)" in run.stdout and "PER" in run.stdout and "emotion recognition" in run.stdout

    # random:tiny with seed 0 is the very model tiny.pt was built as (conftest): its features are
    # found in the cache by content, and the same probe on them gives the same accuracies
    out2 = tmp_path / "again.json"
    # (the trainer's probe.* keys in place of the flags: the same run)
    run = _probe("random:tiny", "--seed", "0", "--data", str(probe_timit), "--protocol", "linear",
                 "probe.max_utterances=16", "probe.epochs=3", "--cache", str(cache), "--out", str(out2),
                 "--device", "cpu")
    assert run.returncode == 0, run.stderr
    again_all = json.loads(out2.read_text())
    assert again_all["upstream_fingerprint"] == r["upstream_fingerprint"]
    again = again_all["datasets"][str(probe_timit)]
    assert again["protocols"] == ["linear"] and set(again["splits"]) == {"train", "test"}  # linear uses no dev
    assert all(s["cache"] == "hit" for s in again["splits"].values())
    assert again["linear"]["layers"] == lin["layers"]


def _strip_phone_spans(src: Path, dst: Path) -> None:
    """A copy of a prepared corpus as prepared before records had ``phone_spans``."""
    dst.mkdir()
    shutil.copy(src / "dataset.json", dst / "dataset.json")
    for split in read_index(src)["splits"].values():
        for name in split["shards"]:
            with tarfile.open(src / name) as tin, tarfile.open(dst / name, "w") as tout:
                for member in tin.getmembers():
                    data = tin.extractfile(member).read()
                    if member.name.endswith(".json"):
                        record = json.loads(data)
                        del record["phone_spans"]
                        data = json.dumps(record).encode()
                    member.size = len(data)
                    tout.addfile(member, io.BytesIO(data))


def test_bad_input_is_one_line_and_exit_status_2(probe_timit, probe_ravdess, tiny_model_file, tmp_path, capsys):
    model, timit, ravdess, old = str(tiny_model_file), str(probe_timit), str(probe_ravdess), tmp_path / "old"
    _strip_phone_spans(probe_timit, old)
    cases = [  # (arguments, what the one line must say)
        ([str(tmp_path / "nope.pt"), "--data", timit], [f"{tmp_path / 'nope.pt'}: no such model file or folder"]),
        ([model, "--data", str(tmp_path)], [f"{tmp_path / 'dataset.json'}: no dataset index"]),
        ([model, "--data", timit, "--test-split", "test_noncore"],
         [f"{timit}: no split 'test_noncore' (--test-split); known splits: dev, test, train"]),
        ([model, "--data", timit, "--protocol", "er"], [f"{timit} (train): the corpus has no class labels"]),
        ([model, "--data", ravdess, "--protocol", "linear"], [f"{ravdess} (train)", "has no phone transcription"]),
        ([model, "--data", str(old)], [f"{old} (train): the shards have no phone timings", "re-run `ds-w2v prepare"]),
        ([model, "--data", timit, "--max-utterances", "0"], ["--max-utterances must be >= 1"]),
        ([model, "--data", timit, "--batch-s", "0"], ["--batch-s must be > 0"]),
        ([model, "--data", timit, "probe.epochs=many"], ["config key probe.epochs: expected an integer, got 'many'"]),
        ([model, "--data", timit, "probe.eval_split=dev"], ["probe.eval_split: not an option of ds-w2v probe"]),
        ([model, "--data", timit, "optim.lr=1"], ["override 'optim.lr=1': this command takes probe.KEY=value"]),
    ]
    for argv, fragments in cases:
        extra = [] if "--max-utterances" in argv else ["--max-utterances", "2"]
        assert cli(["probe", *argv, *extra, "--device", "cpu"]) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("ds-w2v probe: error: "), (argv, err)
        assert all(f in err[0] for f in fragments), (argv, err)
    # the console script's exit status is the same
    run = _probe(str(tmp_path / "nope.pt"), "--data", timit, "--max-utterances", "2")
    assert run.returncode == 2 and run.stderr.strip().endswith("no such model file or folder")
