"""Learning-rate schedules: values at the phase boundaries, shape within each phase, and the
shipped recipes' schedules (fairseq polynomial_decay for pretraining, tri_stage for fine-tuning)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ds_w2v.train.config import OptimConfig, ScheduleConfig, load_config
from ds_w2v.train.schedule import learning_rate

LR, END_LR = 1e-3, 1e-5


def _curve(optim, sched, max_updates, updates):
    return np.array([learning_rate(u, optim, sched, max_updates) for u in updates])


# --- polynomial: linear warm-up to lr, linear decay to end_lr --------------------------------------
POLY = dict(optim=OptimConfig(lr=LR), sched=ScheduleConfig(kind="polynomial", warmup_updates=100, end_lr=END_LR),
            max_updates=1000)


def lr_poly(update):
    return learning_rate(update, **POLY)


def test_polynomial_boundaries():
    assert lr_poly(0) == pytest.approx(LR / 100)  # the first update already moves (fairseq: lr / warmup)
    assert lr_poly(49) == pytest.approx(LR * 0.5)
    assert lr_poly(99) == pytest.approx(LR)  # warm-up ends at the peak
    assert lr_poly(100) == pytest.approx(LR)  # decay starts from the peak
    assert lr_poly(550) == pytest.approx((LR + END_LR) / 2)  # half-way through the decay
    assert lr_poly(1000) == pytest.approx(END_LR)
    assert lr_poly(5000) == pytest.approx(END_LR)  # past max_updates it stays at end_lr


def test_polynomial_is_linear_and_monotonic_in_each_phase():
    warm = _curve(**POLY, updates=range(0, 100))
    steps = np.diff(warm)
    assert (steps > 0).all()
    np.testing.assert_allclose(steps, LR / 100, rtol=1e-9)  # a straight line

    decay = _curve(**POLY, updates=range(100, 1001))
    steps = np.diff(decay)
    assert (steps < 0).all()
    np.testing.assert_allclose(steps, -(LR - END_LR) / 900, rtol=1e-9)

    whole = _curve(**POLY, updates=range(0, 1200))
    assert whole.max() == pytest.approx(LR) and whole.min() >= 0


def test_polynomial_without_warmup():
    sched = ScheduleConfig(kind="polynomial", warmup_updates=0, end_lr=0.0)
    assert learning_rate(0, OptimConfig(lr=LR), sched, 10) == pytest.approx(LR)
    assert learning_rate(5, OptimConfig(lr=LR), sched, 10) == pytest.approx(LR / 2)
    assert learning_rate(10, OptimConfig(lr=LR), sched, 10) == 0.0


def test_pretrain_original_schedule():
    # BASE: peak 5e-4 after 32k updates, linear to 0 at 400k
    c = load_config("pretrain_original", ["data.shards=/x"])

    def lr(u):
        return learning_rate(u, c.optim, c.schedule, c.max_updates)

    assert lr(0) == pytest.approx(5e-4 / 32_000)
    assert lr(15_999) == pytest.approx(2.5e-4)
    assert lr(31_999) == pytest.approx(5e-4)
    assert lr(32_000) == pytest.approx(5e-4)
    assert lr(216_000) == pytest.approx(2.5e-4)
    assert lr(400_000) == 0.0


# --- tri_stage: warm-up from init_lr_scale*lr, hold lr, exponential decay to final_lr_scale*lr ---
TRI = dict(optim=OptimConfig(lr=LR),
           sched=ScheduleConfig(kind="tri_stage", phase_ratio=(0.1, 0.4, 0.5), init_lr_scale=0.01,
                                final_lr_scale=0.05),
           max_updates=1000)  # warm-up [0, 100), hold [100, 500), decay [500, 1000]


def lr_tri(update):
    return learning_rate(update, **TRI)


def test_tri_stage_boundaries():
    assert lr_tri(0) == pytest.approx(0.01 * LR)
    assert lr_tri(50) == pytest.approx(0.01 * LR + (LR - 0.01 * LR) * 0.5)
    assert lr_tri(99) == pytest.approx(0.01 * LR + (LR - 0.01 * LR) * 0.99)
    assert lr_tri(100) == LR  # hold
    assert lr_tri(499) == LR
    assert lr_tri(500) == pytest.approx(LR)  # decay starts from the peak
    assert lr_tri(750) == pytest.approx(LR * math.sqrt(0.05))  # geometric half-way
    assert lr_tri(1000) == pytest.approx(0.05 * LR)
    assert lr_tri(10_000) == pytest.approx(0.05 * LR)  # past the end it stays at final_lr


def test_tri_stage_shape_in_each_phase():
    warm = _curve(**TRI, updates=range(0, 101))
    steps = np.diff(warm)
    assert (steps > 0).all()
    np.testing.assert_allclose(steps, (LR - 0.01 * LR) / 100, rtol=1e-9)  # linear

    hold = _curve(**TRI, updates=range(100, 500))
    assert (hold == LR).all()

    decay = _curve(**TRI, updates=range(500, 1001))
    assert (np.diff(decay) < 0).all()
    ratios = decay[1:] / decay[:-1]
    np.testing.assert_allclose(ratios, 0.05 ** (1 / 500), rtol=1e-9)  # exponential: constant ratio

    whole = _curve(**TRI, updates=range(0, 1200))
    assert whole.max() == pytest.approx(LR) and whole.min() == pytest.approx(0.01 * LR)


def test_tri_stage_ignores_warmup_updates():
    other = dict(TRI, sched=ScheduleConfig(**{**TRI["sched"].__dict__, "warmup_updates": 7}))
    assert [learning_rate(u, **other) for u in (0, 99, 100, 750)] == [lr_tri(u) for u in (0, 99, 100, 750)]


def test_finetune_ctc_original_schedule():
    # base_10h: 20k updates = 2k warm-up from 5e-7, 8k hold at 5e-5, 10k decay to 2.5e-6
    c = load_config("finetune_ctc_original", ["data.shards=/x"])

    def lr(u):
        return learning_rate(u, c.optim, c.schedule, c.max_updates)

    assert lr(0) == pytest.approx(5e-7)
    assert lr(1_999) < 5e-5
    assert lr(2_000) == lr(9_999) == 5e-5
    assert lr(10_000) == pytest.approx(5e-5)
    assert lr(10_001) < 5e-5
    assert lr(20_000) == pytest.approx(2.5e-6)


@pytest.mark.parametrize("recipe", ["pretrain_tiny", "finetune_ctc_tiny", "finetune_cls_tiny"])
def test_demo_schedules_stay_in_range(recipe):
    c = load_config(recipe, ["data.shards=/x"])
    lrs = _curve(c.optim, c.schedule, c.max_updates, range(0, c.max_updates + 1))
    assert np.isfinite(lrs).all() and lrs.min() >= 0 and lrs.max() == pytest.approx(c.optim.lr)
    assert (lrs[:-1] > 0).all()  # only polynomial's last update reaches end_lr = 0
    assert lrs[-1] == pytest.approx(c.schedule.end_lr if c.schedule.kind == "polynomial"
                                    else c.schedule.final_lr_scale * c.optim.lr)


def test_schedule_is_a_pure_function_of_the_update():
    # a resumed run restores the update counter and continues the schedule exactly
    first = [lr_tri(u) for u in range(0, 1000, 37)]
    assert [lr_tri(u) for u in reversed(range(0, 1000, 37))] == first[::-1]
