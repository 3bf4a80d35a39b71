import torch

from ds_w2v.models.wav2vec2.masking import compute_channel_mask, compute_time_mask, masked_positions


def test_time_mask_equal_counts_and_no_padding():
    torch.manual_seed(0)
    lengths = torch.tensor([200, 150, 97, 60])
    for _ in range(20):
        mask = compute_time_mask(lengths, 200, 0.65, 10, 2)
        counts = mask.sum(1)
        assert bool((counts == counts[0]).all()), counts  # same number in every utterance
        assert counts[0] >= 2
        for b, n in enumerate(lengths.tolist()):
            assert not mask[b, n:].any()  # never on padding
        pos = masked_positions(mask)
        assert pos.shape == (4, int(counts[0]))
        assert bool((mask.gather(1, pos)).all())


def test_time_mask_fraction_follows_fairseq_formula():
    """One utterance of T frames: mask_prob*T/len spans of 10 frames, overlapping, cover about
    1 - (1 - 16.5/241)**10 = 0.51 of it. A batch keeps its minimum count, so it masks less."""
    torch.manual_seed(1)
    single = torch.stack([compute_time_mask(torch.tensor([250]), 250, 0.65, 10, 2).float().mean()
                          for _ in range(300)]).mean()
    assert 0.47 < float(single) < 0.55
    batch = torch.stack([compute_time_mask(torch.full((64,), 250), 250, 0.65, 10, 2).float().mean()
                         for _ in range(20)]).mean()
    assert 0.30 < float(batch) < float(single)


def test_time_mask_too_short_masks_nothing():
    mask = compute_time_mask(torch.tensor([50, 8]), 50, 0.65, 10, 2)
    assert not mask.any()  # an utterance shorter than a span leaves the whole batch unmasked


def test_time_mask_is_reproducible_from_the_seed():
    lengths = torch.tensor([120, 80])
    torch.manual_seed(5)
    a = compute_time_mask(lengths, 120, 0.65, 10, 2)
    torch.manual_seed(5)
    b = compute_time_mask(lengths, 120, 0.65, 10, 2)
    assert torch.equal(a, b)


def test_channel_mask_spans():
    torch.manual_seed(0)
    mask = compute_channel_mask(8, 768, 0.5, 64)
    assert mask.shape == (8, 768)
    frac = float(mask.float().mean())
    assert 0.2 < frac < 0.6  # 6 spans of 64 with overlaps
