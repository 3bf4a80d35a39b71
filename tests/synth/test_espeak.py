"""The ctypes binding: libespeak-ng from the espeakng-loader wheel, synchronous mode."""
import numpy as np

from ds_w2v.synth.espeak import get_espeak
from ds_w2v.synth.voices import english_accents, variants


def test_synth_returns_int16_audio_with_word_and_phoneme_events():
    e = get_espeak()
    assert e.sample_rate == 22050
    e.set_voice("en-us+m3")
    e.set_params(rate=175)
    u = e.synth("Kids are talking by the door.")
    assert u.samples.dtype == np.int16 and 1.0 < u.duration_s < 4.0
    assert np.abs(u.samples).max() > 1000  # real speech, not silence
    words = [ev for ev in u.events if ev.kind == "word"]
    assert [ev.text_position for ev in words] == [1, 6, 10, 18, 21, 25]  # 1-based char offsets
    phonemes = [ev for ev in u.events if ev.kind == "phoneme"]
    assert len(phonemes) > 15
    assert all(a.ms <= b.ms for a, b in zip(phonemes, phonemes[1:]))
    assert phonemes[-1].ms <= 1000 * u.duration_s


def test_rate_parameter_changes_duration_and_seed_fixes_noise():
    e = get_espeak()
    e.set_voice("en-us+f2")  # a breathy variant: espeak's own noise generator is used
    e.set_params(rate=120)
    slow = e.synth("The farmer sold a warm loaf.", seed=5)
    e.set_params(rate=300)
    fast = e.synth("The farmer sold a warm loaf.", seed=5)
    assert slow.duration_s > 1.6 * fast.duration_s


def test_voices_enumerated_from_shipped_data():
    e = get_espeak()
    accents = english_accents(e)
    assert {"en-US", "en", "en-GB-scotland", "en-029"} <= set(accents)
    assert "en-Shaw" not in accents  # Shavian script voice is excluded
    male, female = variants(e, "M"), variants(e, "F")
    assert {"m1", "m3"} <= set(male) and {"f1", "f5"} <= set(female)
    assert len(female) >= 12 and len(male) >= 12  # enough for 24 distinct RAVDESS actors
    assert not any("robo" in v.lower() or "whisper" in v.lower() for v in male + female)


def test_text_to_phonemes():
    e = get_espeak()
    e.set_voice("en-us")
    first, second = e.phonemes("she had").split()
    assert first == "Si:" and second.replace(",", "").replace("'", "") == "had"  # stress marks vary
