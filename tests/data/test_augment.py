"""Augmentation (``ds_w2v/data/augment.py``): each effect on its own (lengths, SNR, RIR alignment
and power), the sources (noise folders, shard-backed noise, RIR folders) and their refusals, and
in the stream: off by default, seeded, exact on resume, never on single-pass streams.

Noise and impulse responses are generated here (white and pink noise WAV/FLAC, exponentially
decaying noise as RIRs): nothing is downloaded."""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch

from ds_w2v.data import StreamConfig, StreamingLoader, read_split
from ds_w2v.data.augment import Augmenter, add_noise, apply_speed, change_speed, reverberate, speed_samples
from ds_w2v.data.augment_config import AugmentConfig
from ds_w2v.data.augment_sources import NoiseBank, NoiseFolder, open_noise, open_rirs
from ds_w2v.data.batching import Utterance
from ds_w2v.data.shard_format import SAMPLE_RATE

sys.path.insert(0, str(Path(__file__).parent))  # pytest runs with --import-mode=importlib
from stream_fixtures import random_durations, write_split  # noqa: E402

BATCH_S = 8.0


# -- generated material ----------------------------------------------------------------------------
def white(seconds: float, seed: int, level: float = 0.1) -> np.ndarray:
    return (level * np.random.default_rng(seed).standard_normal(int(seconds * SAMPLE_RATE))).astype(np.float32)


def pink(seconds: float, seed: int, rate: int = SAMPLE_RATE) -> np.ndarray:
    """1/f power spectrum: white noise shaped by 1/sqrt(f) in the frequency domain."""
    n = int(seconds * rate)
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(n))
    spectrum[1:] /= np.sqrt(np.arange(1, len(spectrum)))
    x = np.fft.irfft(spectrum, n)
    return (0.2 * x / np.abs(x).max()).astype(np.float32)


def synthetic_rir(seed: int, rt60_s: float = 0.3, delay: int = 40, seconds: float = 0.4) -> np.ndarray:
    """Exponentially decaying noise (-60 dB after ``rt60_s``) behind a direct-path peak at ``delay``."""
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    h = 0.3 * np.random.default_rng(seed).standard_normal(n) * 10 ** (-3 * t / rt60_s)
    h[:delay] = 0.0
    h[delay] = 1.0
    return (0.5 * h).astype(np.float32)


