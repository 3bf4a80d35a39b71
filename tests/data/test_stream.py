"""The streaming loader on real (test-written) shards: splits, epochs, determinism, equal counts,
resume, damaged shards, the index helper."""
from __future__ import annotations

import io
import json
import logging
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from ds_w2v.data import StreamConfig, StreamingLoader, read_split, shard_order, slot_shards
from ds_w2v.data import stream as stream_mod
from ds_w2v.data.shard_format import SAMPLE_RATE, encode_audio

sys.path.insert(0, str(Path(__file__).parent))  # pytest runs with --import-mode=importlib
from stream_fixtures import random_durations, write_split  # noqa: E402

BATCH_S = 8.0


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """7 shards of uneven sizes (3..30 utterances of 0.5-6 s) for "train", 3 for "valid"."""
    out = tmp_path_factory.mktemp("shards")
    index = write_split(out, "train", random_durations(0, [12, 3, 30, 8, 5, 20, 9]))
    write_split(out, "valid", random_durations(1, [4, 9, 2]), index=index)
    return out


def _ids(loader) -> list[list[str]]:
    return [b.ids for b in loader]


def _loader(prepared, split="train", **cfg):
    kw = {k: cfg.pop(k) for k in ("rank", "world_size", "num_batches") if k in cfg}
    cfg.setdefault("batch_s", BATCH_S)
    cfg.setdefault("shuffle_buffer", 16)
    return StreamingLoader.from_split(read_split(prepared, split), StreamConfig(**cfg), **kw)


# -- the index ------------------------------------------------------------------------------
def test_read_split_gives_urls_hours_labels_vocab(prepared):
    split = read_split(prepared, "valid")
    assert [Path(u).name for u in split.urls] == [f"valid-{i:06d}.tar" for i in range(3)]
    assert all(Path(u).is_file() for u in split.urls)
    assert split.num_samples == 15 and split.hours == pytest.approx(split.total_s / 3600)
    assert split.labels == ("angry", "calm", "happy") and split.vocab["<pad>"] == 0
    with pytest.raises(ValueError, match=r"no split 'test'; known splits: train, valid"):
        read_split(prepared, "test")
    with pytest.raises(FileNotFoundError, match="no dataset index"):
        read_split(prepared / "nowhere", "train")


# -- shard assignment -----------------------------------------------------------------------
def test_shard_order_shared_by_ranks_new_each_epoch():
    urls = [f"s{i}" for i in range(20)]
    e0 = shard_order(urls, seed=3, epoch=0, pass_=0)
    assert e0 == shard_order(list(urls), seed=3, epoch=0, pass_=0)  # what any other rank computes
    assert sorted(e0) == sorted(urls) and e0 != urls
    assert shard_order(urls, seed=3, epoch=1, pass_=0) != e0
    assert shard_order(urls, seed=4, epoch=0, pass_=0) != e0
    assert shard_order(urls, 3, 0, 0, shuffle=False) == urls


def test_slot_shards_partition_and_sample_level_fallback():
    urls = [f"s{i}" for i in range(7)]
    parts = [slot_shards(urls, r, 2, w, 2) for r in range(2) for w in range(2)]
    assert sorted(u for p, splits in parts for u in p) == urls and all(not s for _, s in parts)
    # 3 shards, 2 ranks x 2 workers: rank 1 holds one shard, its two workers split its samples
    assert slot_shards(urls[:3], 1, 2, 1, 2) == (["s1"], [(2, 1)])
    # 1 shard, 2 ranks: every rank reads it, keeps every other sample
    assert slot_shards(urls[:1], 1, 2, 0, 1) == (["s0"], [(2, 1)])


def test_ranks_read_disjoint_shards_covering_the_split(prepared):
    """One single-pass epoch per rank of a 3-rank job: every utterance exactly once."""
    seen = []
    for rank in range(3):
        loader = _loader(prepared, kind="finetune", loop=False, rank=rank, world_size=3)
        seen += [i for ids in _ids(loader) for i in ids]
    assert sorted(seen) == sorted(f"train_s{s}_{j}" for s, n in enumerate([12, 3, 30, 8, 5, 20, 9]) for j in range(n))


