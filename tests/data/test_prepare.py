"""prepare_corpus end to end: shards per the contract, nothing lost, byte-identical reruns, CLI."""
from __future__ import annotations

import json
import os
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from ds_w2v.cli import main as cli_main
from ds_w2v.data.prepare import prepare_corpus
from ds_w2v.data.shard_format import INDEX_FIELDS, decode_audio, read_index
from ds_w2v.text import CharVocab

RECORD_FIELDS = {"id", "duration_s", "num_samples", "speaker", "text", "phones", "phone_spans", "label", "source",
                 "meta"}


def _read_shards(out: Path) -> dict[str, list[tuple[str, dict, np.ndarray]]]:
    """split -> [(shard name, record, samples)] for every sample of every shard in the index."""
    index = read_index(out)
    samples: dict[str, list] = {}
    for split, entry in index["splits"].items():
        for name in entry["shards"]:
            with tarfile.open(out / name) as tar:
                entries: dict[str, dict[str, bytes]] = {}
                for member in tar.getmembers():
                    key, ext = member.name.split(".", 1)
                    entries.setdefault(key, {})[ext] = tar.extractfile(member).read()
            for key, parts in entries.items():
                assert set(parts) == {index["audio_codec"], "json"}, parts.keys()
                record = json.loads(parts["json"])
                assert record["id"] == key
                samples.setdefault(split, []).append((name, record, decode_audio(index["audio_codec"], parts[index["audio_codec"]])))
    return samples


def test_timit_shards_follow_the_contract(prep_timit_tree, tmp_path):
    index = prepare_corpus("timit", prep_timit_tree.root, tmp_path / "out", max_shard_samples=3)
    assert set(INDEX_FIELDS) <= set(index) and index == read_index(tmp_path / "out")
    assert index["sample_rate"] == 16000 and index["audio_codec"] == "npy" and index["rejects"] == {}
    samples = _read_shards(tmp_path / "out")
    assert set(samples) == {"train", "dev", "test", "test_noncore"}
    for split, entry in index["splits"].items():
        names = [name for name, _, _ in samples[split]]
        assert entry["shards"] == sorted(set(names)) and all(n.startswith(f"{split}-") for n in names)
        assert entry["shard_num_samples"] == [names.count(n) for n in entry["shards"]]
        assert max(entry["shard_num_samples"]) <= 3
        seconds = [sum(r["duration_s"] for n, r, _ in samples[split] if n == s) for s in entry["shards"]]
        assert entry["shard_seconds"] == pytest.approx(seconds, abs=1e-3)
        assert entry["num_samples"] == len(samples[split])
    for items in samples.values():
        for _, record, pcm in items:
            assert set(record) == RECORD_FIELDS
            assert pcm.dtype == np.int16 and len(pcm) == record["num_samples"] == 9600
            assert record["duration_s"] == pytest.approx(0.6)
            assert record["phones"] and record["text"].startswith("she had")
    # the vocabulary: beside the shards and in the index, built from the transcripts written
    vocab = CharVocab.load(tmp_path / "out" / "vocab.json")
    assert vocab.to_dict() == index["vocab"]
    assert vocab == CharVocab.build([r["text"] for items in samples.values() for _, r, _ in items])
    # train (8 utterances, at most 3 a shard) is split evenly: 3 shards of 3, 3, 2
    assert index["splits"]["train"]["shard_num_samples"] == [3, 3, 2]


def test_timit_phone_spans_at_16k_whatever_the_source_rate(tmp_path, prep_build):
    """A TIMIT file at 8 kHz (its .PHN counting 8 kHz samples) gets its spans doubled with the
    audio; 16 kHz files keep theirs; corpora without timings write null."""
    prep_build.timit(tmp_path / "src")
    spk = tmp_path / "src/TIMIT/TRAIN/DR1/FCJF0"
    prep_build.write(spk / "SX37.WAV", 0.6, 8000, fmt="NIST", subtype="PCM_16")
    (spk / "SX37.PHN").write_text("0 1000 h#\n1000 1500 q\n1500 3333 sh\n3333 4800 h#\n")
    prepare_corpus("timit", tmp_path / "src", tmp_path / "out")
    records = {r["id"]: (r, pcm) for items in _read_shards(tmp_path / "out").values() for _, r, pcm in items}
    record, pcm = records["fcjf0_sx37"]
    assert len(pcm) == 9600 and record["phones"] == ["sil", "sh", "sil"]
    assert record["phone_spans"] == [[0, 2000], [3000, 6666], [6666, 9600]]
    step = 9600 // len(prep_build.TIMIT_PHN)
    assert records["fcjf0_si1027"][0]["phone_spans"][:2] == [[0, step], [step, 2 * step]]
    assert all(len(r["phone_spans"]) == len(r["phones"]) for r, _ in records.values())
    prep_build.ravdess(tmp_path / "rav", actors=[1, 19, 22], emotions=(1,))
    prepare_corpus("ravdess", tmp_path / "rav", tmp_path / "rav_out")
    assert {r["phone_spans"] for items in _read_shards(tmp_path / "rav_out").values() for _, r, _ in items} == {None}