def speech_like(seconds: float, seed: int, level: float = 0.2) -> np.ndarray:
    """A chirp under a 4-Hz envelope: some power everywhere, far from full scale."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f = 200 + 2000 * t / seconds
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t + seed) ** 2
    return (level * env * np.sin(2 * np.pi * np.cumsum(f) / SAMPLE_RATE)).astype(np.float32)


def to_int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 32768), -32768, 32767).astype(np.int16)


@pytest.fixture(scope="module")
def noise_dir(tmp_path_factory) -> Path:
    """White noise (16 kHz WAV), pink noise (8 kHz stereo FLAC, resampled on read), a 0.2-s clip
    (tiled under longer utterances), in nested folders."""
    root = tmp_path_factory.mktemp("noise")
    (root / "a" / "b").mkdir(parents=True)
    sf.write(root / "white.wav", white(3.0, 1), SAMPLE_RATE)
    p = pink(2.0, 2, 8000)
    sf.write(root / "a" / "pink.flac", np.stack([p, 0.5 * p], axis=1), 8000)
    sf.write(root / "a" / "b" / "short.wav", white(0.2, 3, 0.05), SAMPLE_RATE, subtype="PCM_16")
    return root


@pytest.fixture(scope="module")
def rir_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rir")
    for i in range(3):
        sf.write(root / f"room{i}.wav", synthetic_rir(i, rt60_s=0.2 + 0.1 * i), SAMPLE_RATE, subtype="FLOAT")
    return root


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("aug_shards")
    write_split(out, "train", random_durations(4, [10, 14, 6, 9], low_s=0.5, high_s=4.0))
    return out


# -- the config ------------------------------------------------------------------------------------
def test_everything_is_off_by_default_and_bad_values_name_the_key():
    assert not AugmentConfig().active
    assert not AugmentConfig(speeds=(1.0,)).active  # only the identity: nothing to do
    assert AugmentConfig(speeds=[0.9, 1.0, 1.1]).speeds == (0.9, 1.0, 1.1)
    for kwargs, key in [({"speeds": (0.9, 0.0)}, "speeds"), ({"speeds": (-1.0,)}, "speeds"),
                        ({"snr_db": (20.0, 5.0)}, "snr_db"), ({"noise_prob": 1.5}, "noise_prob"),
                        ({"rir_prob": -0.1}, "rir_prob")]:
        with pytest.raises(ValueError, match=rf"^config key data\.augment\.{key}: ") as e:
            AugmentConfig(**kwargs)
        assert "\n" not in str(e.value)


# -- speed -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_resamples_length_pitch_and_phone_spans(factor):
    n = SAMPLE_RATE  # 1 s of a 1-kHz tone
    pcm = to_int16(0.3 * np.sin(2 * np.pi * 1000 * np.arange(n) / SAMPLE_RATE))
    record = {"id": "u", "num_samples": n, "duration_s": 1.0, "phone_spans": [[0, 8000], [8000, 16000]]}
    out = change_speed(Utterance("u", pcm, record), factor)
    assert abs(len(out.pcm) - n / factor) <= 1 and out.pcm.dtype == np.int16
    assert out.record["num_samples"] == len(out.pcm) and out.record["duration_s"] == len(out.pcm) / SAMPLE_RATE
    assert out.record["phone_spans"] == [[0, round(8000 / factor)], [round(8000 / factor), len(out.pcm)]]
    assert record["num_samples"] == n  # the shard's record is not changed in place
    spectrum = np.abs(np.fft.rfft(out.pcm.astype(np.float64)))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE / len(out.pcm)
    assert peak_hz == pytest.approx(1000 * factor, abs=2)  # pitch moves with tempo (sox `speed`)


def test_speed_one_is_the_same_utterance():
    utt = Utterance("u", np.arange(100, dtype=np.int16), {})
    assert change_speed(utt, 1.0) is utt


def test_speed_samples_is_the_resamplers_exact_length():
    """The batcher budgets a drawn speed's length before the resampling: it must be soxr's, ties
    (n / f = k + 0.5) included, which soxr rounds up where Python's round() goes to even."""
    rng = np.random.default_rng(0)
    lengths = [1, 2, 3, 17, 1818, 11042, 13251, *rng.integers(100, 200_000, 40).tolist()]
    for n in lengths:
        pcm = np.zeros(n, dtype=np.int16)
        for f in (0.8, 0.9, 1.1, 1.2):
            assert len(change_speed(Utterance("u", pcm, {}), f).pcm) == speed_samples(n, f), (n, f)


def test_a_drawn_speed_is_pending_until_applied():
    pcm = to_int16(0.3 * np.sin(np.arange(3000) / 7.0))
    utt = Utterance("u", pcm, {"num_samples": 3000})
    aug = Augmenter(AugmentConfig(speeds=(1.1,)))
    drawn = aug.draw_speed(utt, np.random.default_rng(0))
    assert drawn.pcm is pcm and drawn.speed == 1.1 and drawn.num_samples == speed_samples(3000, 1.1) != 3000
    made = apply_speed(drawn)
    assert np.array_equal(made.pcm, change_speed(utt, 1.1).pcm) and made.num_samples == drawn.num_samples
    assert made.speed == 1.0 and apply_speed(made) is made


# -- noise -----------------------------------------------------------------------------------------
def _snr_db(clean: np.ndarray, mixed: np.ndarray) -> float:
    noise = mixed.astype(np.float64) - clean
    return 10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise ** 2))


def test_noise_is_mixed_at_the_drawn_snr(noise_dir):
    clean = np.stack([speech_like(1.5, s) for s in range(12)])
    for snr in (0.0, 7.5, 20.0):
        rows = clean.copy()
        Augmenter(AugmentConfig(noise=str(noise_dir), snr_db=(snr, snr))).mix_rows(
            rows, [rows.shape[1]] * len(rows), np.random.default_rng(0))
        assert [_snr_db(c, r) for c, r in zip(clean, rows)] == pytest.approx([snr] * len(rows), abs=0.01)
    # a range: each row its own draw, measured on the output, all inside it
    rows = clean.copy()
    Augmenter(AugmentConfig(noise=str(noise_dir), snr_db=(5.0, 20.0))).mix_rows(
        rows, [rows.shape[1]] * len(rows), np.random.default_rng(1))
    measured = [_snr_db(c, r) for c, r in zip(clean, rows)]
    assert all(5.0 - 0.01 <= m <= 20.0 + 0.01 for m in measured) and np.ptp(measured) > 3