# -- equal counts, budget, epochs, determinism ------------------------------------------------
@pytest.mark.parametrize("num_workers", [0, 2])
def test_every_rank_yields_num_batches_within_budget(prepared, num_workers):
    split = read_split(prepared, "train")
    counts = []
    for rank in range(3):
        loader = _loader(prepared, kind="finetune", rank=rank, world_size=3, num_workers=num_workers)
        batches = list(loader)
        counts.append(len(batches))
        assert all(b.audio.numel() <= BATCH_S * SAMPLE_RATE for b in batches)
        assert loader.epoch == 1 and loader.stats.num_batches == len(batches)
    expected = int(split.total_s / (3 * BATCH_S) * StreamConfig().fill)
    assert counts == [expected] * 3


def test_rank_with_less_data_loops_to_fill_its_quota(prepared):
    # 3 valid shards of 4, 9 and 2 utterances over 2 ranks: one rank holds far less audio
    loaders = [_loader(prepared, "valid", kind="pretrain", rank=r, world_size=2, fill=1.0) for r in range(2)]
    ids = [_ids(loader) for loader in loaders]
    assert len(ids[0]) == len(ids[1]) == len(loaders[0]) > 0
    flat = [[i for b in rank_ids for i in b] for rank_ids in ids]
    assert any(len(f) != len(set(f)) for f in flat)  # the smaller rank saw some utterances twice


def test_same_seed_same_batches_new_epoch_new_batches(prepared):
    a, b, c = (_loader(prepared, kind="pretrain", seed=s, rank=0, world_size=2) for s in (5, 5, 6))
    first = [b_.audio.sum().item() for b_ in a]
    assert first == [b_.audio.sum().item() for b_ in b]  # same seed: same ids and same crops
    assert _ids(c) != _ids(_loader(prepared, kind="pretrain", seed=5, rank=0, world_size=2))
    assert a.epoch == 1 and _ids(a) != _ids(_loader(prepared, kind="pretrain", seed=5, rank=0, world_size=2))


def test_pretrain_batches_are_cropped_not_padded(prepared):
    loader = _loader(prepared, kind="pretrain", max_sample_size=3 * SAMPLE_RATE)
    for batch in loader:
        assert (batch.lengths == batch.audio.shape[1]).all() and batch.audio.shape[1] <= 3 * SAMPLE_RATE
    assert loader.stats.padding_fraction == 0 and loader.stats.crop_fraction > 0


def test_buckets_cut_padding_on_the_stream(prepared):
    def padding(bounds):
        loader = _loader(prepared, kind="finetune", bucket_boundaries_s=bounds, batch_s=20.0, shuffle_buffer=64)
        list(loader)
        return loader.stats.padding_fraction

    assert padding((1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0)) < padding(()) / 2


# -- resume ---------------------------------------------------------------------------------
@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_yields_exactly_the_uninterrupted_batches(prepared, num_workers):
    def make():
        return _loader(prepared, kind="pretrain", rank=1, world_size=2, num_workers=num_workers, seed=11)

    reference = make()
    expected = [(b.ids, b.audio.sum().item()) for _ in range(2) for b in reference]  # epochs 0 and 1
    per_epoch = len(reference)
    for stop in (3, per_epoch, per_epoch + 1):  # mid-epoch, at the epoch boundary, odd position
        first = make()
        got = []
        for _ in range(2):
            for batch in first:
                got.append((batch.ids, batch.audio.sum().item()))
                if len(got) == stop:
                    break
            if len(got) == stop:
                break
        state = json.loads(json.dumps(first.state_dict()))  # survives a JSON checkpoint
        resumed = make()
        resumed.load_state_dict(state)
        while len(got) < 2 * per_epoch:
            got += [(b.ids, b.audio.sum().item()) for b in resumed]
        assert got == expected, f"resume after {stop} batches"


