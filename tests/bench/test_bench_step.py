"""``ds-w2v bench step`` on CPU: ours and HF alternating through the shared harness, a table row
and a JSON line with the keys BENCHMARKS.md is written from. No timing assertions."""
from __future__ import annotations

import json
import math

import pytest

from ds_w2v.cli import main as cli

pytest.importorskip("transformers")

# 2 utterances x 1 s keeps both updates short; 49 frames still mask enough for the loss
SMALL = ["bench", "step", "--preset", "tiny", "--batch", "2", "--seconds", "1", "--steps", "1", "--warmup", "0",
         "--dtypes", "fp32"]


def test_row_and_json_line(tmp_path, capsys):
    assert cli([*SMALL, "--json", str(tmp_path / "s.jsonl")]) == 0
    out = capsys.readouterr().out
    header, columns, *rows = out.strip().splitlines()
    assert header.startswith("bench step: preset=tiny batch=2 x 1 s on ") and "load average" in header
    assert columns.split() == ["dtype", "ours", "s/update", "HF", "s/update", "ours/HF", "ours", "audio-s/s"]
    (row,) = rows
    dtype, ours_s, hf_s, ratio, audio_s_per_s = row.split()  # no note: both models ran
    assert dtype == "fp32"
    assert all(math.isfinite(float(v)) and float(v) > 0 for v in (ours_s, hf_s, ratio, audio_s_per_s))

    (line,) = (tmp_path / "s.jsonl").read_text().splitlines()
    r = json.loads(line)
    assert {"preset", "dtype", "device", "machine", "batch", "seconds", "ours_s", "ours_audio_s_per_s",
            "hf_s", "hf_audio_s_per_s", "ratio", "date", "load_average"} <= set(r)
    assert r["ratio"] == pytest.approx(r["ours_s"] / r["hf_s"])
    assert r["ours_audio_s_per_s"] == pytest.approx(2 * 1.0 / r["ours_s"])
    assert r["ours_via"] == r["hf_via"] == "torch" and "ours_error" not in r and "hf_error" not in r
    assert r["ours_peak_mem_mib"] >= 0 and r["hf_peak_mem_mib"] >= 0  # max RSS delta: freed memory is reused


def test_ours_only(capsys):
    assert cli([*SMALL, "--no-hf"]) == 0
    (row,) = capsys.readouterr().out.strip().splitlines()[2:]
    dtype, ours_s, hf_s, ratio, _ = row.split()
    assert (dtype, hf_s, ratio) == ("fp32", "-", "-") and float(ours_s) > 0
