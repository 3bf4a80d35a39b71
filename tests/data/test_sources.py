"""Corpus readers on tiny corpora in their real layouts (conftest.py builds them)."""
from __future__ import annotations

import json
import os
from collections import Counter

import pytest

from ds_w2v.data.sources import scan_source, source_options
from ds_w2v.data.sources.base import hash_pick
from ds_w2v.data.sources.ravdess import EMOTIONS
from ds_w2v.data.sources.timit import CORE_TEST_SET, PHONE_FOLD_39, PHONES_39


def _by_split(scan):
    out: dict[str, list] = {}
    for u in scan.utterances:
        out.setdefault(u.split, []).append(u)
    return out


def _reasons(scan):
    return Counter(r.reason for r in scan.rejects)


# -- TIMIT ---------------------------------------------------------------------------------------
def test_timit_folding_table_is_lee_hon_61_to_39():
    assert len(PHONE_FOLD_39) == 61 and len(PHONES_39) == 39
    assert set(v for v in PHONE_FOLD_39.values() if v) == set(PHONES_39)
    assert PHONE_FOLD_39["q"] is None
    for phone, folded in [("ao", "aa"), ("ax-h", "ah"), ("axr", "er"), ("hv", "hh"), ("ix", "ih"),
                          ("el", "l"), ("em", "m"), ("nx", "n"), ("eng", "ng"), ("zh", "sh"),
                          ("ux", "uw"), ("bcl", "sil"), ("h#", "sil"), ("epi", "sil"), ("pau", "sil")]:
        assert PHONE_FOLD_39[phone] == folded
    assert len(CORE_TEST_SET) == 24


def test_timit_splits_text_phones_and_metadata(prep_timit_tree, prep_build):
    scan = scan_source("timit", prep_timit_tree.root)
    splits = _by_split(scan)
    assert scan.rejects == []
    # SA1 is left out by design (one per speaker), SI/SX kept
    assert scan.excluded == {"timit_sa_sentence": len(prep_timit_tree.speakers)}
    assert {u.id.split("_")[1] for u in scan.utterances} == {"si1027", "sx37"}
    # the core-test speakers (TEST in lower case on disk) are test, the other TEST speaker not
    assert {u.speaker for u in splits["test"]} == {"mdab0", "fjlm0"}
    assert {u.speaker for u in splits["test_noncore"]} == {"mbjk0"}
    # dev: a held-out TRAIN speaker (at least one of 5), speaker-disjoint from train
    train_speakers = {u.speaker for u in splits["train"]}
    dev_speakers = {u.speaker for u in splits["dev"]}
    assert len(dev_speakers) == 1 and not dev_speakers & train_speakers
    assert train_speakers | dev_speakers == {"fcjf0", "mdac0", "faem0", "marc0", "falk0"}
    u = next(u for u in scan.utterances if u.id == "fcjf0_si1027")
    assert u.text == "she had your dark suit in greasy wash water all year"
    assert u.phones == prep_build.TIMIT_PHN_39 and "q" in u.meta["phones61"]
    assert u.meta["dialect"] == "dr1" and u.meta["sex"] == "f" and u.meta["sentence_type"] == "si"
    assert u.audio.endswith("TRAIN/DR1/FCJF0/SI1027.WAV")


def test_timit_phone_spans_follow_the_folded_phones(prep_timit_tree, prep_build, tmp_path):
    """One [start, end) per folded phone, from the .PHN lines; the deleted q takes its span along."""
    u = next(u for u in scan_source("timit", prep_timit_tree.root).utterances if u.id == "fcjf0_si1027")
    step = 9600 // len(prep_build.TIMIT_PHN)  # conftest: 0.6 s at 16 kHz, equal phone slots
    timed = [(i * step, (i + 1) * step) for i, p in enumerate(prep_build.TIMIT_PHN)]
    q = prep_build.TIMIT_PHN.index("q")
    assert len(u.phone_spans) == len(u.phones) == len(prep_build.TIMIT_PHN) - 1
    assert u.phone_spans == timed[:q] + timed[q + 1:]
    assert u.phone_spans[q - 1][1] < u.phone_spans[q][0]  # the gap q leaves
    # a line that ends before it starts is a bad .PHN file, rejected with the others
    prep_build.timit(tmp_path)
    (tmp_path / "TIMIT/TRAIN/DR1/FCJF0/SX37.PHN").write_text("0 100 h#\n300 200 sh\n")
    scan = scan_source("timit", tmp_path)
    assert [(r.reason, os.path.basename(r.path)) for r in scan.rejects] == [("bad_phones", "SX37.WAV")]
    assert "ends before it starts" in scan.rejects[0].detail