def test_fast_forward_does_not_collate_skipped_batches(prepared, monkeypatch):
    calls = []
    real = stream_mod.collate
    monkeypatch.setattr(stream_mod, "collate", lambda *a, **k: calls.append(1) or real(*a, **k))
    loader = _loader(prepared, kind="finetune")
    loader.load_state_dict({"epoch": 2, "batches_in_epoch": len(loader) - 2})
    assert len(list(loader)) == 2 and len(calls) == 2


def test_load_state_dict_refuses_another_stream(prepared):
    # another world size is a regrouping (tests/data/test_regroup.py); another seed or shard list is not the stream
    loader = _loader(prepared, kind="finetune", rank=0, world_size=2)
    with pytest.raises(ValueError, match="seed: saved 99, now 0"):
        loader.load_state_dict(loader.state_dict() | {"seed": 99})
    with pytest.raises(ValueError, match="num_shards: saved 3, now 7"):
        loader.load_state_dict(loader.state_dict() | {"num_shards": 3})


# -- damaged shards -------------------------------------------------------------------------
def _add(tf: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tf.addfile(info, io.BytesIO(payload))


def test_damaged_shards_are_logged_once_skipped_and_counted(tmp_path, caplog):
    write_split(tmp_path, "train", [[1.0] * 6] * 2)
    good = (tmp_path / "train-000000.tar").read_bytes()
    (tmp_path / "truncated.tar").write_bytes(good[: len(good) // 2 + 7])
    (tmp_path / "not_a_tar.tar").write_bytes(b"\x00garbage" * 1000)
    _, npy = encode_audio(np.zeros(SAMPLE_RATE, np.int16))
    with tarfile.open(tmp_path / "mixed.tar", "w") as tf:
        _add(tf, "ok1.npy", npy), _add(tf, "ok1.json", b'{"id": "ok1"}')
        _add(tf, "junk.bin", b"\x01\x02 a garbage member")
        _add(tf, "badaudio.npy", b"nonsense"), _add(tf, "badaudio.json", b'{"id": "badaudio"}')
        _add(tf, "badflac.flac", b"fLaC nonsense"), _add(tf, "badflac.json", b'{"id": "badflac"}')
        _add(tf, "badjson.npy", npy), _add(tf, "badjson.json", b"{not json")
        _add(tf, "ok2.npy", npy), _add(tf, "ok2.json", b'{"id": "ok2"}')
    names = ["train-000000.tar", "truncated.tar", "not_a_tar.tar", "mixed.tar", "missing.tar", "train-000001.tar"]
    urls = [str(tmp_path / n) for n in names] + [f"pipe:cat {tmp_path / 'train-000000.tar'}"]
    cfg = StreamConfig(kind="finetune", batch_s=3.0, loop=False, shuffle_buffer=0, shard_shuffle=False)
    with caplog.at_level(logging.WARNING, logger="ds_w2v.data.stream"):
        loader = StreamingLoader(urls, cfg)
        ids = [i for b in loader for i in b.ids]
        list(StreamingLoader(urls, cfg))  # a second pass in the same process logs nothing new
    truncated_ok = [i for i in ids if i.startswith("train_s0_")]
    assert {"ok1", "ok2"} <= set(ids) and len([i for i in ids if i.startswith("train_s1_")]) == 6
    assert 12 < len(truncated_ok) < 18  # two full copies (file, pipe:) + the truncated shard's head
    skipped = loader.stats.skipped
    assert skipped["bad_shard"] == 2  # truncated, not a tar: one event each
    assert skipped["unreachable_shard"] == 1  # missing: nothing to read is not damage
    assert skipped["bad_audio"] == 2 and skipped["bad_json"] == 1 and skipped["incomplete_sample"] >= 1
    assert loader.stats.num_corrupt == sum(skipped.values()) - 1
    assert {Path(u).name for u in loader.stats.bad_shards} == {"truncated.tar", "not_a_tar.tar", "mixed.tar"}
    assert {Path(u).name for u in loader.stats.unreachable_shards} == {"missing.tar"}
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == len(set(warnings)) == 7  # once per (shard, reason) met
    assert any("truncated.tar" in w and "bad_shard" in w for w in warnings)
    assert any("missing.tar" in w and "unreachable_shard" in w and "No such file" in w for w in warnings)


def test_a_rank_without_usable_audio_fails_instead_of_spinning(tmp_path):
    (tmp_path / "junk.tar").write_bytes(b"nothing here" * 100)
    loader = StreamingLoader([str(tmp_path / "junk.tar")], StreamConfig(batch_s=4.0), num_batches=3)
    with pytest.raises(RuntimeError, match="no usable utterance"):
        list(loader)


def test_flac_shards_stream_like_npy(tmp_path):
    durs = random_durations(2, [6, 5])
    write_split(tmp_path / "npy", "train", durs, codec="npy")
    write_split(tmp_path / "flac", "train", durs, codec="flac")
    a, b = (_loader(tmp_path / c, kind="finetune", seed=1) for c in ("npy", "flac"))
    for x, y in zip(a, b):
        assert x.ids == y.ids and np.array_equal(x.audio.numpy(), y.audio.numpy())


# -- single-pass (evaluation) streams: every decodable utterance, the oversize ones alone -----
EVAL_BATCH_S = 4.0  # 64,000 samples: the 4.1, 5.0, 6.5 and 9.0-s utterances below do not fit
EVAL_DURS = [[1.0, 5.0, 0.3, 2.5, 4.0], [4.1, 1.5, 2.0], [0.8, 9.0, 1.2, 1.1, 3.0, 6.5], [2.2]]
BAD_ID = "eval_bad_audio"


def _append_bad_sample(tar_path: Path) -> None:
    """A sample whose audio does not decode, at the end of an existing shard."""
    with tarfile.open(tar_path, "a") as tf:
        _add(tf, f"{BAD_ID}.npy", b"nonsense")
        _add(tf, f"{BAD_ID}.json", json.dumps({"id": BAD_ID}).encode())


def _shard_records(urls) -> dict[str, int]:
    """``{id: num_samples}`` of every JSON record in the tars, read without the loader."""
    out = {}
    for url in urls:
        with tarfile.open(url) as tf:
            for m in tf.getmembers():
                if m.name.endswith(".json"):
                    record = json.loads(tf.extractfile(m).read())
                    out[record["id"]] = record.get("num_samples", 0)
    return out


@pytest.fixture(scope="module", params=["4 shards", "1 shard"])
def eval_split(request, tmp_path_factory) -> tuple[list[str], dict[str, int]]:
    """4 uneven shards (shard-level rank split) or the same utterances in 1 shard (sample-level
    split), with 4 utterances longer than the budget and one corrupt sample; returns the URLs and
    ``{id: num_samples}`` of the decodable utterances."""
    out = tmp_path_factory.mktemp("eval")
    durs = EVAL_DURS if request.param == "4 shards" else [[d for s in EVAL_DURS for d in s]]
    write_split(out, "eval", durs)
    split = read_split(out, "eval")
    _append_bad_sample(Path(split.urls[-1]))
    records = _shard_records(split.urls)
    assert records.pop(BAD_ID) == 0 and len(records) == sum(map(len, EVAL_DURS))
    return split.urls, records


def _eval_cfg(**kw) -> StreamConfig:
    # what the trainer's evaluate() builds, plus duration filters a single pass must ignore
    base = dict(kind="finetune", batch_s=EVAL_BATCH_S, loop=False, shard_shuffle=False, shuffle_buffer=0,
                min_duration_s=0.5, max_duration_s=3.0)
    return StreamConfig(**(base | kw))


@pytest.mark.parametrize("overrides", [{}, {"num_workers": 2}, {"shuffle_buffer": 4, "shard_shuffle": True}])
def test_single_pass_delivers_every_decodable_utterance_oversize_alone(eval_split, overrides):
    urls, records = eval_split
    budget = int(EVAL_BATCH_S * SAMPLE_RATE)
    oversize = {i for i, n in records.items() if n > budget}
    assert len(oversize) == 4 and any(n == budget for n in records.values())  # 4.0 s fits exactly
    loader = StreamingLoader(urls, _eval_cfg(**overrides))
    batches = list(loader)
    ids = [i for b in batches for i in b.ids]
    assert sorted(ids) == sorted(records)  # each once: oversize, too short (0.3 s), over max_duration_s
    for b in batches:
        if set(b.ids) & oversize:
            # alone, unpadded and uncropped: the whole utterance, wider than the budget
            assert b.batch_size == 1 and b.audio.shape[1] == b.lengths[0] == records[b.ids[0]] > budget
        else:
            assert b.audio.numel() <= budget
    stats = loader.stats
    assert stats.skipped == {"bad_audio": 1} and stats.num_corrupt == 1  # filters count nothing
    assert stats.num_utterances == len(records) and stats.num_oversize == len(oversize)
    assert stats.audio_s == pytest.approx(sum(records.values()) / SAMPLE_RATE)
    assert stats.as_dict()["data/num_oversize"] == 4.0


def test_single_pass_pretrain_crops_as_usual_and_keeps_every_utterance(eval_split):
    urls, records = eval_split
    cap = 3 * SAMPLE_RATE  # max_sample_size below the budget: every batch is cropped within it
    loader = StreamingLoader(urls, _eval_cfg(kind="pretrain", max_sample_size=cap))
    batches = list(loader)
    assert sorted(i for b in batches for i in b.ids) == sorted(records)
    assert all(b.audio.shape[1] <= cap and (b.lengths == b.audio.shape[1]).all() for b in batches)
    stats = loader.stats
    assert stats.num_oversize == 0  # a cropped utterance always fits: nothing needs a batch alone
    assert stats.valid_samples + stats.cropped_samples == sum(records.values())


def test_single_pass_over_two_ranks_covers_every_utterance_once(eval_split):
    urls, records = eval_split
    ids, per_rank = [], []
    for rank in range(2):  # given explicitly: no process group
        loader = StreamingLoader(urls, _eval_cfg(), rank=rank, world_size=2)
        ids += [i for b in loader for i in b.ids]
        per_rank.append(loader.stats)
    assert sorted(ids) == sorted(records)
    assert all(s.num_utterances > 0 for s in per_rank)
    assert sum(s.num_oversize for s in per_rank) == 4
    assert sum(s.skipped.get("bad_audio", 0) for s in per_rank) == 1
    assert sum(s.valid_samples for s in per_rank) == sum(records.values())


def test_training_stream_still_skips_oversize_and_filtered_utterances(eval_split):
    urls, records = eval_split
    budget = int(EVAL_BATCH_S * SAMPLE_RATE)
    cfg = StreamConfig(kind="finetune", batch_s=EVAL_BATCH_S, min_duration_s=0.5, shuffle_buffer=4)
    dropped = {i for i, n in records.items() if n > budget or n < 0.5 * SAMPLE_RATE}
    usable = len(records) - len(dropped)
    # a batch holds >= 1 utterance, so 2 x usable + 1 batches read passes 0 and 1 in full
    loader = StreamingLoader(urls, cfg, num_batches=2 * usable + 1)
    batches = list(loader)
    ids = {i for b in batches for i in b.ids}
    assert len(dropped) == 5 and not ids & dropped and ids == set(records) - dropped
    assert all(b.audio.numel() <= budget for b in batches)
    stats = loader.stats
    assert stats.num_oversize == 0
    # counted once per pass that meets them: 4 oversize, the 0.3-s one, the corrupt one
    assert stats.skipped["too_long"] >= 2 * 4 and stats.skipped["too_short"] >= 2
    assert stats.skipped["bad_audio"] >= 2
