"""Two real processes (gloo on CPU) stream 3 uneven shards and all_reduce after every batch.

If one rank yielded fewer batches than the other, its partner would block forever in the next
all_reduce; the parent joins with a timeout and kills, so the test fails instead of hanging.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # pytest runs with --import-mode=importlib
from stream_fixtures import WORLD_SIZE, distributed_rank_main, write_split  # noqa: E402

TIMEOUT_S = 60.0


@pytest.mark.slow
def test_two_ranks_yield_equal_counts_over_uneven_shards(tmp_path):
    shard_dir = tmp_path / "shards"
    # 3 shards of 1, 4 and 14 utterances: whichever rank gets the small ones must loop
    write_split(shard_dir, "train", [[1.5], [2.0, 1.0, 2.5, 1.2], [1.0 + 0.2 * j for j in range(14)]])
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=distributed_rank_main, args=(r, str(shard_dir), str(tmp_path / "pg_init"), str(tmp_path)))
        for r in range(WORLD_SIZE)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(TIMEOUT_S)
    hung = [r for r, p in enumerate(procs) if p.is_alive()]
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join(5)
    assert not hung, f"ranks {hung} still running after {TIMEOUT_S} s: unequal batch counts deadlocked"
    assert [p.exitcode for p in procs] == [0] * WORLD_SIZE
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD_SIZE)]
    assert results[0]["all_counts"] == results[1]["all_counts"]
    n = results[0]["num_batches"]
    assert n > 0 and all(r["counts"] == [n, n] for r in results)
    # the ranks stream different data (pass 0 gives them disjoint shards; see test_stream.py)
    assert results[0]["shards"][0] != results[1]["shards"][0] or results[0]["ids"][0] != results[1]["ids"][0]
