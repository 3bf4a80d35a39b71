"""``ds-w2v bench train`` on CPU: a row of finite positive figures, a JSON line, MFU arithmetic
checked against ``flops.update_flops``, and a refused configuration reported in its row.
No timing assertions (a shared CPU's figures are what they are)."""
from __future__ import annotations

import json
import math

import pytest
import torch

from ds_w2v.bench.train import parse_peak
from ds_w2v.cli import main as cli
from ds_w2v.models.wav2vec2 import preset_config
from ds_w2v.train.flops import update_flops

pytest.importorskip("deepspeed")

FAST = ["bench", "train", "--presets", "tiny", "--zero", "2", "--steps", "1", "--warmup", "0", "--no-hf"]


@pytest.fixture(autouse=True)
def on_cpu(monkeypatch):
    """The bench takes the GPU whenever torch sees one; these tests pin the CPU (gloo, DeepSpeed's
    CPU accelerator, as tests/conftest.py sets it), like the rest of the suite."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def _table_rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines() if line.startswith("tiny ")]


def test_row_json_and_mfu(tmp_path, capsys):
    peak_tflops = 0.5  # the fp32 entry is the one that applies
    assert cli([*FAST, "--precisions", "fp32", "--peak-tflops", f"bf16=9,fp32={peak_tflops}",
                "--json", str(tmp_path / "b.jsonl")]) == 0
    rows = _table_rows(capsys.readouterr().out)
    assert len(rows) == 1
    # tiny 2 fp32 | s/upd audio-s/s MFU% mem | ...
    size, zero, prec, _, update_s, audio_s_per_s, mfu_pct, mem = rows[0][:8]
    assert (size, zero, prec) == ("tiny", "2", "fp32")
    assert all(math.isfinite(float(v)) and float(v) > 0 for v in (update_s, audio_s_per_s, mfu_pct.rstrip("%")))
    assert float(mem) >= 0  # max RSS delta: memory freed by earlier tests may be reused

    (line,) = (tmp_path / "b.jsonl").read_text().splitlines()
    row = json.loads(line)
    assert {"date", "machine", "command"} <= set(row) and row["command"].startswith("ds-w2v bench train")
    assert "hf_s" not in row and "ours_error" not in row
    assert row["ours_s"] > 0 and row["ours_audio_s_per_s"] == pytest.approx(4 * 4.0 / row["ours_s"])
    # 4 utterances x 4 s at 16 kHz, every block run (LayerDrop 0)
    flops = update_flops(preset_config("tiny", encoder_layerdrop=0.0), [64_000] * 4)
    assert row["flops_per_update"] == pytest.approx(flops)
    assert row["peak_flops"] == pytest.approx(peak_tflops * 1e12)
    assert row["ours_mfu"] == pytest.approx(flops / row["ours_s"] / (peak_tflops * 1e12))
    assert float(mfu_pct.rstrip("%")) == pytest.approx(100 * row["ours_mfu"], abs=0.06)


def test_failing_configuration_is_reported_in_its_row(tmp_path, capsys):
    assert cli([*FAST, "--precisions", "fp16", "--json", str(tmp_path / "b.jsonl")]) == 0
    (row,) = _table_rows(capsys.readouterr().out)
    assert row[:3] == ["tiny", "2", "fp16"] and "fp16 needs a GPU" in " ".join(row)
    assert "fp16 needs a GPU" in json.loads((tmp_path / "b.jsonl").read_text())["error"]


def test_peak_option():
    assert parse_peak("0.38") == {"*": 0.38}
    assert parse_peak("fp32=0.38, bf16=0.77") == {"fp32": 0.38, "bf16": 0.77}
    with pytest.raises(Exception, match="DTYPE=TFLOPS"):
        parse_peak("fast")


def test_each_row_is_written_as_it_finishes(tmp_path, monkeypatch):
    """A bench cut short (the GPU check's time limit kills it) keeps the rows it had finished."""
    from ds_w2v.bench import train as bench_train

    real, done = bench_train.time_models, []

    def time_then_die(*args, **kwargs):
        if done:  # the second configuration: the process is killed while it runs
            raise KeyboardInterrupt
        done.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(bench_train, "time_models", time_then_die)
    path = tmp_path / "b.jsonl"
    with pytest.raises(KeyboardInterrupt):
        cli([*FAST, "--zero", "1,2", "--precisions", "fp32", "--json", str(path)])
    (line,) = path.read_text().splitlines()
    row = json.loads(line)
    assert row["zero"] == 1 and row["ours_s"] > 0 and "command" in row
