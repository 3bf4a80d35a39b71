import math

import pytest
import torch

from ds_w2v.models.wav2vec2.objective import contrastive_logits, contrastive_loss, sample_negatives


def test_negatives_never_the_positive_and_in_range():
    torch.manual_seed(0)
    neg = sample_negatives(3, 40, 100)
    assert neg.shape == (3, 40, 100)
    own = torch.arange(40)[None, :, None]
    assert not bool((neg == own).any())
    assert int(neg.min()) >= 0 and int(neg.max()) <= 39
    # uniform over the 39 others: every other index is drawn
    assert all(len(set(neg[0, i].tolist())) > 30 for i in range(5))


def test_negatives_need_two_masked_frames():
    with pytest.raises(ValueError, match="at least 2 masked frames"):
        sample_negatives(2, 1, 10)


def test_contrastive_logits_against_explicit_cosines():
    torch.manual_seed(0)
    b, m, d, k = 2, 6, 8, 4
    pred, targ = torch.randn(b, m, d), torch.randn(b, m, d)
    codes = torch.arange(b * m * 2).view(b, m, 2)  # all distinct codewords
    neg = sample_negatives(b, m, k)
    logits = contrastive_logits(pred, targ, codes, neg, 0.1)
    for i in range(b):
        for t in range(m):
            cands = torch.cat([targ[i, t : t + 1], targ[i, neg[i, t]]])
            ref = torch.cosine_similarity(pred[i, t][None], cands, dim=-1) / 0.1
            torch.testing.assert_close(logits[i, t], ref, rtol=1e-5, atol=1e-5)


def test_same_codeword_negatives_are_excluded():
    torch.manual_seed(0)
    pred, targ = torch.randn(1, 4, 8), torch.randn(1, 4, 8)
    codes = torch.tensor([[[1, 1], [1, 1], [2, 3], [4, 5]]])  # frames 0 and 1 share a codeword
    neg = torch.tensor([[[1, 2], [0, 3], [0, 1], [0, 1]]])
    logits = contrastive_logits(pred, targ, codes, neg, 0.1)
    assert math.isinf(float(logits[0, 0, 1])) and math.isinf(float(logits[0, 1, 1]))
    assert torch.isfinite(logits[0, 2:]).all()


def test_loss_at_chance_is_log_k_plus_one():
    logits = torch.zeros(2, 10, 101)
    loss, correct = contrastive_loss(logits)
    assert float(loss) == pytest.approx(20 * math.log(101), rel=1e-6)
