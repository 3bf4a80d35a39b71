"""A stream position restored on another world size or worker count (a job rescheduled on
fewer or more GPUs): the rest of the saved epoch comes from the shards no rank had begun, split
over the new ranks; no shard begun before the save is read again in the epoch; the next epoch is
a normal one."""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

from ds_w2v.data import StreamConfig, StreamingLoader, read_split
from ds_w2v.data.loader import merge_rank_states

sys.path.insert(0, str(Path(__file__).parent))
from stream_fixtures import random_durations, write_split  # noqa: E402

BATCH_S = 8.0
SIZES = [6, 9, 5, 8, 7, 6, 10, 5, 8, 7, 6, 9] * 2  # utterances per shard: 24 shards
# a small shuffle buffer: a slot fills it (begins shards) before its first batch
BUFFER = 4
# the quota of a fully filled batch: an epoch then reads most shards (a whole epoch of one rank
# here: 20 of 24; batches fill to ~0.72), so the rest of one reads most of the unbegun ones
FILL = 1.0


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    out = tmp_path_factory.mktemp("regroup")
    write_split(out, "train", random_durations(7, SIZES))
    return read_split(out, "train")


def _loader(split, rank, world, num_workers=0, seed=0):
    cfg = StreamConfig(kind="pretrain", batch_s=BATCH_S, shuffle_buffer=BUFFER, fill=FILL, seed=seed, num_workers=num_workers)
    return StreamingLoader.from_split(split, cfg, rank=rank, world_size=world)


def _shard(utt_id: str) -> int:
    return int(utt_id.split("_s")[1].split("_")[0])  # train_s{shard}_{j}


def _take(loader, n):
    """The shards of the utterances in the next ``n`` batches of the current epoch."""
    seen, it = set(), iter(loader)
    for _ in range(n):
        seen |= {_shard(i) for i in next(it).ids}
    return seen


def _rest(loader):
    """The shards read by the rest of the current epoch, and the batches it had."""
    epoch = loader.epoch
    seen, batches = set(), 0
    for b in loader:
        seen |= {_shard(i) for i in b.ids}
        batches += 1
    assert loader.epoch == epoch + 1
    return seen, batches


def _save(loaders, n):
    """Every rank takes ``n`` batches; the checkpoint's position (JSON round trip) and what was read."""
    read = set().union(*(_take(lo, n) for lo in loaders))
    state = merge_rank_states([lo.state_dict() for lo in loaders])
    return json.loads(json.dumps(state)), read


def test_two_ranks_to_one_reads_the_unbegun_shards_only(split, caplog):
    old = [_loader(split, r, 2) for r in range(2)]
    state, read = _save(old, 2)
    assert read <= set(state["opened"]) and len(state["opened"]) < len(SIZES)  # some shards not begun
    new = _loader(split, 0, 1)
    with caplog.at_level(logging.INFO, logger="ds_w2v.data.loader"):
        new.load_state_dict(state)
    assert "world_size 2 -> 1" in caplog.text and "the rest of epoch 0" in caplog.text
    left = set(range(len(SIZES))) - set(state["opened"])
    assert new.epoch == 0 and new.rest is not None and set(new.rest[0]) == left
    rest_read, batches = _rest(new)
    assert batches == new_batches(split, left, world=1) > 0
    assert rest_read <= left  # not one shard begun before the save is read again in this epoch
    assert len(rest_read) >= 0.6 * len(left)  # and most of the others are
    # the next epoch: every shard, the batch count of one rank
    assert new.rest is None and _rest(new)[1] == len(new) == _loader(split, 0, 1).num_batches


def new_batches(split, shards, world):
    import math

    return math.floor(sum(split.shard_seconds[i] for i in shards) / (world * BATCH_S) * FILL)


