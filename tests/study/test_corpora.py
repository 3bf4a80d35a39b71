"""The unlabelled mix names every split of the extra set (the 10 % subsets: tests/data/test_subset.py)."""
import json

import pytest

from ds_w2v.cli import main as cli
from ds_w2v.study.corpora import unlabeled_entries


@pytest.fixture(scope="module")
def timit(tmp_path_factory):
    root = tmp_path_factory.mktemp("study_timit")
    assert cli(["synth", "timit", "--out", str(root / "T"), "--speakers", "30", "--sentences-per-speaker", "5",
                "--workers", "2"]) == 0
    assert cli(["prepare", "--format", "timit", str(root / "T"), "--out", str(root / "shards"), "--workers", "2",
                "--no-progress"]) == 0
    return root / "shards"


def test_unlabeled_entries_name_every_split(timit, tmp_path):
    entries = unlabeled_entries({"timit": timit, "extra": timit}, "timit", ("extra",))
    assert entries[0] == f"{timit}:train"
    splits = json.loads((timit / "dataset.json").read_text())["splits"]
    assert sorted(e.rsplit(":", 1)[1] for e in entries[1:]) == sorted(splits)
    assert {"train", "dev", "test"} <= set(splits)
