"""``subset_split``: the labelled-budget subset keeps every record field (phones, their timings,
labels), a seeded choice of utterances, and the other splits whole."""
import json
import random
import tarfile

import pytest

from ds_w2v.data.index import read_split
from ds_w2v.data.subset import subset_split
from ds_w2v.probe import read_utterances


@pytest.fixture(scope="module")
def timit(small_timit_shards):
    return small_timit_shards


def _records(shards, split):
    out = []
    for url in read_split(shards, split).urls:
        with tarfile.open(url) as tar:
            out += [json.loads(tar.extractfile(m).read()) for m in tar if m.name.endswith(".json")]
    return out


def test_subset_keeps_records_and_the_seeded_choice(timit, tmp_path):
    sub = subset_split(timit, tmp_path / "t10", 0.25)
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
    # the choice: random.Random(seed).sample of the split's utterances in shard order (the demo's
    # and the study's 10 % rows are the same utterances)
    assert {r["id"] for r in kept} == {r["id"] for r in random.Random(0).sample(full, len(kept))}
    # the linear probe reads the subset's phone timings
    assert read_utterances(sub, "train")[0].phone_spans
    assert subset_split(timit, tmp_path / "t10", 0.25) == sub  # a finished subset is reused