@pytest.mark.parametrize("workers", [0, 2])
def test_one_rank_to_two_ranks_and_workers_splits_the_rest_disjointly(split, workers):
    state, _ = _save([_loader(split, 0, 1)], 3)
    new = [_loader(split, r, 2, num_workers=workers) for r in range(2)]
    for lo in new:
        lo.load_state_dict(state)
    left = set(range(len(SIZES))) - set(state["opened"])
    reads = [_rest(lo) for lo in new]
    assert reads[0][1] == reads[1][1] == new_batches(split, left, world=2)  # equal batches per rank
    # each rank reads unbegun shards only (a rank whose share runs dry before its quota loops over
    # the rest again, as in any epoch: the ranks' sets may then meet, never the begun shards)
    assert reads[0][0] <= left and reads[1][0] <= left
    assert len(reads[0][0] | reads[1][0]) >= 0.6 * len(left)


def test_the_rest_of_an_epoch_resumes_exactly_on_the_same_world(split):
    state, _ = _save([_loader(split, r, 2) for r in range(2)], 1)
    a = _loader(split, 0, 1)
    a.load_state_dict(state)
    it = iter(a)
    next(it), next(it)  # a kill two batches into the rest of the epoch
    saved, rest = json.loads(json.dumps(a.state_dict())), a.rest
    expected = [b.ids for b in it]
    b = _loader(split, 0, 1)
    b.load_state_dict(saved)
    assert b.rest == rest and b.batches_in_epoch == 2
    assert [x.ids for x in b] == expected and expected


def test_regrouping_twice_excludes_what_both_worlds_began(split):
    state, _ = _save([_loader(split, r, 3) for r in range(3)], 1)
    mid = [_loader(split, r, 2) for r in range(2)]
    for lo in mid:
        lo.load_state_dict(state)
    state2, read2 = _save(mid, 1)
    assert state2["epoch"] == 0 and state2["rest"] is not None  # still in the rest of epoch 0
    assert set(state["opened"]) <= set(state2["opened"]) and read2 <= set(state2["opened"])
    assert not read2 & set(state["opened"])
    last = _loader(split, 0, 1)
    last.load_state_dict(state2)
    assert last.epoch == 0 and last.rest is not None
    rest_read, _ = _rest(last)
    assert not rest_read & set(state2["opened"])


def test_nothing_left_starts_the_next_epoch(split):
    old = [_loader(split, r, 2) for r in range(2)]
    state = merge_rank_states([lo.state_dict() for lo in old])
    state["opened"], state["batches_in_epoch"] = list(range(len(SIZES))), 3  # every shard begun
    new = _loader(split, 0, 1)
    new.load_state_dict(state)
    assert new.epoch == 1 and new.rest is None and new.batches_in_epoch == 0


def test_a_position_at_an_epoch_start_starts_that_epoch(split):
    state = _loader(split, 0, 2).state_dict() | {"epoch": 3}
    new = _loader(split, 0, 1)
    new.load_state_dict(state)
    assert (new.epoch, new.batches_in_epoch, new.rest) == (3, 0, None)


def test_a_position_without_the_begun_shards_skips_to_the_next_epoch(split, caplog):
    state = _loader(split, 0, 2).state_dict()
    state.pop("opened"), state.pop("rest")  # a checkpoint written before they were recorded
    state["batches_in_epoch"] = 1
    new = _loader(split, 0, 1)
    with caplog.at_level(logging.WARNING):
        new.load_state_dict(state)
    assert new.epoch == 1 and "does not record the shards begun" in caplog.text


def test_merge_rank_states_unions_begun_shards_source_by_source():
    a = {"kind": "mix", "batches": 4, "loaders": [{"epoch": 0, "opened": [1, 3]}, {"epoch": 2, "opened": []}]}
    b = {"kind": "mix", "batches": 4, "loaders": [{"epoch": 0, "opened": [2]}, {"epoch": 2, "opened": [0]}]}
    merged = merge_rank_states([a, b])
    assert [lo["opened"] for lo in merged["loaders"]] == [[1, 2, 3], [0]] and merged["batches"] == 4
    assert a["loaders"][0]["opened"] == [1, 3]  # the ranks' own states are not changed
