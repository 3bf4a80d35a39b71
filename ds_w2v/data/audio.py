"""Decode one audio file into what every shard holds: mono, 16 kHz, int16.

soundfile (libsndfile) reads WAV (PCM 8/16/24/32-bit, float, mu-law, A-law, ADPCM), FLAC, OGG
and NIST SPHERE, and sniffs the container from the bytes, so a TIMIT ``.WAV`` that is really
SPHERE is read as SPHERE. The steps, cheapest check first:

1. ``stat``: a directory named like audio, a dangling link or a link loop is not a file;
2. open and read the header only: frame count and sample rate give the duration, so a file that
   is too long is refused before a single sample is decoded (a 3-hour WAV never enters memory);
3. WAV and SPHERE headers declare how many bytes follow; libsndfile quietly shortens a cut-off
   file to what is there, so the declaration is checked against the file size (``truncated``);
4. decode: straight to int16 when the file already is 16 kHz 16-bit mono (no conversion, no
   copy), else to float32 -> NaN/inf check -> channel mean -> soxr -> int16.

Every refusal is an :class:`AudioError` with a short ``reason`` (a key of :data:`REASONS`) that
``prepare`` counts in ``dataset.json`` and lists in ``rejects.jsonl``.
"""
from __future__ import annotations

import errno
import os
import re
import stat
import struct

import numpy as np
import soundfile as sf
import soxr

from ds_w2v.data.shard_format import SAMPLE_RATE

# Extensions treated as audio when walking a directory (lower case; compared case-insensitively).
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".sph", ".nist", ".aif", ".aiff", ".au", ".w64", ".mp3")

MIN_DURATION_S = 0.5  # shorter clips hold under 25 frames of the 20 ms wav2vec 2.0 frame rate
# The LibriSpeech paper cut its audio into segments of at most 35 s, so 36 s keeps every
# utterance of its official dev/test sets (RAVDESS clips are <= ~5 s, TIMIT <= ~8 s).
MAX_DURATION_S = 36.0
RESAMPLE_QUALITY = "HQ"  # soxr: "HQ" is transparent for speech; "VHQ" costs ~10 % more

# reason -> what it means (docs/data_prepare.md lists the same table)
REASONS = {
    "missing_audio": "the audio file named by a manifest/transcript does not exist",
    "not_a_file": "a directory or special file with an audio name, or a dangling symlink",
    "symlink_loop": "a symbolic link that points back into itself",
    "unreadable": "soundfile cannot open or parse it (not audio, header cut off)",
    "unsupported_encoding": "a known container with a codec libsndfile lacks (e.g. shorten SPHERE)",
    "empty_audio": "zero bytes or zero samples",
    "truncated": "fewer samples than the header declares, or decoding stops mid-stream",
    "non_finite": "NaN or infinite samples (float WAV)",
    "too_short": "shorter than --min-duration-s",
    "too_long": "longer than --max-duration-s (checked from the header, before decoding)",
}


class AudioError(Exception):
    """A file that cannot become a shard sample; ``reason`` is a key of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def is_audio_name(name: str) -> bool:
    return name.lower().endswith(AUDIO_EXTENSIONS)


def load_audio(
    path: str | os.PathLike,
    min_duration_s: float = MIN_DURATION_S,
    max_duration_s: float | None = MAX_DURATION_S,
    quality: str = RESAMPLE_QUALITY,
) -> np.ndarray:
    """Mono 16 kHz int16 samples of ``path``, or :class:`AudioError` saying why not."""
    return load_audio_and_rate(path, min_duration_s, max_duration_s, quality)[0]


def load_audio_and_rate(
    path: str | os.PathLike,
    min_duration_s: float = MIN_DURATION_S,
    max_duration_s: float | None = MAX_DURATION_S,
    quality: str = RESAMPLE_QUALITY,
) -> tuple[np.ndarray, int]:
    """:func:`load_audio` and the file's own sample rate (Hz): what ``prepare`` scales a
    corpus's sample-numbered timings (TIMIT ``.PHN``) by when the file was not 16 kHz."""
    path = os.fspath(path)
    file_size = _check_is_file(path)
    try:
        f = sf.SoundFile(os.fsencode(path))  # bytes: a file name that is not UTF-8 still opens
    except Exception as e:  # libsndfile raises LibsndfileError / RuntimeError / TypeError
        raise _open_error(path, e) from None
    with f:
        frames, rate, channels = f.frames, f.samplerate, f.channels
        if frames <= 0:
            raise AudioError("empty_audio", "header declares no samples")
        if rate <= 0 or channels <= 0:
            raise AudioError("unreadable", f"header gives {rate} Hz, {channels} channels")
        duration_s = frames / rate
        if duration_s < min_duration_s:
            raise AudioError("too_short", f"{duration_s:.3f} s < {min_duration_s} s")
        if max_duration_s is not None and duration_s > max_duration_s:
            raise AudioError("too_long", f"{duration_s:.1f} s > {max_duration_s} s")
        _check_declared_size(path, f.format, file_size)
        as_int16 = rate == SAMPLE_RATE and channels == 1 and f.subtype in _INT16_EXACT
        try:
            # frames= bounds the allocation by the header's count even if the data ran on
            data = f.read(frames=frames, dtype="int16" if as_int16 else "float32")
        except Exception as e:
            raise AudioError("truncated", f"decoding failed: {e}") from None
    if len(data) < frames:
        raise AudioError("truncated", f"decoded {len(data)} of {frames} samples the header declares")
    if as_int16:
        return data, rate
    return _to_int16_16k(data, rate, quality), rate


