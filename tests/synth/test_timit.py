"""Synthetic TIMIT: real layout, SPHERE audio, transcripts/alignments, splits, determinism."""
import collections
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ds_w2v.synth.grammar import SA_SENTENCES, words_of
from ds_w2v.synth.phones import TIMIT_PHONES
from ds_w2v.synth.timit import (CORE_TEST_SPEAKERS, SX_READERS, TimitConfig, build_timit, plan_speakers,
                                plan_utterances, speakers_for_hours)

SPEAKER_RE = re.compile(r"[MF][A-Z]{3}[0-9]")
UTT_RE = re.compile(r"SA[12]|SX[0-9]+|SI[0-9]+")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("timit") / "a"
    report = build_timit(TimitConfig(out, num_speakers=26, sentences_per_speaker=4, seed=11, workers=2))
    assert report.num_files == 26 * 4
    assert 26 * 4 * 1.5 < report.audio_s < 26 * 4 * 6
    return out


def _utterances(root: Path):
    for wav in sorted(root.glob("*/DR*/*/*.WAV")):
        yield wav.parent.parent.parent.name, wav.parent.parent.name, wav.parent.name, wav


def test_layout_and_names(corpus):
    assert sorted(p.name for p in corpus.iterdir()) == ["DOC", "TEST", "TRAIN"]
    speakers = collections.defaultdict(set)
    for split, region, speaker, wav in _utterances(corpus):
        assert re.fullmatch(r"DR[1-8]", region) and SPEAKER_RE.fullmatch(speaker)
        assert UTT_RE.fullmatch(wav.stem)
        assert {p.suffix for p in wav.parent.glob(wav.stem + ".*")} == {".WAV", ".TXT", ".WRD", ".PHN"}
        speakers[split].add((region, speaker))
    core = {(dr, spk) for dr, ids in CORE_TEST_SPEAKERS.items() for spk in ids}
    assert len(core) == 24 and core <= speakers["TEST"]
    assert len(speakers["TRAIN"]) == 2
    train_ids = {s for _, s in speakers["TRAIN"]}
    assert not train_ids & {s for _, s in speakers["TEST"]}  # no test speaker in training
    for d in corpus.glob("*/DR*/*"):
        assert sorted(p.stem for p in d.glob("*.WAV"))[:2] == ["SA1", "SA2"]
        assert any(p.stem.startswith("SX") for p in d.glob("*.WAV"))
        assert any(p.stem.startswith("SI") for p in d.glob("*.WAV"))


def test_sphere_audio_and_transcripts(corpus):
    for split, region, speaker, wav in _utterances(corpus):
        assert wav.read_bytes()[:8] == b"NIST_1A\n"
        info = sf.info(wav)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        x, _ = sf.read(wav, dtype="int16")
        assert np.abs(x).max() > 2000  # speech, not silence
        start, end, text = wav.with_suffix(".TXT").read_text().rstrip("\n").split(" ", 2)
        assert (int(start), int(end)) == (0, len(x))
        assert text[0].isupper() and text[-1] in ".?!"
        if wav.stem.startswith("SA"):
            assert text == SA_SENTENCES[int(wav.stem[2]) - 1]
        wrd = [line.split() for line in wav.with_suffix(".WRD").read_text().splitlines()]
        assert [w for _, _, w in wrd] == words_of(text)
        bounds = [(int(a), int(b)) for a, b, _ in wrd]
        assert all(0 <= a < b <= len(x) for a, b in bounds)
        assert all(b1 <= a2 for (_, b1), (a2, _) in zip(bounds, bounds[1:]))
        phn = [line.split() for line in wav.with_suffix(".PHN").read_text().splitlines()]
        assert phn[0][2] == "h#" and phn[-1][2] == "h#"
        assert int(phn[0][0]) == 0 and int(phn[-1][1]) == len(x)
        assert all(int(a[1]) == int(b[0]) for a, b in zip(phn, phn[1:]))
        assert {p for _, _, p in phn} <= TIMIT_PHONES
        # every word lies inside the speech, between the two h# segments
        assert bounds[0][0] >= int(phn[0][1]) and bounds[-1][1] <= int(phn[-1][0])


def test_test_sentences_never_in_training(corpus):
    texts = collections.defaultdict(set)
    ids = collections.defaultdict(set)
    for split, _, _, wav in _utterances(corpus):
        if not wav.stem.startswith("SA"):
            texts[split].add(wav.with_suffix(".TXT").read_text().split(" ", 2)[2].strip())
            ids[split].add(wav.stem)
    assert texts["TRAIN"] and texts["TEST"]
    assert not texts["TRAIN"] & texts["TEST"]
    assert not ids["TRAIN"] & ids["TEST"]


def test_same_seed_same_bytes_whatever_the_workers(corpus):
    again = corpus.parent / "b"
    build_timit(TimitConfig(again, num_speakers=26, sentences_per_speaker=4, seed=11, workers=1))
    files = sorted(p.relative_to(corpus) for p in corpus.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        assert (corpus / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_default_size_plan_is_timit_like():
    """The ~2 h default corpus, planned only (no audio): splits, SX sharing, SI uniqueness."""
    cfg = TimitConfig("/nonexistent", num_speakers=speakers_for_hours(2.0), seed=0)
    assert 200 <= cfg.num_speakers <= 240 and cfg.num_test_speakers >= 24
    assert (cfg.num_sx, cfg.num_si) == (5, 3)  # TIMIT: 2 SA + 5 SX + 3 SI
    speakers = plan_speakers(cfg)
    assert len({s.id for s in speakers}) == len(speakers)
    assert len({s.voice for s in speakers}) == len(speakers)  # every speaker sounds different
    assert 0.55 < sum(s.sex == "M" for s in speakers) / len(speakers) < 0.85
    utts = plan_utterances(cfg, speakers)
    assert len(utts) == 10 * len(speakers)
    by_name = collections.defaultdict(set)
    readers = collections.Counter()
    split_of = collections.defaultdict(set)
    for u in utts:
        by_name[u.name].add(u.text)
        readers[u.name] += 1
        split_of[u.text].add(u.speaker.split)
    assert all(len(t) == 1 for t in by_name.values())  # one id, one sentence
    assert all(n <= SX_READERS for name, n in readers.items() if name.startswith("SX"))
    assert all(n == 1 for name, n in readers.items() if name.startswith("SI"))
    assert all(len(s) == 1 for t, s in split_of.items() if t not in SA_SENTENCES)
    per_speaker = collections.defaultdict(list)
    for u in utts:
        per_speaker[u.speaker.id].append(u.text)
    assert all(len(set(t)) == len(t) for t in per_speaker.values())


def test_config_validation():
    with pytest.raises(ValueError, match="num_speakers"):
        TimitConfig("/x", num_speakers=24)
    with pytest.raises(ValueError, match="sentences_per_speaker"):
        TimitConfig("/x", sentences_per_speaker=2)


def test_project_timit_reader_accepts_it(corpus):
    """The real-layout reader (ds_w2v.data.sources.timit) reads the corpus without a reject."""
    reader = pytest.importorskip("ds_w2v.data.sources.timit")
    scan = reader.scan(corpus)
    assert not scan.rejects
    test = {u.speaker for u in scan.utterances if u.split == "test"}
    assert len(test) == 24  # the core test set, recognised by its real speaker ids
    assert all(u.phones for u in scan.utterances)