def test_ravdess_48k_resampled_and_labelled(tmp_path, prep_build):
    prep_build.ravdess(tmp_path / "src", actors=[1, 2, 19, 22], emotions=(1, 5), seconds=0.75)
    index = prepare_corpus("ravdess", tmp_path / "src", tmp_path / "out", workers=2, codec="flac")
    assert index["labels"] == sorted(["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"])
    samples = _read_shards(tmp_path / "out")
    actors = {split: {r["meta"]["actor"] for _, r, _ in items} for split, items in samples.items()}
    assert actors == {"train": {1, 2}, "dev": {19}, "test": {22}}
    for items in samples.values():
        for _, record, pcm in items:
            assert len(pcm) == 12000 and record["label"] in ("neutral", "angry")  # 0.75 s at 16 kHz


def _bad_and_good_dir(root: Path, build) -> tuple[set[str], dict[str, str]]:
    """A folder of good files (several rates and encodings) and one of each kind of bad file."""
    good = {
        str(build.write(root / "a" / "cd.wav", 1.0, 44100, channels=2)),
        str(build.write(root / "a" / "tel.wav", 1.0, 8000, subtype="ULAW")),
        str(build.write(root / "a" / "float.wav", 0.7, 22050, subtype="FLOAT")),
        str(build.write(root / "b" / "x.flac", 0.9, 16000)),
        str(build.write(root / "b" / "sph.sph", 0.6, 16000, fmt="NIST")),
        str(build.write(root / "b" / "c" / "v.ogg", 0.8, 32000)),
    }
    bad: dict[str, str] = {}

    def add(name: str, reason: str) -> Path:
        bad[str(root / "bad" / name)] = reason
        return root / "bad" / name

    (root / "bad").mkdir()
    add("empty.wav", "empty_audio").write_bytes(b"")
    add("junk.wav", "unreadable").write_bytes(b"not audio " * 100)
    full = build.write(root / "tmp_full.flac", 2.0, 16000)
    add("cut.flac", "truncated").write_bytes(full.read_bytes()[:4000])
    full.unlink()
    x = build.signal(1.0, 16000)
    x[10] = np.nan
    import soundfile as sf

    sf.write(add("nan.wav", "non_finite"), x, 16000, subtype="FLOAT")
    build.write(add("short.wav", "too_short"), 0.2, 16000)
    build.write(add("long.wav", "too_long"), 4.0, 8000, subtype="PCM_U8")
    add("shorten.sph", "unsupported_encoding").write_bytes(
        b"NIST_1A\n   1024\nsample_coding -s26 pcm,embedded-shorten-v2.00\nend_head\n".ljust(1024, b" ") + b"\x01" * 5000)
    add("folder.wav", "not_a_file").mkdir()
    os.symlink(root / "bad" / "gone.wav", add("dangling.wav", "not_a_file"))
    os.symlink(root / "bad" / "loop2.wav", add("loop1.wav", "symlink_loop"))
    os.symlink(root / "bad" / "loop1.wav", add("loop2.wav", "symlink_loop"))
    os.symlink(root, add("dirloop", "symlink_loop"))
    return good, bad


@pytest.mark.parametrize("workers", [1, 2])
def test_every_good_file_in_exactly_one_shard_and_every_bad_one_rejected(tmp_path, prep_build, workers):
    good, bad = _bad_and_good_dir(tmp_path / "src", prep_build)
    index = prepare_corpus("dir", tmp_path / "src", tmp_path / "out", workers=workers, max_duration_s=3.0,
                           max_shard_samples=4)
    sources = Counter(r["source"] for items in _read_shards(tmp_path / "out").values() for _, r, _ in items)
    assert set(sources) == good and set(sources.values()) == {1}
    rejects = [json.loads(line) for line in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    assert {r["path"]: r["reason"] for r in rejects} == bad
    assert index["rejects"] == dict(sorted(Counter(bad.values()).items()))
    assert index["splits"]["train"]["num_samples"] == len(good) and index["vocab"] is None


def test_labelled_rejects_and_resampling_in_shards(tmp_path, prep_build):
    src = tmp_path / "src"
    prep_build.write(src / "a.wav", 1.0, 44100, channels=2)
    prep_build.write(src / "b.wav", 1.0, 8000)
    prep_build.write(src / "c.wav", 1.0, 16000)
    (src / "list.jsonl").write_bytes(
        b'{"path": "a.wav", "text": "First one", "split": "train"}\n'
        b'{"path": "b.wav", "text": "Second", "split": "dev"}\n'
        b'{"path": "c.wav", "text": "!!!"}\n'
        b'{"path": "missing.wav", "text": "gone"}\n'
        b'{"path": "c.wav", "text": "caf\xe9"}\n'
    )
    index = prepare_corpus("jsonl", src / "list.jsonl", tmp_path / "out")
    samples = _read_shards(tmp_path / "out")
    got = {r["id"]: (split, r["text"], len(pcm)) for split, items in samples.items() for _, r, pcm in items}
    assert got == {"a": ("train", "first one", 16000), "b": ("dev", "second", 16000)}
    assert index["rejects"] == {"bad_transcript_encoding": 1, "empty_transcript": 1, "missing_audio": 1}


def test_non_ascii_and_long_file_names_get_unique_short_keys(tmp_path, prep_build):
    names = ["日本語.wav", "日本語の2.wav", "ça va.wav", "x" * 150 + ".flac", "a.b.c.wav"]
    for name in names:
        prep_build.write(tmp_path / "src" / name)
    index = prepare_corpus("dir", tmp_path / "src", tmp_path / "out")
    records = [r for items in _read_shards(tmp_path / "out").values() for _, r, _ in items]
    assert index["rejects"] == {} and len({r["id"] for r in records}) == len(names)
    assert all(len(r["id"]) <= 90 and "." not in r["id"] for r in records)
    assert {Path(r["source"]).name for r in records} == set(names)


def _file_bytes(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir())}