def _to_int16_16k(x: np.ndarray, rate: int, quality: str) -> np.ndarray:
    """float32 (frames,) or (frames, channels) at ``rate`` -> mono int16 at 16 kHz."""
    if not np.isfinite(x).all():
        raise AudioError("non_finite", "NaN or infinite samples")
    if x.ndim == 2:
        # channel mean; two channels by hand avoids a strided reduction (3x faster)
        x = (x[:, 0] + x[:, 1]) * np.float32(0.5) if x.shape[1] == 2 else x.mean(axis=1, dtype=np.float32)
    if rate != SAMPLE_RATE:
        x = soxr.resample(x, rate, SAMPLE_RATE, quality=quality)
    # x is ours (fresh from the decoder, the mean or soxr): convert in place, one copy to int16
    # full-scale float is +-1.0 = +-32768 (libsndfile's int16 -> float convention, so a 16-bit
    # file read as float and converted back is bit-exact); out-of-range float samples clip
    x *= np.float32(32768.0)
    np.rint(x, out=x)
    np.clip(x, -32768.0, 32767.0, out=x)
    return x.astype(np.int16)


# Subtypes whose int16 read is exact (no scaling of wider samples, no float -> int rounding):
# mu-law and A-law expand to 16 bits, 8-bit PCM shifts up.
_INT16_EXACT = frozenset({"PCM_16", "PCM_S8", "PCM_U8", "ULAW", "ALAW"})


def _check_is_file(path: str) -> int:
    try:
        st = os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise AudioError("symlink_loop", "symbolic link loop") from None
        if os.path.islink(path):
            raise AudioError("not_a_file", f"dangling symbolic link -> {os.readlink(path)}") from None
        if e.errno == errno.ENOENT:
            raise AudioError("missing_audio", "no such file") from None
        raise AudioError("unreadable", str(e)) from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise AudioError("not_a_file", kind)
    if st.st_size == 0:
        raise AudioError("empty_audio", "0 bytes")
    if not os.access(path, os.R_OK):
        raise AudioError("unreadable", "permission denied")
    return st.st_size


def _read_head(path: str, n: int = 1024) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError:
        return b""


def _open_error(path: str, e: Exception) -> AudioError:
    head = _read_head(path)
    message = str(e)
    if message.startswith("Error opening "):  # "Error opening b'/the/path': <what libsndfile said>"
        message = message.rsplit("': ", 1)[-1]
    message = message.strip() or type(e).__name__
    if head.startswith(b"NIST_1A"):
        coding = re.search(rb"sample_coding\s+-s\d+\s+(\S+)", head)
        coding_s = coding.group(1).decode("ascii", "replace") if coding else "?"
        if b"shorten" in head or b"wavpack" in head:
            return AudioError(
                "unsupported_encoding",
                f"NIST SPHERE with {coding_s} compression, which libsndfile cannot decode; convert it "
                "first, e.g. `sph2pipe -f wav IN OUT.wav` (sph2pipe ships with Kaldi/LDC tools)",
            )
    if head[:4] in (b"RIFF", b"RIFX") and head[8:12] == b"WAVE" and "unimplemented" in message:
        tag = _wav_format_tag(head)
        return AudioError(
            "unsupported_encoding",
            f"WAV with format tag 0x{tag:04x} that libsndfile cannot decode; convert it to PCM, "
            "e.g. `sox IN -b 16 OUT.wav` or `ffmpeg -i IN -c:a pcm_s16le OUT.wav`",
        )
    return AudioError("unreadable", message)


def _wav_format_tag(head: bytes) -> int:
    i = head.find(b"fmt ")
    if i < 0 or len(head) < i + 10:
        return -1
    return struct.unpack("<H" if head[:4] == b"RIFF" else ">H", head[i + 8 : i + 10])[0]


def _check_declared_size(path: str, container: str, file_size: int) -> None:
    """Raise ``truncated`` when a WAV/SPHERE header declares more bytes than the file holds."""
    if container in ("WAV", "WAVEX"):
        declared_end = _wav_data_end(path)
    elif container == "NIST":
        declared_end = _sphere_data_end(_read_head(path))
    else:  # FLAC/OGG decoders raise on their own when the stream stops early
        return
    if declared_end is not None and declared_end > file_size:
        raise AudioError("truncated", f"header declares {declared_end} bytes, file has {file_size}")


def _wav_data_end(path: str) -> int | None:
    """Byte offset where the ``data`` chunk ends according to its header (None: unknown)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
            if head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
                return None
            fmt = "<I" if head[:4] == b"RIFF" else ">I"
            pos = 12
            for _ in range(64):  # a WAV has a handful of chunks; bound the walk
                fh.seek(pos)
                chunk = fh.read(8)
                if len(chunk) < 8:
                    return None
                size = struct.unpack(fmt, chunk[4:])[0]
                if chunk[:4] == b"data":
                    # 0 and 0xFFFFFFFF mean "unknown" (a stream written without seeking back)
                    return None if size in (0, 0xFFFFFFFF) else pos + 8 + size
                pos += 8 + size + (size & 1)
    except OSError:
        return None
    return None


def _sphere_data_end(head: bytes) -> int | None:
    def field(name: bytes) -> int | None:
        m = re.search(rb"\n" + name + rb"\s+-i\s+(\d+)", head)
        return int(m.group(1)) if m else None

    lines = head.split(b"\n", 2)
    try:
        header_bytes = int(lines[1])
    except (IndexError, ValueError):
        return None
    count, channels, width = field(b"sample_count"), field(b"channel_count") or 1, field(b"sample_n_bytes")
    if count is None or width is None:
        return None
    return header_bytes + count * channels * width
