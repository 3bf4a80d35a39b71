"""A training stream's DataLoader workers are started once and kept across epochs (loader.py,
"Workers"): the same worker processes serve every epoch, the batches are those of a new loader
(new workers) per epoch, and a position restored mid-epoch on the same loader (stale batches in
flight from the abandoned epoch) still yields exactly the uninterrupted batches."""
from __future__ import annotations

import multiprocessing
import sys
from pathlib import Path

import pytest
import torch

from ds_w2v.data import StreamConfig, StreamingLoader, read_split

sys.path.insert(0, str(Path(__file__).parent))  # pytest runs with --import-mode=importlib
from stream_fixtures import random_durations, write_split  # noqa: E402


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("shards")
    write_split(out, "train", random_durations(0, [12, 3, 30, 8, 5, 20]))
    return out


def _loader(prepared, num_workers: int) -> StreamingLoader:
    config = StreamConfig(kind="pretrain", batch_s=8.0, shuffle_buffer=16, seed=5, num_workers=num_workers)
    return StreamingLoader.from_split(read_split(prepared, "train"), config, rank=0, world_size=1)


def _children() -> set[int]:
    return {p.pid for p in multiprocessing.active_children()}


def _epoch(prepared, epoch: int) -> list:
    """Epoch ``epoch`` from a loader of its own: workers started for it alone (the batches depend
    on the worker count, not on whether the workers are new)."""
    loader = _loader(prepared, 2)
    loader.set_epoch(epoch)
    batches = [(b.ids, b.audio.sum().item()) for b in loader]
    loader.close()
    return batches


def test_the_same_workers_serve_every_epoch(prepared):
    want = [_epoch(prepared, e) for e in range(3)]
    before = _children()
    loader = _loader(prepared, 2)
    got, workers = [], []
    for _ in range(3):
        got.append([(b.ids, b.audio.sum().item()) for b in loader])
        workers.append(_children() - before)  # a per-epoch DataLoader has shut its workers down by now
    assert got == want
    assert len(workers[0]) == 2 and workers[0] == workers[1] == workers[2]
    loader.close()
    assert not (_children() & workers[0])


def test_a_position_restored_mid_epoch_on_the_same_loader_is_exact(prepared):
    expected = [ids for e in range(2) for ids, _ in _epoch(prepared, e)]
    loader = _loader(prepared, 2)
    got = []
    for batch in loader:  # 3 batches of epoch 0, then the epoch is abandoned with batches in flight
        got.append(batch.ids)
        if len(got) == 3:
            break
    state = loader.state_dict()
    next(iter(loader))  # a batch read past the save (as a prefetching feed does), then thrown away
    loader.load_state_dict(state)
    while len(got) < len(expected):
        got += [b.ids for b in loader]
    assert got == expected
    loader.close()


def test_workers_leave_the_global_torch_rng_alone(prepared):
    torch.manual_seed(0)
    want = torch.rand(3)
    torch.manual_seed(0)
    loader = _loader(prepared, 2)
    for _ in range(2):
        list(loader)  # a DataLoader without its own generator draws its workers' seed from the global RNG
    assert torch.equal(torch.rand(3), want)
    loader.close()