def test_noise_leaves_padding_and_silence_alone(noise_dir):
    rows = np.zeros((2, 8000), dtype=np.float32)
    rows[0, :5000] = speech_like(5000 / SAMPLE_RATE, 0)
    before = rows.copy()
    Augmenter(AugmentConfig(noise=str(noise_dir))).mix_rows(rows, [5000, 8000], np.random.default_rng(0))
    assert not np.array_equal(rows[0, :5000], before[0, :5000])
    assert not rows[0, 5000:].any() and not rows[1].any()  # padding stays zero; silence gets no noise
    assert not add_noise(np.zeros(10, np.float32), np.ones(10, np.float32), 10.0)


def test_noise_prob_zero_adds_nothing(noise_dir):
    rows = np.stack([speech_like(1.0, s) for s in range(4)])
    before = rows.copy()
    Augmenter(AugmentConfig(noise=str(noise_dir), noise_prob=0.0)).mix_rows(rows, [rows.shape[1]] * 4,
                                                                             np.random.default_rng(0))
    assert np.array_equal(rows, before)


def test_folder_noise_segments_resampled_mixed_down_and_tiled(noise_dir):
    folder = open_noise(str(noise_dir))
    assert isinstance(folder, NoiseFolder)
    assert sorted(f.path.name for f in folder.files) == ["pink.flac", "short.wav", "white.wav"]
    rates = {f.path.name: f.rate for f in folder.files}
    assert rates["pink.flac"] == 8000
    rng = np.random.default_rng(0)
    for n in (100, 5 * SAMPLE_RATE):  # 5 s: longer than every file, so tiled
        segments = [folder.segment(n, rng) for _ in range(12)]
        assert all(s is not None and s.shape == (n,) and s.dtype == np.float32 and np.isfinite(s).all()
                   for s in segments)


def test_shard_directory_noise_is_held_in_memory(tmp_path):
    write_split(tmp_path / "musan", "noise", [[0.5, 1.0], [0.25]])
    bank = open_noise(str(tmp_path / "musan"))
    assert isinstance(bank, NoiseBank)
    assert len(bank.lengths) == 3 and bank.nbytes == 2 * SAMPLE_RATE * 1.75  # int16: 32 kB per audio-second
    rng = np.random.default_rng(0)
    long = bank.segment(3 * SAMPLE_RATE, rng)  # longer than every noise utterance: tiled
    assert long.shape == (3 * SAMPLE_RATE,) and long.dtype == np.float32 and np.abs(long).max() <= 1.0


def test_damaged_noise_shards_are_skipped_and_reported_once(tmp_path, caplog):
    write_split(tmp_path / "musan", "noise", [[0.5, 1.0], [0.25], [0.5]])
    damaged = read_split(tmp_path / "musan", "noise").urls[1]
    Path(damaged).write_bytes(b"\x00garbage" * 1000)
    with caplog.at_level(logging.WARNING, logger="ds_w2v.data.augment"):
        bank = NoiseBank.load(tmp_path / "musan")
    assert len(bank.lengths) == 3 and bank.nbytes == 2 * SAMPLE_RATE * 2.0  # the other shards, whole
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"1 damaged noise sample(s) or shard(s); the first: {damaged}: cannot read the shard (ReadError" in warnings[0]


# -- RIR -------------------------------------------------------------------------------------------
def test_reverberation_keeps_length_power_and_the_direct_path(tmp_path, rir_dir):
    x = speech_like(1.3, 0)
    rirs = open_rirs(str(rir_dir))
    assert len(rirs) == 3 and all(np.argmax(np.abs(h)) == 0 for h in rirs)  # cut at the direct path
    y = reverberate(x, rirs[0])
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.mean(y.astype(np.float64) ** 2) == pytest.approx(np.mean(x.astype(np.float64) ** 2), rel=1e-4)
    assert not np.allclose(y, x, atol=1e-3)
    # a pure delay is a no-op once aligned to its peak: no shift, no gain change
    (tmp_path / "delay").mkdir()
    sf.write(tmp_path / "delay" / "d.wav", np.r_[np.zeros(50), 0.7, np.zeros(200)].astype(np.float32), SAMPLE_RATE,
             subtype="FLOAT")
    assert np.allclose(reverberate(x, open_rirs(str(tmp_path / "delay"))[0]), x, atol=1e-5)