def test_timit_options(prep_timit_tree):
    with_sa = scan_source("timit", prep_timit_tree.root, include_sa=True)
    assert len(with_sa.utterances) == 3 * len(prep_timit_tree.speakers) and not with_sa.excluded
    whole = _by_split(scan_source("timit", prep_timit_tree.root, test_set="all", dev_percent=0))
    assert set(whole) == {"train", "test"} and len(whole["test"]) == 6
    # the dev choice is a function of the speaker names and the seed only
    seeds = [{u.speaker for u in _by_split(scan_source("timit", prep_timit_tree.root, dev_percent=40,
                                                       dev_seed=s))["dev"]} for s in range(4)]
    assert all(len(d) == 2 for d in seeds) and len({frozenset(d) for d in seeds}) > 1
    assert seeds[0] == {u.speaker for u in _by_split(scan_source("timit", prep_timit_tree.root, dev_percent=40))["dev"]}


def test_timit_bad_transcripts_rejected_rest_kept(tmp_path, prep_build):
    tree = prep_build.timit(tmp_path)
    spk = tmp_path / "TIMIT/TRAIN/DR1/FCJF0"
    (spk / "SI1027.TXT").unlink()  # .WRD remains: its words are the transcript
    (spk / "SX37.TXT").write_bytes(b"0 9600 caf\xe9 au lait\n")  # Latin-1, not UTF-8
    mdac0 = tmp_path / "TIMIT/TRAIN/DR1/MDAC0"
    (mdac0 / "SI1027.TXT").unlink()
    (mdac0 / "SI1027.WRD").unlink()
    (mdac0 / "SX37.PHN").write_text("0 100 h#\n100 200 xx\n")
    (mdac0 / "SX99.TXT").write_text("0 100 text without audio\n")
    scan = scan_source("timit", tmp_path)
    assert _reasons(scan) == {"bad_transcript_encoding": 1, "missing_transcript": 1, "bad_phones": 1, "missing_audio": 1}
    ids = {u.id for u in scan.utterances}
    assert "fcjf0_si1027" in ids and len(ids) == 2 * len(tree.speakers) - 3
    assert next(u for u in scan.utterances if u.id == "fcjf0_si1027").text.startswith("she had your dark suit")


# -- RAVDESS -------------------------------------------------------------------------------------
def test_ravdess_fields_and_actor_disjoint_splits(tmp_path, prep_build):
    files = prep_build.ravdess(tmp_path)
    scan = scan_source("ravdess", tmp_path)
    assert not scan.rejects and len(scan.utterances) == len(files)
    assert scan.labels == sorted(EMOTIONS.values()) and len(scan.labels) == 8
    actors = {split: {u.meta["actor"] for u in utts} for split, utts in _by_split(scan).items()}
    assert actors == {"train": set(range(1, 19)), "dev": {19, 20}, "test": set(range(21, 25))}
    u = next(u for u in scan.utterances if u.id == "03-01-05-02-02-01-07")
    assert u.label == "angry" and u.speaker == "actor07"
    assert u.meta == {"corpus": "ravdess", "emotion": "angry", "intensity": "strong", "statement": 2,
                      "repetition": 1, "actor": 7, "sex": "m", "vocal_channel": "speech"}
    assert u.text == "dogs are sitting by the door"
    assert next(u for u in scan.utterances if u.meta["actor"] == 8).meta["sex"] == "f"


def test_ravdess_configurable_actors_song_and_bad_names(tmp_path, prep_build):
    prep_build.ravdess(tmp_path, actors=range(1, 7), emotions=(1, 2))
    song = prep_build.write(tmp_path / "Actor_01" / prep_build.ravdess_name(3, 1, 1, 1, 1, channel=2), 0.6, 48000)
    prep_build.write(tmp_path / "Actor_02" / prep_build.ravdess_name(9, 1, 1, 1, 2), 0.6, 48000)  # emotion 09
    prep_build.write(tmp_path / "Actor_02" / "03-01-03-01-01-01.wav", 0.6, 48000)  # six fields
    prep_build.write(tmp_path / "Actor_02" / prep_build.ravdess_name(3, 1, 1, 1, 5), 0.6, 48000)  # wrong folder
    prep_build.write(tmp_path / "Actor_03" / prep_build.ravdess_name(1, 2, 1, 1, 3), 0.6, 48000)  # strong neutral
    scan = scan_source("ravdess", tmp_path, train_actors="1-4", dev_actors="5", test_actors="6")
    assert _reasons(scan) == {"bad_label": 1, "bad_name": 3}
    assert scan.excluded == {"ravdess_song": 1}
    actors = {split: {u.meta["actor"] for u in utts} for split, utts in _by_split(scan).items()}
    assert actors == {"train": {1, 2, 3, 4}, "dev": {5}, "test": {6}}
    with_song = scan_source("ravdess", tmp_path, include_song=True, train_actors="1-4", dev_actors="5", test_actors="6")
    assert str(song) in {u.audio for u in with_song.utterances}
    with pytest.raises(ValueError, match="both"):
        scan_source("ravdess", tmp_path, train_actors="1-20", dev_actors="19-20")


