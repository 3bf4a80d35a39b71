"""Duration buckets, the batch budget, crop and pad collation, the Batch container."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from ds_w2v.data.batching import (
    FINETUNE, MAX_SAMPLE_SIZE, PRETRAIN, Batch, DurationBatcher, Utterance, collate, geometric_buckets,
)
from ds_w2v.data.samples import decode_npy_int16
from ds_w2v.data.shard_format import SAMPLE_RATE, encode_audio

SR = SAMPLE_RATE


def _utts(seed: int, n: int, low_s: float = 0.3, high_s: float = 20.0) -> list[Utterance]:
    rng = np.random.default_rng(seed)
    out = []
    for i, dur in enumerate(rng.uniform(low_s, high_s, n)):
        pcm = (np.arange(int(dur * SR)) % 20000 + i).astype(np.int16)  # pcm[t] - t % 20000 == i
        out.append(Utterance(key=f"u{i}", pcm=pcm, record={"id": f"u{i}", "text": f"t{i}", "label": str(i % 2)}))
    return out


def _batch_all(batcher: DurationBatcher, utts: list[Utterance]) -> list[list[Utterance]]:
    groups = [g for u in utts if (g := batcher.add(u)) is not None]
    return groups + list(batcher.flush())


def _cost(group: list[Utterance], kind: str, cap: int = MAX_SAMPLE_SIZE) -> int:
    lens = [len(u.pcm) for u in group]
    return len(group) * (max(lens) if kind == FINETUNE else min(min(lens), cap))


def test_geometric_buckets_have_constant_ratio():
    bounds = geometric_buckets(1.0, 35.0, 1.15)
    ratios = np.diff(np.log(bounds))
    assert bounds[0] == 1.0 and bounds[-1] <= 35.0 and bounds[-1] * 1.15 > 35.0
    assert np.allclose(ratios, np.log(1.15), atol=1e-3)
    with pytest.raises(ValueError):
        geometric_buckets(1.0, 35.0, 1.0)


@pytest.mark.parametrize("kind", [PRETRAIN, FINETUNE])
@pytest.mark.parametrize("bounds", [(), geometric_buckets()])
def test_budget_never_exceeded_and_every_utterance_batched_once(kind, bounds):
    budget = int(40.0 * SR)
    utts = _utts(0, 300)
    groups = _batch_all(DurationBatcher(budget, kind, bounds), utts)
    assert max(_cost(g, kind) for g in groups) <= budget
    keys = [u.key for g in groups for u in g]
    assert sorted(keys) == sorted(u.key for u in utts)


def test_max_batch_size_caps_the_count():
    groups = _batch_all(DurationBatcher(int(100 * SR), FINETUNE, (), max_batch_size=3), _utts(1, 50, 0.3, 1.0))
    assert max(len(g) for g in groups) == 3


@pytest.mark.parametrize("kind", [PRETRAIN, FINETUNE])
def test_buckets_waste_less_than_one_bucket(kind):
    budget = int(60.0 * SR)
    utts = _utts(2, 400, 0.5, 16.0)

    def waste(bounds):
        groups = _batch_all(DurationBatcher(budget, kind, bounds), utts)
        batches = [collate(g, kind, rng=np.random.default_rng(0))[1] for g in groups]
        if kind == FINETUNE:  # padding / (B x T)
            return 1 - sum(c.valid_samples for c in batches) / sum(c.tensor_samples for c in batches)
        return sum(c.cropped_samples for c in batches) / sum(c.valid_samples + c.cropped_samples for c in batches)

    bucketed, single = waste(geometric_buckets()), waste(())
    assert bucketed < 0.12 and bucketed < single / 2, (bucketed, single)


def test_pretrain_collate_crops_to_the_shortest_at_random_offsets():
    utts = _utts(3, 4, 2.0, 5.0)
    shortest = min(len(u.pcm) for u in utts)
    batch, stats = collate(utts, PRETRAIN, rng=np.random.default_rng(7))
    assert batch.audio.shape == (4, shortest) and batch.audio.dtype == torch.float32
    assert batch.lengths.tolist() == [shortest] * 4 and batch.padding_fraction == 0.0
    assert stats.cropped_samples == sum(len(u.pcm) for u in utts) - 4 * shortest
    for row, u in enumerate(utts):
        pcm = np.round(batch.audio[row].numpy() * 32768).astype(np.int64)
        off = int(np.flatnonzero(u.pcm == pcm[0])[0])  # where the crop starts in the original
        assert np.array_equal(pcm, u.pcm[off:off + shortest])
    again, _ = collate(utts, PRETRAIN, rng=np.random.default_rng(7))
    other, _ = collate(utts, PRETRAIN, rng=np.random.default_rng(8))
    assert torch.equal(batch.audio, again.audio) and not torch.equal(batch.audio, other.audio)


def test_pretrain_collate_caps_at_max_sample_size_and_budget():
    long = _utts(4, 3, 18.0, 20.0)
    batch, _ = collate(long, PRETRAIN, max_sample_size=MAX_SAMPLE_SIZE, rng=np.random.default_rng(0))
    assert batch.audio.shape[1] == MAX_SAMPLE_SIZE == 250_000  # 15.6 s, fairseq's cap
    batcher = DurationBatcher(int(5.0 * SR), PRETRAIN)  # one utterance longer than the budget
    assert batcher.effective_length(len(long[0].pcm)) == 5 * SR and batcher.fits_alone(len(long[0].pcm))
    assert not DurationBatcher(int(5.0 * SR), FINETUNE).fits_alone(len(long[0].pcm))
    with pytest.raises(ValueError, match="exceed the batch budget"):
        DurationBatcher(int(5.0 * SR), FINETUNE).add(long[0])


def test_finetune_collate_pads_to_the_longest_and_carries_metadata():
    utts = _utts(5, 3, 0.5, 3.0)
    batch, stats = collate(utts, FINETUNE)
    lens = [len(u.pcm) for u in utts]
    assert batch.audio.shape == (3, max(lens)) and batch.lengths.tolist() == lens
    assert batch.ids == ["u0", "u1", "u2"] and batch.texts == ["t0", "t1", "t2"] and batch.labels == ["0", "1", "0"]
    mask = batch.padding_mask()
    for row, u in enumerate(utts):
        assert np.array_equal(batch.audio[row, : lens[row]].numpy(), u.pcm.astype(np.float32) / 32768)
        assert not batch.audio[row, lens[row]:].any()
        assert mask[row].sum() == max(lens) - lens[row]
    assert stats.tensor_samples == 3 * max(lens) and stats.valid_samples == sum(lens)
    assert batch.num_audio_s == pytest.approx(sum(lens) / SR)
    assert 0 < batch.padding_fraction < 1


def test_audio_scaled_into_minus_one_one():
    pcm = np.array([-32768, -1, 0, 1, 32767], dtype=np.int16)
    batch, _ = collate([Utterance("k", pcm, {"id": "k"})], FINETUNE)
    assert batch.audio.min() == -1.0 and batch.audio.max() < 1.0 and batch.audio[0, 2] == 0


def test_batch_to_moves_tensors_and_keeps_metadata():
    batch, _ = collate(_utts(6, 2, 0.5, 1.0), FINETUNE)
    moved = batch.to("cpu")
    assert isinstance(moved, Batch) and moved.ids == batch.ids and torch.equal(moved.audio, batch.audio)


def test_npy_fast_decode_matches_np_load_and_rejects_damage():
    pcm = (np.arange(1000) * 37 % 65536 - 32768).astype(np.int16)
    ext, data = encode_audio(pcm)
    assert ext == "npy"
    view = decode_npy_int16(data)
    assert np.array_equal(view, np.load(io.BytesIO(data))) and view.dtype == np.int16
    with pytest.raises(ValueError, match="bytes for"):
        decode_npy_int16(data[:-3])
    buf = io.BytesIO()
    np.save(buf, pcm.astype(np.float32))
    with pytest.raises(ValueError, match="int16"):
        decode_npy_int16(buf.getvalue())
    with pytest.raises(ValueError, match="magic"):
        decode_npy_int16(b"garbage" * 10)