def test_rir_rows_keep_their_lengths_in_a_batch(rir_dir):
    rows = np.zeros((3, 20000), dtype=np.float32)
    lengths = [20000, 12000, 7000]
    for r, n in enumerate(lengths):
        rows[r, :n] = speech_like(n / SAMPLE_RATE, r)
    Augmenter(AugmentConfig(rir=str(rir_dir), rir_prob=1.0)).mix_rows(rows, lengths, np.random.default_rng(0))
    for r, n in enumerate(lengths):
        assert rows[r, :n].any() and not rows[r, n:].any()


# -- refusals and unreadable files -----------------------------------------------------------------
def test_bad_folders_are_refused_in_one_line_naming_them(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=rf"^config key data\.augment\.noise: {missing}: no such directory$"):
        open_noise(str(missing))
    with pytest.raises(FileNotFoundError, match=rf"^config key data\.augment\.rir: {missing}: no such directory$"):
        open_rirs(str(missing))
    (tmp_path / "a_file.wav").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"^config key data\.augment\.noise: .*a_file\.wav: not a directory$"):
        open_noise(str(tmp_path / "a_file.wav"))
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "readme.txt").write_text("no audio here")
    with pytest.raises(ValueError, match=rf"^config key data\.augment\.noise: {empty}: no readable audio file") as e:
        open_noise(str(empty))
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match=rf"^config key data\.augment\.rir: {empty}: no readable impulse response"):
        open_rirs(str(empty))