# -- LibriSpeech ---------------------------------------------------------------------------------
def test_librispeech_splits_from_folders(tmp_path, prep_build):
    files = prep_build.librispeech(tmp_path)
    scan = scan_source("librispeech", tmp_path / "LibriSpeech")
    splits = _by_split(scan)
    assert not scan.rejects
    assert {k: len(v) for k, v in splits.items()} == {k: len(v) for k, v in files.items()}
    u = splits["dev-clean"][0]
    assert u.id == "110-2110-0000" and u.speaker == "110" and u.meta["chapter"] == "2110"
    assert u.text == prep_build.LIBRI_TEXT.lower() and u.meta["sex"] == "m"
    # SRC may be one split folder
    one = scan_source("librispeech", tmp_path / "LibriSpeech" / "test-clean")
    assert {u.split for u in one.utterances} == {"test-clean"} and len(one.utterances) == 4


def test_librispeech_transcript_problems(tmp_path, prep_build):
    prep_build.librispeech(tmp_path, splits=("dev-clean",))
    chapter = tmp_path / "LibriSpeech/dev-clean/100/2100"
    trans = chapter / "100-2100.trans.txt"
    trans.write_bytes(b"100-2100-0000 \xff\xfe BAD\n100-2100-0007 NO AUDIO FOR THIS\n")
    prep_build.write(chapter / "notanid.flac")
    scan = scan_source("librispeech", tmp_path / "LibriSpeech")
    assert _reasons(scan) == {"bad_transcript_encoding": 1, "missing_transcript": 1, "missing_audio": 1, "bad_name": 1}
    assert len(scan.utterances) == 2


# -- fairseq -------------------------------------------------------------------------------------
def test_fairseq_manifest_with_wrd_and_ltr(tmp_path, prep_build):
    audio = tmp_path / "audio"
    for i in range(3):
        prep_build.write(audio / "spk" / f"u{i}.flac", 0.6)
    man = tmp_path / "manifest"
    man.mkdir()
    (man / "train.tsv").write_text(f"{audio}\nspk/u0.flac\t9600\nspk/u1.flac\t9600\n")
    (man / "train.wrd").write_text("HELLO WORLD\nIT'S ME\n")
    (man / "valid.tsv").write_text(f"{audio}\nspk/u2.flac\t9600\nno tab or number\t12x\n")
    (man / "valid.ltr").write_text("H E Y | Y O U |\nX |\n")
    scan = scan_source("fairseq", man)
    texts = {u.id: (u.split, u.text) for u in scan.utterances}
    assert texts == {"spk-u0": ("train", "hello world"), "spk-u1": ("train", "it's me"), "spk-u2": ("valid", "hey you")}
    assert _reasons(scan) == {"bad_record": 1}
    unlabelled = scan_source("fairseq", man / "valid.tsv")  # one manifest file; .ltr is used too
    assert {u.split for u in unlabelled.utterances} == {"valid"}
    (man / "train.wrd").write_text("ONLY ONE LINE\n")
    with pytest.raises(ValueError, match="line-aligned"):
        scan_source("fairseq", man)
    (man / "train.tsv").write_text("/does/not/exist\nspk/u0.flac\t9600\n")
    with pytest.raises(ValueError, match="does not exist"):
        scan_source("fairseq", man / "train.tsv")


