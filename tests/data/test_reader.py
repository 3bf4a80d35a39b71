"""``split_utterances``: a split's decoded utterances in the index's shard order, at most
``limit``; a damaged sample or an unreadable shard raised in one line naming the shard, or,
given a list, reported there in that line and skipped."""
from __future__ import annotations

import io
import json
import re
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from ds_w2v.data import read_split, split_utterances

sys.path.insert(0, str(Path(__file__).parent))  # pytest runs with --import-mode=importlib
from stream_fixtures import utterance_pcm, write_split  # noqa: E402

COUNTS = [3, 2, 4, 1]  # utterances per shard
ALL_KEYS = [f"train_s{s}_{j}" for s, n in enumerate(COUNTS) for j in range(n)]


def _shards(out: Path) -> list[str]:
    write_split(out, "train", [[0.25] * n for n in COUNTS])
    return list(read_split(out, "train").urls)


def _keys(utterances) -> list[str]:
    return [u.key for u in utterances]


def _append_bad_sample(tar_path: Path, key: str = "bad") -> None:
    """A sample whose audio does not decode, at the end of a shard."""
    with tarfile.open(tar_path, "a") as tf:
        for name, payload in ((f"{key}.npy", b"nonsense"), (f"{key}.json", json.dumps({"id": key}).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tf.addfile(info, io.BytesIO(payload))


def _read_until_error(iterator) -> tuple[list[str], ValueError]:
    keys = []
    with pytest.raises(ValueError) as caught:
        for utt in iterator:
            keys.append(utt.key)
    return keys, caught.value


def test_every_utterance_in_the_index_shard_order(tmp_path):
    _shards(tmp_path)
    utts = list(split_utterances(tmp_path, "train"))
    assert _keys(utts) == ALL_KEYS
    for u in utts:
        shard, j = map(int, re.fullmatch(r"train_s(\d+)_(\d+)", u.key).groups())
        assert np.array_equal(u.pcm, utterance_pcm(shard, j, 4000)) and u.url == str(tmp_path / f"train-{shard:06d}.tar")
    # the order is the index's, not the file names'
    index = json.loads((tmp_path / "dataset.json").read_text())
    entry = index["splits"]["train"]
    for key in ("shards", "shard_seconds", "shard_num_samples"):
        entry[key] = entry[key][::-1]
    (tmp_path / "dataset.json").write_text(json.dumps(index))
    assert _keys(split_utterances(tmp_path, "train")) == [
        f"train_s{s}_{j}" for s in reversed(range(len(COUNTS))) for j in range(COUNTS[s])]


def test_limit_reads_no_further_than_it_needs(tmp_path):
    urls = _shards(tmp_path)
    assert _keys(split_utterances(tmp_path, "train", limit=4)) == ALL_KEYS[:4]
    assert _keys(split_utterances(tmp_path, "train", limit=100)) == ALL_KEYS
    Path(urls[2]).write_bytes(b"\x00garbage" * 1000)  # never opened: the limit is met in the shards before it
    assert _keys(split_utterances(tmp_path, "train", limit=5)) == ALL_KEYS[:5]
    with pytest.raises(ValueError, match=r"^limit must be >= 1 \(None: all\), got 0$"):
        split_utterances(tmp_path, "train", limit=0)


def test_the_index_is_read_at_the_call(tmp_path):
    _shards(tmp_path)
    with pytest.raises(ValueError, match=r"no split 'nope'; known splits: train"):
        split_utterances(tmp_path, "nope")  # not only once iterated


def test_a_damaged_shard_raises_naming_its_url(tmp_path):
    urls = _shards(tmp_path)
    Path(urls[1]).write_bytes(b"\x00garbage" * 1000)
    keys, error = _read_until_error(split_utterances(tmp_path, "train"))
    assert keys == ALL_KEYS[:3]  # the shard before it, then the error
    message = str(error)
    assert message.startswith(f"{urls[1]}: cannot read the shard (ReadError: ") and "\n" not in message
    # a missing shard, a damaged sample: the same, naming the shard
    Path(urls[1]).unlink()
    _, error = _read_until_error(split_utterances(tmp_path, "train"))
    assert str(error).startswith(f"{urls[1]}: cannot read the shard (FileNotFoundError: ")
    _shards(tmp_path)
    _append_bad_sample(Path(urls[2]))
    keys, error = _read_until_error(split_utterances(tmp_path, "train"))
    assert keys == ALL_KEYS[:9]  # shard 2's good samples came first
    assert re.match(rf"^{re.escape(urls[2])}: bad_audio: bad\.npy: ", str(error))


def test_with_a_list_damage_is_reported_there_and_skipped(tmp_path):
    urls = _shards(tmp_path)
    Path(urls[1]).write_bytes(b"\x00garbage" * 1000)
    _append_bad_sample(Path(urls[2]))
    damaged: list[str] = []
    keys = _keys(split_utterances(tmp_path, "train", damaged=damaged))
    assert keys == [k for k in ALL_KEYS if not k.startswith("train_s1_")]  # every other shard, read to its end
    assert len(damaged) == 2 and all("\n" not in line for line in damaged)  # the shard once, the sample once
    assert damaged[0].startswith(f"{urls[1]}: cannot read the shard (ReadError: ")
    assert damaged[1].startswith(f"{urls[2]}: bad_audio: bad.npy: ")
    # the messages are those raised without a list; a missing shard is reported and skipped too
    _, error = _read_until_error(split_utterances(tmp_path, "train"))
    assert str(error) == damaged[0]
    Path(urls[1]).unlink()
    damaged.clear()
    assert _keys(split_utterances(tmp_path, "train", damaged=damaged)) == keys
    assert damaged[0].startswith(f"{urls[1]}: cannot read the shard (FileNotFoundError: ") and len(damaged) == 2
