"""A minimal ctypes binding to libespeak-ng, as shipped by the ``espeakng-loader`` wheel.

Why ctypes and not the ``espeak-ng`` binary: the demo corpora must build offline from PyPI
alone (no apt), and calling the library in-process is ~500x real time where a subprocess per
utterance would spend most of its time starting up.

libespeak-ng holds global state (one voice, one set of parameters, one callback) and is not
thread-safe, so there is one :class:`Espeak` per *process*: :func:`get_espeak` initialises it
lazily, and a multiprocessing worker calls it itself (a forked copy of an initialised parent
is never relied on).

Units, as the library uses them:
    rate       words per minute, 80..450 (175 default)
    pitch      0..100, base pitch relative to the voice's own (50 default)
    range      0..100, pitch excursion (50 default; 0 = monotone)
    volume     0..200, amplitude in percent (100 default)
    word gap   extra pause between words in units of 10 ms at the default rate
    audio_position of an event: milliseconds from the start of the utterance
"""
from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass

import numpy as np

# espeak_AUDIO_OUTPUT: synchronous mode returns only when the whole text is synthesised and
# hands every chunk of samples to the callback (no audio device, no background thread).
AUDIO_OUTPUT_SYNCHRONOUS = 2
# espeak_Initialize options: bit 0 asks for one event per phoneme (used for .PHN timings).
INITIALIZE_PHONEME_EVENTS = 0x0001
INITIALIZE_DONT_EXIT = 0x8000  # report errors instead of calling exit()

# espeak_Synth flags
CHARS_UTF8 = 1
SSML = 0x10
ENDPAUSE = 0x1000

# espeak_PARAMETER
PARAM_RATE = 1
PARAM_VOLUME = 2
PARAM_PITCH = 3
PARAM_RANGE = 4
PARAM_WORDGAP = 7

# espeak_EVENT_TYPE
EVENT_LIST_TERMINATED = 0
EVENT_WORD = 1
EVENT_SENTENCE = 2
EVENT_END = 5
EVENT_MSG_TERMINATED = 6
EVENT_PHONEME = 7

# voice gender codes in espeak_VOICE.gender
GENDER_MALE = 1
GENDER_FEMALE = 2


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based character offset of the word in the text
        ("length", ctypes.c_int),  # characters of the word
        ("audio_position", ctypes.c_int),  # milliseconds from the utterance start
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_char_p),  # (priority byte)(name)\0 ...; see _languages
        ("identifier", ctypes.c_char_p),  # path under voices/ (e.g. "gmw/en-US", "!v/f3")
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class VoiceInfo:
    """One entry of ``espeak_ListVoices``: ``name`` is what ``SetVoiceByName`` accepts."""

    name: str
    identifier: str
    languages: tuple[str, ...]  # the primary language code, e.g. ("en-us",)
    gender: int  # 0 unknown, 1 male, 2 female


@dataclass(frozen=True)
class Event:
    """A word or phoneme event; ``ms`` is its start in milliseconds from the utterance start."""

    kind: str  # "word" | "phoneme"
    ms: int
    text_position: int  # words: 1-based character offset into the synthesised text
    length: int  # words: number of characters
    phoneme: str  # phonemes: espeak's ASCII mnemonic (e.g. "tS", "oU", "_:")


@dataclass
class Utterance:
    """Synthesised audio at ``sample_rate`` Hz, int16 mono, with its word/phoneme events."""

    samples: np.ndarray
    sample_rate: int
    events: list[Event]

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


def _languages(raw: bytes | None) -> tuple[str, ...]:
    # espeak stores (priority byte)(name)\0 repeated; read as a C string, only the first
    # (primary) language survives the first NUL, which is all that voice selection needs.
    return (raw[1:].decode("ascii", "replace"),) if raw and len(raw) > 1 else ()