def test_same_input_gives_byte_identical_output_across_worker_counts(tmp_path, prep_build):
    prep_build.ravdess(tmp_path / "src", actors=[1, 3, 19, 21], emotions=(1, 3, 5), rate=44100)
    prep_build.write(tmp_path / "src" / "Actor_01" / "broken-name.wav")
    one = prepare_corpus("ravdess", tmp_path / "src", tmp_path / "w1", workers=1, max_shard_samples=2)
    two = prepare_corpus("ravdess", tmp_path / "src", tmp_path / "w2", workers=2, max_shard_samples=2)
    assert one == two and one["rejects"] == {"bad_name": 1}
    first, second = _file_bytes(tmp_path / "w1"), _file_bytes(tmp_path / "w2")
    assert len(first) > 5 and first == second
    # a rerun over the old output needs --overwrite, and then writes the same bytes
    with pytest.raises(ValueError, match="overwrite"):
        prepare_corpus("ravdess", tmp_path / "src", tmp_path / "w1")
    prepare_corpus("ravdess", tmp_path / "src", tmp_path / "w1", overwrite=True, max_shard_samples=2)
    assert _file_bytes(tmp_path / "w1") == first
    with tarfile.open(tmp_path / "w1" / "train-000000.tar") as tar:
        assert {m.mtime for m in tar.getmembers()} == {0}


def test_librispeech_with_the_loader_index(tmp_path, prep_build):
    files = prep_build.librispeech(tmp_path)
    index = prepare_corpus("librispeech", tmp_path / "LibriSpeech", tmp_path / "out")
    assert {s: e["num_samples"] for s, e in index["splits"].items()} == {s: len(f) for s, f in files.items()}
    assert sorted(p.name for p in (tmp_path / "out").glob("*.tar")) == [
        "dev-clean-000000.tar", "test-clean-000000.tar", "train-clean-100-000000.tar"]


def test_every_reject_reason_is_documented():
    from ds_w2v.data.audio import REASONS as AUDIO_REASONS
    from ds_w2v.data.sources import REASONS as SOURCE_REASONS

    doc = (Path(__file__).parents[2] / "docs" / "data_prepare.md").read_text(encoding="utf-8")
    missing = [r for r in {**AUDIO_REASONS, **SOURCE_REASONS} if f"| `{r}` |" not in doc]
    assert not missing, f"reasons not in docs/data_prepare.md: {missing}"


def test_cli_summary_and_one_line_errors(tmp_path, prep_build, capsys):
    prep_build.ravdess(tmp_path / "src", actors=[2, 20, 24], emotions=(3,))
    assert cli_main(["prepare", "--format", "ravdess", str(tmp_path / "src"), "--out", str(tmp_path / "out"),
                     "--workers", "1", "--no-progress", "--dev-actors", "20"]) == 0
    printed = capsys.readouterr().out
    assert "train" in printed and "rejected 0" in printed
    assert cli_main(["prepare", "--format", "timit", str(tmp_path / "src"), "--out", str(tmp_path / "o2")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a TIMIT tree" in err[0] and str(tmp_path / "src") in err[0]
    assert cli_main(["prepare", "--format", "dir", str(tmp_path / "absent"), "--out", str(tmp_path / "o3")]) == 1
    assert "absent" in capsys.readouterr().err
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.wav").write_bytes(b"junk")
    assert cli_main(["prepare", "--format", "dir", str(tmp_path / "junk"), "--out", str(tmp_path / "o4")]) == 1
    assert "no usable dir files (unreadable 1)" in capsys.readouterr().err


def test_a_decode_worker_ends_on_sigterm_whatever_handler_its_parent_had():
    """Pool.terminate ends prepare's forked workers with SIGTERM after taking their task queue's
    lock for good: a worker that inherited a handler survived it and hung the parent's join (the
    test suite, 2026-12-07). The worker's initializer puts the default action back."""
    import signal

    from ds_w2v.data import prepare

    before = signal.signal(signal.SIGTERM, lambda *_: None)  # what the parent had
    try:
        prepare._init_worker(prepare.DecodeOptions())  # as a forked worker runs it
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, before)
        prepare._DECODE = None