# -- CSV / JSONL ---------------------------------------------------------------------------------
def test_csv_paths_splits_and_labels(tmp_path, prep_build):
    a = prep_build.write(tmp_path / "clips" / "a.wav")
    b = prep_build.write(tmp_path / "elsewhere" / "b.wav")
    (tmp_path / "list.csv").write_bytes(
        "path,text,label,split,speaker,extra\n"
        f"clips/a.wav,Hello there!,happy,train,s1,x\n"
        f"{b},Bye,sad,test,,y\n"
        f"clips/c.wav,  ...  ,sad,train,,\n"
        f"clips/d.wav,text,angry,train,,\n"
        f"clips/e.wav,,happy,train,,\n".encode() + b"clips/f.wav,caf\xe9,sad,train,,\n"
    )
    scan = scan_source("csv", tmp_path / "list.csv", labels="happy,sad")
    got = {u.id: (u.audio, u.split, u.text, u.label, u.speaker, u.meta["extra"]) for u in scan.utterances}
    assert got == {"clips-a": (str(a), "train", "hello there", "happy", "s1", "x"),
                   "elsewhere-b": (str(b), "test", "bye", "sad", None, "y")}
    assert _reasons(scan) == {"empty_transcript": 2, "bad_label": 1, "bad_transcript_encoding": 1}
    assert scan.labels == ["happy", "sad"]


def test_jsonl_labels_only_and_split_from_file_name(tmp_path, prep_build):
    prep_build.write(tmp_path / "a.wav")
    prep_build.write(tmp_path / "b.wav")
    (tmp_path / "train.jsonl").write_text(json.dumps({"path": "a.wav", "label": "dog"}) + "\n{broken\n[1, 2]\n")
    (tmp_path / "test.jsonl").write_text(json.dumps({"path": "b.wav", "label": "cat", "id": "my.id"}) + "\n")
    scan = scan_source("jsonl", tmp_path)
    assert {(u.id, u.split, u.label, u.text) for u in scan.utterances} == {("a", "train", "dog", None), ("my-id", "test", "cat", None)}
    assert _reasons(scan) == {"bad_record": 2} and scan.labels == ["cat", "dog"]
    (tmp_path / "test.jsonl").write_text(json.dumps({"path": "b.wav", "speaker": "x"}) + "\n")
    with pytest.raises(ValueError, match="'text' and/or 'label'"):
        scan_source("jsonl", tmp_path)


# -- dir -----------------------------------------------------------------------------------------
def test_dir_recursive_with_loops_and_valid_percent(tmp_path, prep_build):
    for i in range(10):
        prep_build.write(tmp_path / "a" / f"x{i}.WAV")
    prep_build.write(tmp_path / "b" / "c" / "y.flac")
    (tmp_path / "notes.txt").write_text("not audio")
    (tmp_path / "fake.wav").mkdir()  # a directory with an audio name: listed, refused when decoded
    os.symlink(tmp_path, tmp_path / "b" / "loop")  # a directory link into its own ancestor
    os.symlink(tmp_path / "a" / "x0.WAV", tmp_path / "b" / "same.wav")  # same file twice
    (tmp_path / "a" / "._x1.WAV").write_bytes(b"\0\5\26\7")  # macOS resource fork from a zip
    scan = scan_source("dir", tmp_path, valid_percent=20)
    assert _reasons(scan) == {"symlink_loop": 1, "duplicate_file": 1}
    assert scan.excluded == {"hidden_file": 1}
    assert len(scan.utterances) == 12  # 11 files + fake.wav (rejected later as not_a_file)
    assert Counter(u.split for u in scan.utterances) == {"train": 10, "dev": 2}
    assert scan.utterances == scan_source("dir", tmp_path, valid_percent=20).utterances


def test_hash_pick_is_stable_and_sized():
    names = [f"spk{i}" for i in range(50)]
    assert hash_pick(names, 0.1, 0) == hash_pick(reversed(names), 0.1, 0)
    assert len(hash_pick(names, 0.1, 0)) == 5 and hash_pick(names, 0.0) == set()


# -- errors on a bad SRC -------------------------------------------------------------------------
def test_bad_src_raises_one_clear_error(tmp_path, prep_build):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        scan_source("timit", tmp_path / "nowhere")
    prep_build.ravdess(tmp_path / "rav", actors=[1], emotions=[1])
    with pytest.raises(ValueError, match="not a TIMIT tree"):
        scan_source("timit", tmp_path / "rav")
    with pytest.raises(ValueError, match="not a LibriSpeech tree"):
        scan_source("librispeech", tmp_path / "rav")
    with pytest.raises(ValueError, match="do not apply"):
        scan_source("ravdess", tmp_path / "rav", include_sa=True)
    with pytest.raises(ValueError, match="unknown corpus format"):
        scan_source("wav", tmp_path)
    assert "include_sa" in source_options("timit")
