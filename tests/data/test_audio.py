"""ds_w2v.data.audio: every container/encoding to mono 16 kHz int16, and every way a file is bad."""
from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from ds_w2v.data.audio import REASONS, AudioError, load_audio


def _sine(freq_hz: float, seconds: float, rate: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def _peak_hz(pcm: np.ndarray, rate: int = 16000) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(len(pcm))))
    return float(np.argmax(spectrum) * rate / len(pcm))


def _reason(path, **kw) -> str:
    with pytest.raises(AudioError) as e:
        load_audio(path, **kw)
    assert e.value.reason in REASONS
    return e.value.reason


def test_16k_pcm16_is_returned_bit_exact(tmp_path):
    x = (np.random.default_rng(0).integers(-20000, 20000, 16000)).astype(np.int16)
    sf.write(tmp_path / "a.wav", x, 16000, subtype="PCM_16")
    pcm = load_audio(tmp_path / "a.wav")
    assert pcm.dtype == np.int16 and pcm.ndim == 1
    np.testing.assert_array_equal(pcm, x)


@pytest.mark.parametrize(
    "rate, channels, fmt, subtype",
    [
        (44100, 2, "WAV", "PCM_16"),  # CD audio, stereo
        (48000, 1, "WAV", "PCM_24"),
        (8000, 1, "WAV", "ULAW"),  # telephone mu-law
        (8000, 1, "WAV", "PCM_U8"),  # 8-bit unsigned
        (22050, 1, "WAV", "FLOAT"),
        (16000, 1, "FLAC", "PCM_16"),
        (32000, 1, "OGG", "VORBIS"),
        (16000, 1, "NIST", "PCM_16"),  # TIMIT's SPHERE
        (16000, 2, "NIST", "ALAW"),
    ],
)
def test_resampled_to_16k_mono_keeping_duration_and_pitch(tmp_path, rate, channels, fmt, subtype):
    seconds, freq = 1.5, 1000.0
    x = _sine(freq, seconds, rate)
    if channels == 2:
        x = np.stack([x, x], axis=1)
    path = tmp_path / f"a.{fmt.lower()}"
    sf.write(path, x, rate, format=fmt, subtype=subtype)
    pcm = load_audio(path)
    assert pcm.dtype == np.int16 and pcm.ndim == 1
    assert abs(len(pcm) - seconds * 16000) <= 1  # duration kept to a sample
    assert abs(_peak_hz(pcm) - freq) < 5  # the tone is still at 1 kHz
    # 0.5 full scale survives the conversions (mu-law/8-bit/vorbis within a few %)
    assert 0.45 * 32768 < np.abs(pcm[100:-100]).max() < 0.56 * 32768


def test_float_full_scale_maps_to_int16_range_and_clips(tmp_path):
    x = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 1.7, -3.0] * 2000, dtype=np.float32)
    sf.write(tmp_path / "f.wav", x, 16000, subtype="FLOAT")
    pcm = load_audio(tmp_path / "f.wav")
    np.testing.assert_array_equal(pcm[:7], [0, 16384, -16384, 32767, -32768, 32767, -32768])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_rejected(tmp_path, bad):
    x = _sine(300, 1.0, 16000)
    x[1234] = bad
    sf.write(tmp_path / "n.wav", x, 16000, subtype="FLOAT")
    assert _reason(tmp_path / "n.wav") == "non_finite"


def test_duration_limits(tmp_path):
    sf.write(tmp_path / "short.wav", _sine(300, 0.3, 16000), 16000)
    sf.write(tmp_path / "long.wav", _sine(300, 3.0, 8000), 8000)
    assert _reason(tmp_path / "short.wav") == "too_short"
    assert _reason(tmp_path / "long.wav", max_duration_s=2.0) == "too_long"
    assert len(load_audio(tmp_path / "long.wav", max_duration_s=None)) == 48000
    assert len(load_audio(tmp_path / "short.wav", min_duration_s=0.1)) == 4800


def test_too_long_is_refused_from_the_header_without_decoding(tmp_path, monkeypatch):
    sf.write(tmp_path / "long.wav", np.zeros(8000 * 40, np.int16), 8000, subtype="PCM_U8")  # 40 s

    def no_decoding(*args, **kwargs):
        raise AssertionError("samples decoded for a file longer than the maximum")

    monkeypatch.setattr(sf.SoundFile, "read", no_decoding)
    assert _reason(tmp_path / "long.wav", max_duration_s=36.0) == "too_long"


@pytest.mark.parametrize("fmt, ext", [("WAV", "wav"), ("NIST", "wav"), ("FLAC", "flac")])
def test_truncated_files_rejected(tmp_path, fmt, ext):
    sf.write(tmp_path / f"full.{ext}", _sine(440, 2.0, 16000) * 0.3
             + np.random.default_rng(1).normal(0, 0.1, 32000).astype(np.float32), 16000, format=fmt)
    data = (tmp_path / f"full.{ext}").read_bytes()
    (tmp_path / f"cut.{ext}").write_bytes(data[: len(data) * 2 // 3])
    assert _reason(tmp_path / f"cut.{ext}") == "truncated"
    assert len(load_audio(tmp_path / f"full.{ext}")) == 32000


def test_empty_garbage_and_header_only_files(tmp_path):
    (tmp_path / "zero.wav").write_bytes(b"")
    (tmp_path / "junk.wav").write_bytes(b"this is not audio at all " * 20)
    (tmp_path / "header.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ")  # cut inside the header
    sf.write(tmp_path / "noframes.wav", np.zeros(0, np.int16), 16000)
    assert _reason(tmp_path / "zero.wav") == "empty_audio"
    assert _reason(tmp_path / "junk.wav") == "unreadable"
    assert _reason(tmp_path / "header.wav") == "unreadable"
    assert _reason(tmp_path / "noframes.wav") == "empty_audio"


def test_shorten_sphere_says_how_to_convert(tmp_path):
    header = (
        b"NIST_1A\n   1024\nchannel_count -i 1\nsample_rate -i 16000\nsample_n_bytes -i 2\n"
        b"sample_coding -s26 pcm,embedded-shorten-v2.00\nsample_count -i 32000\nend_head\n"
    ).ljust(1024, b" ")
    (tmp_path / "shn.wav").write_bytes(header + bytes(range(256)) * 40)
    with pytest.raises(AudioError) as e:
        load_audio(tmp_path / "shn.wav")
    assert e.value.reason == "unsupported_encoding"
    assert "shorten" in e.value.detail and "sph2pipe" in e.value.detail


def test_not_a_file(tmp_path):
    (tmp_path / "dir.wav").mkdir()
    os.symlink(tmp_path / "nowhere.wav", tmp_path / "dangling.wav")
    os.symlink(tmp_path / "loop_b.wav", tmp_path / "loop_a.wav")
    os.symlink(tmp_path / "loop_a.wav", tmp_path / "loop_b.wav")
    assert _reason(tmp_path / "dir.wav") == "not_a_file"
    assert _reason(tmp_path / "dangling.wav") == "not_a_file"
    assert _reason(tmp_path / "loop_a.wav") == "symlink_loop"
    assert _reason(tmp_path / "absent.wav") == "missing_audio"


def test_resampling_is_deterministic(tmp_path):
    x = np.random.default_rng(3).normal(0, 0.2, (44100, 2)).astype(np.float32)
    sf.write(tmp_path / "a.wav", x, 44100, subtype="PCM_16")
    np.testing.assert_array_equal(load_audio(tmp_path / "a.wav"), load_audio(tmp_path / "a.wav"))