def test_an_unreadable_file_is_skipped_and_reported_once(tmp_path, caplog):
    folder = tmp_path / "noise"
    folder.mkdir()
    sf.write(folder / "good.wav", white(1.0, 0), SAMPLE_RATE)
    (folder / "broken.wav").write_bytes(b"RIFF not really a wav file")
    rirs = tmp_path / "rirs"
    rirs.mkdir()
    sf.write(rirs / "room.wav", synthetic_rir(0), SAMPLE_RATE, subtype="FLOAT")
    sf.write(rirs / "silent.wav", np.zeros(100, np.float32), SAMPLE_RATE)
    with caplog.at_level(logging.WARNING, logger="ds_w2v.data.augment"):
        noise = open_noise(str(folder))
        Augmenter(AugmentConfig(noise=str(folder), rir=str(rirs)))  # opened again: cached, not re-reported
        assert len(open_rirs(str(rirs))) == 1
    assert [f.path.name for f in noise.files] == ["good.wav"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([w for w in warnings if "broken.wav" in w]) == 1
    assert len([w for w in warnings if "silent.wav" in w]) == 1


# -- in the stream ---------------------------------------------------------------------------------
def _loader(prepared, augment=None, **cfg):
    kw = {k: cfg.pop(k) for k in ("rank", "world_size") if k in cfg}
    cfg.setdefault("batch_s", BATCH_S)
    cfg.setdefault("shuffle_buffer", 16)
    cfg.setdefault("kind", "finetune")
    return StreamingLoader.from_split(read_split(prepared, "train"), StreamConfig(augment=augment, **cfg), **kw)


def _batches(loader) -> list[tuple[list[str], torch.Tensor, torch.Tensor]]:
    return [(b.ids, b.lengths.clone(), b.audio.clone()) for b in loader]


def _same(a, b) -> bool:
    return len(a) == len(b) and all(x[0] == y[0] and torch.equal(x[1], y[1]) and torch.equal(x[2], y[2])
                                    for x, y in zip(a, b))


def _all_on(noise_dir, rir_dir) -> AugmentConfig:
    return AugmentConfig(speeds=(0.9, 1.0, 1.1), noise=str(noise_dir), rir=str(rir_dir), rir_prob=0.5)


def test_off_by_default_changes_nothing(prepared):
    plain = _batches(_loader(prepared, seed=3))
    assert _same(plain, _batches(_loader(prepared, AugmentConfig(), seed=3)))  # bit-equal
    assert _same(plain, _batches(_loader(prepared, AugmentConfig(speeds=(1.0,)), seed=3)))


def test_speed_in_the_stream_changes_what_the_budget_counts(prepared):
    original = {i: int(n) for b in _loader(prepared, loop=False) for i, n in zip(b.ids, b.lengths)}
    loader = _loader(prepared, AugmentConfig(speeds=(1.1,)), seed=3)
    seen = 0
    for batch in loader:
        assert batch.audio.numel() <= BATCH_S * SAMPLE_RATE  # the budget holds on the new lengths
        for uid, n, record in zip(batch.ids, batch.lengths.tolist(), batch.meta):
            assert abs(n - original[uid] / 1.1) <= 1 and record["num_samples"] == n
            seen += 1
    assert seen > 10


def test_augmented_stream_is_seeded(prepared, noise_dir, rir_dir):
    aug = _all_on(noise_dir, rir_dir)
    a = _batches(_loader(prepared, aug, seed=5))
    assert _same(a, _batches(_loader(prepared, aug, seed=5)))  # same seed: the same batches, bit for bit
    assert not _same(a, _batches(_loader(prepared, aug, seed=6)))
    assert not _same(a, _batches(_loader(prepared, seed=5)))  # and not the unaugmented ones
    assert all(float(x[2].abs().max()) <= 1.0 for x in a)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_with_augmentation_yields_exactly_the_uninterrupted_batches(prepared, noise_dir, rir_dir,
                                                                           num_workers):
    def make():
        return _loader(prepared, _all_on(noise_dir, rir_dir), seed=11, num_workers=num_workers,
                       rank=1, world_size=2, kind="pretrain")

    reference = make()
    expected = _batches(reference) + _batches(reference)  # epochs 0 and 1
    per_epoch = len(reference)
    for stop in (2, per_epoch + 1):  # mid-epoch, then in the second epoch
        first = make()
        got = []
        while len(got) < stop:
            for batch in first:
                got.append((batch.ids, batch.lengths.clone(), batch.audio.clone()))
                if len(got) == stop:
                    break
        state = json.loads(json.dumps(first.state_dict()))
        resumed = make()
        resumed.load_state_dict(state)
        while len(got) < 2 * per_epoch:
            got += _batches(resumed)
        assert _same(got, expected), f"resume after {stop} batches"


def test_resume_fast_forward_resamples_only_the_batches_it_emits(prepared, monkeypatch):
    """The skipped batches' speed factors are drawn (the draws stay in order) but never applied."""
    import ds_w2v.data.augment as augment

    calls = []
    real = augment.change_speed
    monkeypatch.setattr(augment, "change_speed", lambda utt, f: calls.append(utt.key) or real(utt, f))

    def make():
        return _loader(prepared, AugmentConfig(speeds=(1.1,)), seed=11, kind="pretrain")

    reference = make()
    expected = _batches(reference)
    assert len(calls) == sum(len(b[0]) for b in expected)  # every utterance emitted, resampled once
    first = make()
    it = iter(first)
    head = [next(it) for _ in range(3)]
    state = json.loads(json.dumps(first.state_dict()))
    del it
    calls.clear()
    resumed = make()
    resumed.load_state_dict(state)
    tail = _batches(resumed)
    assert _same(_batches_of(head) + tail, expected)
    assert sorted(calls) == sorted(k for b in tail for k in b[0])  # the 3 skipped batches: no resampling


def _batches_of(batches):
    return [(b.ids, b.lengths.clone(), b.audio.clone()) for b in batches]


def test_single_pass_streams_are_never_augmented(prepared, noise_dir):
    with pytest.raises(ValueError, match=r"^data\.augment: augmentation is for training streams"):
        StreamConfig(loop=False, augment=AugmentConfig(noise=str(noise_dir)))
    StreamConfig(loop=False, augment=AugmentConfig())  # an inactive config is allowed: it does nothing
    from ds_w2v.train.evaluator import Evaluator

    from ds_w2v.train.config import DataConfig

    # the training data section augments; the evaluation stream built from it never does
    d = DataConfig(shards="unused", batch_s=BATCH_S, max_sample_size=250_000, augment=AugmentConfig(noise=str(noise_dir)))
    evaluator = Evaluator(SimpleNamespace(stream_kind="finetune"), d.eval_stream_config("finetune", 1))
    config = evaluator.loader(read_split(prepared, "train")).config
    assert config.augment is None and not config.loop
