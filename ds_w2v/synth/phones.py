"""espeak phoneme events -> TIMIT ``.PHN`` / ``.WRD`` segments.

Why events and not ``espeak_TextToPhonemes``: the synth callback reports, for every phoneme it
speaks, the millisecond at which it starts, so the segment times come from the synthesiser
itself rather than from a guess proportional to characters. ``espeak_TextToPhonemes`` gives the
same symbols without times; it is kept in :mod:`ds_w2v.synth.espeak` for inspection.

The table maps espeak's ASCII English phoneme mnemonics (all accents it ships: en-us, en-gb,
Scotland, RP, Caribbean, Lancaster, West Midlands, NYC) onto the TIMIT 61-phone set. TIMIT
writes a stop as closure + release (``tcl t``), so stops and affricates become two segments,
the closure taking :data:`CLOSURE_FRACTION` of the stop's duration. Pauses are ``pau`` inside an
utterance and ``h#`` at both ends, as in TIMIT.
"""
from __future__ import annotations

from dataclasses import dataclass

from ds_w2v.synth.espeak import Event

# The 61 TIMIT phone labels (TIMIT phoncode.doc): 60 phones + h# (begin/end silence).
TIMIT_PHONES = frozenset("""
    b d g p t k dx q jh ch s sh z zh f th v dh m n ng em en eng nx l r w y hh hv el
    iy ih eh ey ae aa aw ay ah ao oy ow uh uw ux er ax ix axr ax-h
    bcl dcl gcl pcl tcl kcl pau epi h#
""".split())
assert len(TIMIT_PHONES) == 61

# A stop's closure share of its duration (TIMIT closures are typically ~60 % of the stop).
CLOSURE_FRACTION = 0.6

_CLOSURE = {"p": "pcl", "b": "bcl", "t": "tcl", "d": "dcl", "k": "kcl", "g": "gcl", "ch": "tcl", "jh": "dcl"}

# espeak English mnemonic (stress marks removed) -> TIMIT labels. "" entries are modifiers
# whose duration is merged into the previous segment (";" palatalisation, linking "r-").
ESPEAK_TO_TIMIT: dict[str, tuple[str, ...]] = {
    # vowels
    "@": ("ax",), "@2": ("ax",), "@5": ("ax",), "@-": ("ax",), "a#": ("ax",), "@L": ("el",),
    "3": ("axr",), "3:": ("er",), "VR": ("er",), "IR": ("ih", "r"),
    "a": ("ae",), "aa": ("ae",), "a2": ("ae",), "A:": ("aa",), "A@": ("aa", "r"), "A#": ("aa",),
    "0": ("aa",), "02": ("ao",), "0#": ("aa",), "V": ("ah",),
    "E": ("eh",), "E2": ("eh",), "E3": ("eh",), "e": ("eh",), "e@": ("eh", "r"), "eI": ("ey",),
    "I": ("ih",), "I2": ("ix",), "I#": ("ix",), "i": ("iy",), "i:": ("iy",), "i@": ("ih", "r"),
    "i@3": ("ih", "axr"),
    "O": ("ao",), "O:": ("ao",), "O2": ("ao",), "O@": ("ao", "r"), "o@": ("ao", "r"), "OI": ("oy",),
    "oU": ("ow",), "@U": ("ow",), "o": ("ow",),
    "U": ("uh",), "U@": ("uh", "r"), "u:": ("uw",), "u@": ("uw", "ax"), "u": ("uw",),
    "aI": ("ay",), "aI2": ("ay",), "aI@": ("ay", "ax"), "aI3": ("ay", "axr"), "aU": ("aw",),
    "aU@": ("aw", "ax"),
    # consonants
    "p": ("p",), "b": ("b",), "t": ("t",), "t2": ("t",), "t[": ("t",), "d": ("d",), "d[": ("d",),
    "k": ("k",), "g": ("g",), "t#": ("dx",), "*": ("dx",), "d#": ("dx",), "?": ("q",),
    "tS": ("ch",), "dZ": ("jh",),
    "f": ("f",), "v": ("v",), "T": ("th",), "D": ("dh",), "s": ("s",), "z": ("z",), "z#": ("z",),
    "S": ("sh",), "Z": ("zh",), "h": ("hh",), "x": ("hh",), "C": ("hh",),
    "m": ("m",), "n": ("n",), "N": ("ng",), "n-": ("en",), "m-": ("em",), "l-": ("el",),
    "l": ("l",), "l/": ("l",), "r": ("r",), "R": ("r",), "r-": (), "w": ("w",), "w#": ("w",),
    "W": ("w",), "j": ("y",),
    ";": (),
}


@dataclass(frozen=True)
class Segment:
    """``[start, end)`` in samples with a label (a TIMIT phone, or a word)."""

    start: int
    end: int
    label: str


def _is_pause(name: str) -> bool:
    return name.startswith("_") or name in ("||", "|")