class Espeak:
    """libespeak-ng in synchronous mode with a callback that collects int16 samples."""

    def __init__(self, library_path: str | None = None, data_path: str | None = None):
        if library_path is None or data_path is None:
            import espeakng_loader

            library_path = library_path or espeakng_loader.get_library_path()
            data_path = data_path or espeakng_loader.get_data_path()
        self._lib = lib = ctypes.CDLL(library_path)
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_ListVoices.argtypes = [ctypes.POINTER(_Voice)]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed.restype = None

        # the wheel's data path is the espeak-ng-data folder itself (phontab, voices/, ...)
        rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, os.fsencode(data_path),
                                     INITIALIZE_PHONEME_EVENTS | INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed (data path {data_path})")
        self.sample_rate = rate  # 22050 Hz for the shipped voices
        self._chunks: list[np.ndarray] = []
        self._events: list[Event] = []
        self._callback = _SYNTH_CALLBACK(self._on_synth)  # kept alive: the library holds the pointer
        lib.espeak_SetSynthCallback(self._callback)
        self._voice: str | None = None
        self.set_voice("en-us")  # TextToPhonemes crashes before any voice is selected

    # -- callback -------------------------------------------------------------------------
    def _on_synth(self, wav, num_samples, events) -> int:
        if num_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
        i = 0
        while events[i].type != EVENT_LIST_TERMINATED:
            e = events[i]
            if e.type == EVENT_WORD:
                self._events.append(Event("word", e.audio_position, e.text_position, e.length, ""))
            elif e.type == EVENT_PHONEME:
                name = e.id.string.decode("ascii", "replace")
                self._events.append(Event("phoneme", e.audio_position, 0, 0, name))
            i += 1
        return 0  # 0 = continue synthesis

    # -- voices and parameters ------------------------------------------------------------
    def list_voices(self, variants: bool = False) -> list[VoiceInfo]:
        """Voices (``variants=False``) or voice variants such as ``m3``/``f2`` (``True``)."""
        spec = None
        if variants:
            self._variant_spec = _Voice(name=None, languages=b"variant", identifier=None)
            spec = ctypes.pointer(self._variant_spec)
        arr = self._lib.espeak_ListVoices(spec)
        out = []
        i = 0
        while arr[i]:
            v = arr[i].contents
            out.append(VoiceInfo((v.name or b"").decode(), (v.identifier or b"").decode(),
                                 _languages(v.languages), int(v.gender)))
            i += 1
        return out

    def set_voice(self, name: str) -> None:
        """Select ``"en-us"`` or ``"en-us+f3"`` (language + variant); resets rate/pitch/etc."""
        if name != self._voice:
            if self._lib.espeak_SetVoiceByName(name.encode()) != 0:
                raise ValueError(f"espeak: unknown voice {name!r}")
            self._voice = name

    def set_params(self, rate: int = 175, pitch: int = 50, pitch_range: int = 50, volume: int = 100,
                   word_gap: int = 0) -> None:
        """Set prosody for following syntheses (units in the module docstring)."""
        for param, value in ((PARAM_RATE, rate), (PARAM_PITCH, pitch), (PARAM_RANGE, pitch_range),
                             (PARAM_VOLUME, volume), (PARAM_WORDGAP, word_gap)):
            self._lib.espeak_SetParameter(param, int(value), 0)

    # -- synthesis ------------------------------------------------------------------------
    def synth(self, text: str, ssml: bool = False, seed: int = 0) -> Utterance:
        """Synthesise ``text`` (UTF-8; SSML if ``ssml``) and return int16 samples + events.

        ``seed`` seeds espeak's own noise generator (breathy voices such as ``f2``), which is
        otherwise seeded from the clock.
        """
        self._chunks, self._events = [], []
        self._lib.espeak_ng_SetRandSeed(seed)
        data = text.encode("utf-8") + b"\0"
        buf = ctypes.create_string_buffer(data, len(data))
        flags = CHARS_UTF8 | ENDPAUSE | (SSML if ssml else 0)
        err = self._lib.espeak_Synth(buf, len(data), 0, 1, 0, flags, None, None)
        if err != 0:
            raise RuntimeError(f"espeak_Synth failed with error {err} on {text!r}")
        self._lib.espeak_Synchronize()
        samples = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return Utterance(samples.astype(np.int16, copy=False), self.sample_rate, self._events)

    def phonemes(self, text: str) -> str:
        """espeak's ASCII phoneme string of ``text`` (words separated by spaces)."""
        data = ctypes.create_string_buffer(text.encode("utf-8") + b"\0")
        ptr = ctypes.c_void_p(ctypes.addressof(data))
        parts = []
        while ptr.value:
            res = self._lib.espeak_TextToPhonemes(ctypes.byref(ptr), CHARS_UTF8, 0)
            if res:
                parts.append(res.decode("utf-8", "replace"))
        return " ".join(p.strip() for p in parts if p.strip())


_INSTANCE: tuple[int, Espeak] | None = None


def get_espeak() -> Espeak:
    """The process's :class:`Espeak`, initialised on first use (and again after a fork)."""
    global _INSTANCE
    if _INSTANCE is None or _INSTANCE[0] != os.getpid():
        _INSTANCE = (os.getpid(), Espeak())
    return _INSTANCE[1]
