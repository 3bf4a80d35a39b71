"""One mixed corpus, every kind of unusual and broken input at once: ``prepare`` exits 0, every
good file is in exactly one shard (counted by its source path in the shards' JSON records), every
bad one is in ``rejects.jsonl`` with its reason, and nothing else is.

Three layouts, because each fault lives in one: a folder (``--format dir``: the audio faults, built
on tests/data/test_prepare.py's good and bad files plus the ones it lacks), TIMIT (transcript
faults: not UTF-8, empty once normalised, missing) and RAVDESS (an unknown emotion code).
"""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf

from ds_w2v.cli import main as cli
from ds_w2v.data.audio import MAX_DURATION_S

sys.path.insert(0, str(Path(__file__).parent))  # pytest runs with --import-mode=importlib
from reliability_helpers import TESTS, load_module, subprocess_env  # noqa: E402

data_conftest = load_module(TESTS / "data" / "conftest.py", "reliability_data_conftest")
test_prepare = load_module(TESTS / "data" / "test_prepare.py", "reliability_test_prepare")
build = data_conftest._Builders()

# a prepare run in its own process that reports its peak memory (the 10-minute clip must not
# be decoded to be refused). Its own peak is VmHWM, the high-water mark of its own address space:
# getrusage(RUSAGE_SELF) would not do, as Linux carries the maxrss of the address space a process
# was exec'd from into it, and subprocess starts it with vfork from pytest's (~2 GB late in the
# suite, which read as the prepare run's peak). Its workers are forked from it: RUSAGE_CHILDREN.
PREPARE_WITH_PEAK_RSS = (
    "import re, resource, sys\n"
    "from ds_w2v.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "own = int(re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read()).group(1))\n"
    "peak = max(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "print(f'PEAK_RSS_KB {peak}')\n"
    "sys.exit(rc)\n"
)


def _audio_faults(root: Path) -> tuple[set[str], dict[str, str]]:
    """tests/data's folder of good and bad files, with the documented maximum (36 s) instead of
    its 3 s, plus what it lacks: header-only, inf, random bytes, 0.1 s, a directory x.wav, 10 min."""
    good, bad = test_prepare._bad_and_good_dir(root, build)
    good.add(next(p for p in bad if p.endswith("long.wav")))  # 4 s of 8-bit PCM: kept under 36 s
    bad = {p: r for p, r in bad.items() if not p.endswith("long.wav")}

    def add(name: str, reason: str) -> Path:
        bad[str(root / "bad2" / name)] = reason
        return root / "bad2" / name

    (root / "bad2").mkdir()
    whole = build.write(root / "tmp_whole.wav", 1.0, 16000)
    add("header_only.wav", "empty_audio").write_bytes(whole.read_bytes()[:44])  # 44-byte RIFF header, no data
    whole.unlink()
    x = build.signal(1.0, 16000)
    x[100] = np.inf
    sf.write(add("inf.wav", "non_finite"), x, 16000, subtype="FLOAT")
    add("random.wav", "unreadable").write_bytes(np.random.default_rng(0).bytes(20_000))
    build.write(add("tenth.wav", "too_short"), 0.1, 16000)
    add("x.wav", "not_a_file").mkdir()
    # 10 minutes: refused from the header by the documented maximum (MAX_DURATION_S)
    sf.write(add("ten_minutes.wav", "too_long"), np.zeros(600 * 16000, np.int16), 16000, subtype="PCM_16")
    return good, bad


def _timit_faults(root: Path) -> tuple[set[str], dict[str, str]]:
    tree = build.timit(root, lower_case_test=True)
    spk = root / "TIMIT" / "TRAIN"
    bad = {
        str(spk / "DR1" / "FCJF0" / "SI1027.WAV"): "bad_transcript_encoding",
        str(spk / "DR1" / "MDAC0" / "SI1027.WAV"): "empty_transcript",
        str(spk / "DR2" / "FAEM0" / "SX37.WAV"): "missing_transcript",
    }
    (spk / "DR1" / "FCJF0" / "SI1027.TXT").write_bytes(b"0 9600 caf\xe9 au lait\n")  # Latin-1
    (spk / "DR1" / "MDAC0" / "SI1027.TXT").write_text("0 9600 !!! ...\n")
    for ext in ("TXT", "WRD"):
        (spk / "DR2" / "FAEM0" / f"SX37.{ext}").unlink()
    good = {str(p) for p in tree.files if not p.name.upper().startswith("SA")} - set(bad)
    return good, bad


def _ravdess_faults(root: Path) -> tuple[set[str], dict[str, str]]:
    good = {str(p) for p in build.ravdess(root, actors=[1, 2, 19, 22], emotions=(1, 5))}
    unknown = build.write(root / "Actor_01" / build.ravdess_name(9, 1, 1, 1, 1), 0.6, 48000)  # emotion 09
    return good, {str(unknown): "bad_label"}


def _check(out: Path, good: set[str], bad: dict[str, str]) -> None:
    sources = Counter(r["source"] for items in test_prepare._read_shards(out).values() for _, r, _ in items)
    assert set(sources) == good, (set(sources) ^ good)
    assert set(sources.values()) == {1}  # exactly once
    rejects = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert {r["path"]: r["reason"] for r in rejects} == bad
    index = json.loads((out / "dataset.json").read_text())
    assert index["rejects"] == dict(sorted(Counter(bad.values()).items()))
    assert sum(s["num_samples"] for s in index["splits"].values()) == len(good)


def test_mixed_corpus_keeps_every_good_file_once_and_rejects_every_bad_one_with_its_reason(tmp_path):
    # audio faults, in a process of its own: exit 0, bounded memory
    good, bad = _audio_faults(tmp_path / "dir")
    proc = subprocess.run(
        [sys.executable, "-c", PREPARE_WITH_PEAK_RSS, "prepare", "--format", "dir", str(tmp_path / "dir"),
         "--out", str(tmp_path / "dir_out"), "--workers", "2", "--no-progress"],
        capture_output=True, text=True, timeout=300, env=subprocess_env(),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    _check(tmp_path / "dir_out", good, bad)
    peak_mb = int(proc.stdout.split("PEAK_RSS_KB ")[1].split()[0]) / 1024
    assert peak_mb < 1500, peak_mb
    rejects = {r["path"]: r for r in map(json.loads, (tmp_path / "dir_out" / "rejects.jsonl").read_text().splitlines())}
    assert f"600.0 s > {MAX_DURATION_S} s" in rejects[str(tmp_path / "dir" / "bad2" / "ten_minutes.wav")]["detail"]
    shorten = rejects[str(tmp_path / "dir" / "bad" / "shorten.sph")]["detail"]
    assert "shorten" in shorten and "sph2pipe -f wav" in shorten  # says how to convert it

    # transcript faults (TIMIT) and a label fault (RAVDESS)
    for fmt, faults in (("timit", _timit_faults), ("ravdess", _ravdess_faults)):
        good, bad = faults(tmp_path / fmt)
        assert cli(["prepare", "--format", fmt, str(tmp_path / fmt), "--out", str(tmp_path / f"{fmt}_out"),
                    "--workers", "2", "--no-progress"]) == 0
        _check(tmp_path / f"{fmt}_out", good, bad)
