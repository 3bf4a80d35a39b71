"""espeak phoneme events -> TIMIT 61-phone segments."""
from ds_w2v.synth.espeak import get_espeak
from ds_w2v.synth.phones import ESPEAK_TO_TIMIT, TIMIT_PHONES, map_phoneme, phone_segments, word_segments
from ds_w2v.synth.grammar import words_of


def test_table_only_targets_the_61_set():
    assert len(TIMIT_PHONES) == 61
    for name, labels in ESPEAK_TO_TIMIT.items():
        assert set(labels) <= TIMIT_PHONES, name
    assert map_phoneme("'aI") == ("ay",)  # stress marks ignored
    assert map_phoneme("_:") == ("pau",)
    assert set(map_phoneme("unknown!")) <= TIMIT_PHONES


def _segments(text, voice="en-us+m1"):
    e = get_espeak()
    e.set_voice(voice)
    e.set_params()
    u = e.synth(text)
    total_ms = 1000 * u.duration_s
    rate, offset = 16000, 800
    phones = phone_segments(u.events, total_ms, rate, offset)
    words = word_segments(u.events, words_of(text), text, total_ms, rate, offset)
    return phones, words, offset + round(total_ms * rate / 1000)


def test_phone_segments_contiguous_h_sharp_bounded_with_closures():
    for voice in ("en-us+m1", "en-GB-scotland+f2", "en-029+m5"):
        phones, _, end = _segments("She had your dark suit in greasy wash water all year.", voice)
        assert phones[0].label == "h#" and phones[-1].label == "h#"
        assert phones[0].start == 0 and phones[-1].end == end
        assert all(a.end == b.start for a, b in zip(phones, phones[1:]))
        assert all(p.end > p.start for p in phones[1:-1])
        labels = [p.label for p in phones]
        assert set(labels) <= TIMIT_PHONES
        assert labels[1:3] == ["sh", "iy"]
        k = labels.index("k")  # "dark": release preceded by its closure
        assert labels[k - 1] == "kcl"


def test_word_segments_follow_the_transcript_in_order():
    text = "Don't ask me to carry an oily rag like that."
    phones, words, end = _segments(text)
    assert [w.label for w in words] == words_of(text)
    assert all(w.start < w.end for w in words)
    assert all(a.end <= b.start for a, b in zip(words, words[1:]))
    assert words[0].start >= phones[0].end and words[-1].end <= phones[-1].start
