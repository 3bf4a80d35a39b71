"""The 10 % subset keeps every record field (phones, their timings, labels), the demo's choice of
utterances, and the other splits whole; the unlabelled mix names every split of the extra set."""
import json
import tarfile

import pytest

from ds_w2v.cli import main as cli
from ds_w2v.data.index import read_split
from ds_w2v.demo import subset_split
from ds_w2v.probe import read_utterances
from ds_w2v.study.corpora import subset_shards, unlabeled_entries


@pytest.fixture(scope="module")
def timit(tmp_path_factory):
    root = tmp_path_factory.mktemp("study_timit")
    assert cli(["synth", "timit", "--out", str(root / "T"), "--speakers", "30", "--sentences-per-speaker", "5",
                "--workers", "2"]) == 0
    assert cli(["prepare", "--format", "timit", str(root / "T"), "--out", str(root / "shards"), "--workers", "2",
                "--no-progress"]) == 0
    return root / "shards"


def _records(shards, split):
    out = []
    for url in read_split(shards, split).urls:
        with tarfile.open(url) as tar:
            out += [json.loads(tar.extractfile(m).read()) for m in tar if m.name.endswith(".json")]
    return out


def test_subset_keeps_records_and_the_demos_choice(timit, tmp_path):
    sub = subset_shards(timit, tmp_path / "t10", 0.25)
    full, kept = _records(timit, "train"), _records(sub, "train")
    assert len(kept) == round(0.25 * len(full))
    by_id = {r["id"]: r for r in full}
    assert all(by_id[r["id"]] == r for r in kept)  # byte-for-byte records: phones, spans, speaker...
    assert all(r["phones"] and r["phone_spans"] for r in kept)
    index = json.loads((sub / "dataset.json").read_text())
    assert index["source"]["format"] == "timit"  # data.target=phones accepts it
    assert index["splits"]["train"]["num_samples"] == len(kept)
    assert index["splits"]["train"]["hours"] == pytest.approx(sum(r["duration_s"] for r in kept) / 3600, abs=1e-4)
    for split in ("dev", "test"):
        assert _records(sub, split) == _records(timit, split)
    # the demo's subset (re-prepared, without phones) keeps the same utterances
    demo = subset_split(timit, tmp_path / "demo10", 0.25)
    assert {r["id"] for r in _records(demo, "train")} == {r["id"] for r in kept}
    # the linear probe reads the subset's phone timings
    assert read_utterances(sub, "train")[0].phone_spans
    assert subset_shards(timit, tmp_path / "t10", 0.25) == sub  # a finished subset is reused


def test_unlabeled_entries_name_every_split(timit, tmp_path):
    entries = unlabeled_entries({"timit": timit, "extra": timit}, "timit", ("extra",))
    assert entries[0] == f"{timit}:train"
    splits = json.loads((timit / "dataset.json").read_text())["splits"]
    assert sorted(e.rsplit(":", 1)[1] for e in entries[1:]) == sorted(splits)
    assert {"train", "dev", "test"} <= set(splits)