def map_phoneme(name: str) -> tuple[str, ...]:
    """TIMIT labels for one espeak mnemonic; unknown vowels/consonants fall back by prefix."""
    name = name.lstrip("',%=")
    if _is_pause(name):
        return ("pau",)
    if name in ESPEAK_TO_TIMIT:
        return ESPEAK_TO_TIMIT[name]
    for cut in range(len(name) - 1, 0, -1):  # e.g. "aI3" style variants -> "aI"
        if name[:cut] in ESPEAK_TO_TIMIT:
            return ESPEAK_TO_TIMIT[name[:cut]]
    return ("ax",)  # a reduced vowel is the least wrong guess for an unknown symbol


def _to_samples(ms: float, rate: int) -> int:
    return int(round(ms * rate / 1000.0))


def phone_segments(events: list[Event], total_ms: float, rate: int, offset: int) -> list[Segment]:
    """TIMIT phone segments (h# ... h#) covering ``[0, offset + total_ms)`` at ``rate`` Hz,
    contiguous (each starts where the previous ends).

    ``offset`` is leading padding in samples added before the synthesised audio; it and any
    initial/final silence become ``h#``.
    """
    phon = [e for e in events if e.kind == "phoneme"]
    raw: list[tuple[float, float, str]] = []  # (start_ms, end_ms, timit) before merging
    for i, e in enumerate(phon):
        end_ms = phon[i + 1].ms if i + 1 < len(phon) else total_ms
        labels = map_phoneme(e.phoneme)
        if end_ms <= e.ms:
            continue
        if not labels:  # modifier: extend the previous segment
            if raw:
                raw[-1] = (raw[-1][0], end_ms, raw[-1][2])
            continue
        if len(labels) == 1 and labels[0] in _CLOSURE:
            split = e.ms + CLOSURE_FRACTION * (end_ms - e.ms)
            raw += [(e.ms, split, _CLOSURE[labels[0]]), (split, end_ms, labels[0])]
        else:
            step = (end_ms - e.ms) / len(labels)
            raw += [(e.ms + k * step, e.ms + (k + 1) * step, lab) for k, lab in enumerate(labels)]
    # leading/trailing pauses are h#; neighbouring pauses merge
    while raw and raw[0][2] == "pau":
        raw.pop(0)
    while raw and raw[-1][2] == "pau":
        raw.pop()
    end_total = offset + _to_samples(total_ms, rate)
    segments = []
    first = offset + _to_samples(raw[0][0], rate) if raw else end_total
    segments.append(Segment(0, first, "h#"))
    for start_ms, end_ms, label in raw:
        start, end = offset + _to_samples(start_ms, rate), offset + _to_samples(end_ms, rate)
        if end <= start:
            continue
        if segments and segments[-1].label == label == "pau":
            segments[-1] = Segment(segments[-1].start, end, "pau")
        else:
            segments.append(Segment(segments[-1].end, end, label))  # contiguous, no gaps
    segments.append(Segment(segments[-1].end, max(end_total, segments[-1].end), "h#"))
    return segments


def word_segments(events: list[Event], words: list[str], text: str, total_ms: float, rate: int,
                  offset: int) -> list[Segment]:
    """One segment per word of ``words`` (the transcript's words in order), in samples.

    espeak emits a word event (1-based character position) followed by that word's phonemes;
    a word spans from its first to its last non-pause phoneme. espeak sometimes speaks a pair
    of function words as one ("there was", "in the") with a single event: the pair's span is
    then split between its words in proportion to their letters.
    """
    low = text.lower()
    spans, pos = [], 0
    for w in words:  # character span of each transcript word in ``text``
        at = low.find(w, pos)
        spans.append((at, at + len(w)))
        pos = at + len(w)
    times: list[list[float]] = [[] for _ in words]
    phon = [e for e in events if e.kind in ("phoneme", "word")]
    current = -1
    for i, e in enumerate(phon):
        if e.kind == "word":
            char = e.text_position - 1
            current = next((k for k, (a, b) in enumerate(spans) if a <= char < b), current)
            continue
        name = e.phoneme.lstrip("',%=")
        if current < 0 or _is_pause(name) or not map_phoneme(name):
            continue
        nxt = next((p.ms for p in phon[i + 1:] if p.kind == "phoneme"), total_ms)
        times[current] += [e.ms, nxt]
    timed = [k for k in range(len(words)) if times[k]]
    if not timed:  # no usable events: spread the words over the whole utterance
        timed, times[0] = [0], [0.0, total_ms]
    # groups: a timed word and the untimed words that follow it (words before the first
    # timed one join the first group)
    bounds = timed + [len(words)]
    groups = [(0 if g == 0 else bounds[g], bounds[g + 1], times[bounds[g]]) for g in range(len(timed))]
    out: list[Segment] = []
    prev_end = 0.0
    for first, stop, t in groups:
        start_ms, end_ms = max(min(t), prev_end), max(t)
        letters = [len(words[k]) + 1 for k in range(first, stop)]
        acc = 0
        for k, n in zip(range(first, stop), letters):
            a = start_ms + (end_ms - start_ms) * acc / sum(letters)
            acc += n
            b = start_ms + (end_ms - start_ms) * acc / sum(letters)
            out.append(Segment(offset + _to_samples(a, rate), offset + _to_samples(b, rate), words[k]))
        prev_end = end_ms
    return out
