"""Synthetic RAVDESS: real names and counts, 48 kHz audio, emotions differ in prosody."""
import collections
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ds_w2v.synth.ravdess import (EMOTIONS, NUM_ACTORS, STATEMENTS, RavdessConfig, build_ravdess, clip_keys,
                                  file_name, parse_name, plan_actors, ssml, STYLES)
from ds_w2v.synth.voices import variants
from ds_w2v.synth.espeak import get_espeak

ACTORS = [1, 2]  # one male, one female: 120 clips, ~2 s to build


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ravdess") / "a"
    report = build_ravdess(RavdessConfig(out, seed=5, workers=2, actors=ACTORS))
    assert report.num_files == 60 * len(ACTORS)
    return out


def test_full_plan_has_ravdess_names_and_counts():
    names = [file_name(*key, actor) for actor in range(1, NUM_ACTORS + 1) for key in clip_keys(actor)]
    assert len(names) == len(set(names)) == 1440
    fields = [parse_name(n) for n in names]
    assert {(f["modality"], f["channel"]) for f in fields} == {(3, 1)}
    per_emotion = collections.Counter(f["emotion"] for f in fields)
    assert per_emotion == {1: 96, **{e: 192 for e in range(2, 9)}}
    per_intensity = collections.Counter((f["emotion"] == 1, f["intensity"]) for f in fields)
    assert per_intensity == {(True, 1): 96, (False, 1): 672, (False, 2): 672}  # no strong neutral
    assert collections.Counter(f["statement"] for f in fields) == {1: 720, 2: 720}
    assert collections.Counter(f["repetition"] for f in fields) == {1: 720, 2: 720}
    assert collections.Counter(f["actor"] for f in fields) == {a: 60 for a in range(1, 25)}
    assert file_name(5, 2, 1, 2, 7) == "03-01-05-02-01-02-07.wav"


def test_actors_distinct_voices_odd_male_even_female():
    actors = plan_actors(seed=0)
    assert [a.number for a in actors] == list(range(1, 25))
    assert len({a.voice for a in actors}) == 24
    e = get_espeak()
    male, female = set(variants(e, "M")), set(variants(e, "F"))
    for a in actors:
        assert a.voice.split("+")[1] in (male if a.number % 2 else female)


def test_files_layout_and_format(corpus):
    assert sorted(p.name for p in corpus.iterdir()) == ["Actor_01", "Actor_02"]
    for actor in ACTORS:
        files = sorted((corpus / f"Actor_{actor:02d}").glob("*.wav"))
        assert [f.name for f in files] == sorted(file_name(*k, actor) for k in clip_keys(actor))
        for f in files[:10]:
            info = sf.info(f)
            assert (info.samplerate, info.channels, info.subtype, info.format) == (48000, 1, "PCM_16", "WAV")
            assert 1.5 < info.duration < 8.0


def test_repetitions_differ_slightly(corpus):
    for actor in ACTORS:
        for e, i, s, r in clip_keys(actor):
            if r == 2:
                continue
            a, _ = sf.read(corpus / f"Actor_{actor:02d}" / file_name(e, i, s, 1, actor), dtype="float32")
            b, _ = sf.read(corpus / f"Actor_{actor:02d}" / file_name(e, i, s, 2, actor), dtype="float32")
            assert len(a) != len(b) or not np.array_equal(a, b)
            da, db = _speech(a).size, _speech(b).size
            assert abs(da - db) / max(da, db) < 0.25  # same delivery, small jitter


def _speech(x: np.ndarray) -> np.ndarray:
    active = np.flatnonzero(np.abs(x) > 0.02)
    return x[active[0]:active[-1]]


def _f0(x: np.ndarray, sr: int = 48000) -> float:
    """Median F0 (Hz) of the loudest 40 ms frames, by autocorrelation (60-400 Hz)."""
    x, sr = x[::3], sr // 3
    n = int(0.04 * sr)
    frames = [x[i:i + n] - x[i:i + n].mean() for i in range(0, len(x) - n, n // 2)]
    energy = np.array([np.sum(f * f) for f in frames])
    out = []
    for f in (f for f, en in zip(frames, energy) if en > 0.3 * energy.max()):
        ac = np.correlate(f, f, "full")[n - 1:]
        lo, hi = sr // 400, sr // 60
        out.append(sr / (lo + int(np.argmax(ac[lo:hi]))))
    return float(np.median(out))


def test_emotions_differ_in_measurable_prosody(corpus):
    for actor in ACTORS:
        stats = collections.defaultdict(list)
        for f in (corpus / f"Actor_{actor:02d}").glob("*.wav"):
            key = parse_name(f.name)
            x = _speech(sf.read(f, dtype="float32")[0])
            stats[EMOTIONS[key["emotion"]]].append((len(x) / 48000, float(np.sqrt(np.mean(x * x))), _f0(x)))
        m = {e: np.mean(v, axis=0) for e, v in stats.items()}  # (duration_s, rms, f0_hz)
        dur, rms, f0 = ({e: v[k] for e, v in m.items()} for k in range(3))
        assert dur["sad"] > 1.2 * dur["neutral"] and dur["sad"] > 1.2 * dur["happy"]
        assert rms["angry"] > 1.5 * rms["sad"] and rms["angry"] > rms["neutral"]
        assert f0["fearful"] > 1.1 * f0["sad"] and f0["surprised"] > 1.1 * f0["sad"]
        assert f0["happy"] > f0["neutral"]


def test_strong_is_further_from_neutral_than_normal(corpus):
    def duration(actor, emotion, intensity):
        return np.mean([_speech(sf.read(corpus / f"Actor_{actor:02d}" / file_name(emotion, intensity, s, r, actor),
                                        dtype="float32")[0]).size for s in STATEMENTS for r in (1, 2)])
    for actor in ACTORS:
        assert duration(actor, 4, 2) > duration(actor, 4, 1)  # strong sadness is slower still


def test_ssml_carries_the_style():
    assert ssml("Kids are talking by the door", STYLES[1]) == "<speak>Kids are talking by the door.</speak>"
    angry = ssml("Kids are talking by the door", STYLES[5])
    assert "<emphasis>door</emphasis>!" in angry
    assert '<break time="250ms"/>' in ssml("Dogs are sitting by the door", STYLES[7])
    assert ssml("Dogs are sitting by the door", STYLES[8]).endswith("door?</speak>")


def test_same_seed_same_bytes(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    build_ravdess(RavdessConfig(a, seed=2, workers=1, actors=[3], emotions=[1, 5]))
    build_ravdess(RavdessConfig(b, seed=2, workers=2, actors=[3], emotions=[1, 5]))
    files = sorted(p.relative_to(a) for p in a.rglob("*.wav"))
    assert len(files) == 12
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)


def test_config_validation():
    with pytest.raises(ValueError, match="actors"):
        RavdessConfig("/x", actors=[0, 25])
    with pytest.raises(ValueError, match="emotions"):
        RavdessConfig("/x", emotions=[9])


def test_project_ravdess_reader_accepts_it(corpus):
    """The real-layout reader (ds_w2v.data.sources.ravdess) parses every name and label."""
    reader = pytest.importorskip("ds_w2v.data.sources.ravdess")
    scan = reader.scan(corpus)
    assert not scan.rejects and len(scan.utterances) == 120
    assert collections.Counter(u.label for u in scan.utterances) == {
        "neutral": 8, **{e: 16 for e in EMOTIONS.values() if e != "neutral"}}
