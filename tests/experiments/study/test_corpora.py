"""The unlabelled mix names every split of the extra set (the 10 % subsets: tests/data/test_subset.py)."""
import json

import pytest

from experiments.study.corpora import unlabeled_entries


@pytest.fixture(scope="module")
def timit(small_timit_shards):
    return small_timit_shards


def test_unlabeled_entries_name_every_split(timit, tmp_path):
    entries = unlabeled_entries({"timit": timit, "extra": timit}, "timit", ("extra",))
    assert entries[0] == f"{timit}:train"
    splits = json.loads((timit / "dataset.json").read_text())["splits"]
    assert sorted(e.rsplit(":", 1)[1] for e in entries[1:]) == sorted(splits)
    assert {"train", "dev", "test"} <= set(splits)
