"""Corpus in its on-disk layout -> WebDataset shards + ``dataset.json`` (``ds-w2v prepare``).

The contract written is :mod:`ds_w2v.data.shard_format`. Three stages:

1. **scan** (parent process): the format's reader (:mod:`ds_w2v.data.sources`) lists the
   utterances from names and text files alone, and rejects what it can tell is bad from there;
2. **decode** (``workers`` processes): read, check, downmix, resample to 16 kHz, encode the audio
   entry and the JSON record, in a pool whose results come back in input order;
3. **write** (parent): splits in sorted order, utterances within a split in a seeded pseudo-random
   order (by a hash of their id: corpora list files speaker by speaker and class by class, and a
   streaming shuffle buffer cannot undo that order -- batches would hold one speaker or one
   emotion, the classic non-i.i.d. stream), into
   ``{split}-%06d.tar`` through ``webdataset.ShardWriter`` with a fixed tar mtime, owner and
   mode -- so the same input gives byte-identical shards whatever the worker count.

Nothing is dropped silently: every listed file lands in exactly one shard or in
``rejects.jsonl`` with its reason (counted per reason in ``dataset.json``); files left out by
design (TIMIT SA sentences, RAVDESS song) are counted under ``excluded``. ``dataset.json`` is
written last, so a folder without it holds no finished dataset.
"""
from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
import re
import signal
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

from ds_w2v.data import audio as audio_lib
from ds_w2v.data.shard_format import (
    AUDIO_EXTS,
    DEFAULT_CODEC,
    INDEX_NAME,
    REJECTS_NAME,
    SAMPLE_RATE,
    VOCAB_NAME,
    encode_audio,
)
from ds_w2v.data.sources import Reject, Utterance, scan_source
from ds_w2v.text import CharVocab

INDEX_FORMAT = 1
SHARD_PATTERN = "{split}-%06d.tar"
_SHARD_NAME = re.compile(r"^[A-Za-z0-9_\-]+-\d{6}\.tar$")
# A shard of ~1000 utterances is 30-300 MB of 16-bit audio: big enough to stream at disk speed,
# small enough that a split of a few thousand clips still spreads over loader workers and ranks.
MAX_SHARD_SAMPLES = 1000
MAX_SHARD_BYTES = 512 * 2**20
TAR_MTIME = 0.0  # fixed, so shards do not depend on the clock


@dataclass(frozen=True)
class DecodeOptions:
    codec: str = DEFAULT_CODEC
    min_duration_s: float = audio_lib.MIN_DURATION_S
    max_duration_s: float | None = audio_lib.MAX_DURATION_S
    quality: str = audio_lib.RESAMPLE_QUALITY


def prepare_corpus(
    fmt: str,
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    workers: int = 1,
    codec: str = DEFAULT_CODEC,
    min_duration_s: float = audio_lib.MIN_DURATION_S,
    max_duration_s: float | None = audio_lib.MAX_DURATION_S,
    resample_quality: str = audio_lib.RESAMPLE_QUALITY,
    max_shard_samples: int = MAX_SHARD_SAMPLES,
    max_shard_bytes: int = MAX_SHARD_BYTES,
    overwrite: bool = False,
    progress: bool = False,
    **source_options: Any,
) -> dict[str, Any]:
    """Read ``src`` laid out as ``fmt`` and write shards to ``out``; returns the index.

    ``source_options`` go to the format's reader (see ``ds_w2v.data.sources.source_options``).
    Bad files are rejected, never raised; a bad ``src`` (missing, wrong layout, nothing usable)
    raises ValueError / FileNotFoundError naming the path.
    """
    if codec not in AUDIO_EXTS:
        raise ValueError(f"unknown audio codec {codec!r}; known: {sorted(AUDIO_EXTS)}")
    if workers < 1 or max_shard_samples < 1 or max_shard_bytes < 1:
        raise ValueError("workers, max_shard_samples and max_shard_bytes must be >= 1")
    if max_duration_s is not None and max_duration_s <= min_duration_s:
        raise ValueError(f"max_duration_s ({max_duration_s}) must exceed min_duration_s ({min_duration_s})")
    src = Path(os.path.abspath(src))
    out = Path(out)
    scan = scan_source(fmt, src, **source_options)
    utterances, rejects = _deduplicate(scan.utterances)
    rejects = scan.rejects + rejects
    if not utterances:
        raise ValueError(f"{src}: no usable {fmt} files ({_reason_summary(rejects) or 'nothing found'}); "
                         f"is this folder laid out as --format {fmt}?")
    _prepare_out_dir(out, overwrite)

    decode = DecodeOptions(codec, min_duration_s, max_duration_s, resample_quality)
    stats, texts, decode_rejects = _write_shards(utterances, decode, out, workers, max_shard_samples,
                                                 max_shard_bytes, progress, desc=f"prepare {fmt}")
    rejects += decode_rejects
    if not stats:
        raise ValueError(f"{src}: no usable {fmt} files ({_reason_summary(rejects)})")

    vocab = CharVocab.build(texts, normalized=True) if texts else None
    rejects.sort(key=lambda r: (r.path, r.reason))
    index = {
        "format": INDEX_FORMAT,
        "sample_rate": SAMPLE_RATE,
        "audio_codec": codec,
        "splits": {split: _split_entry(shards) for split, shards in stats.items()},
        "labels": scan.labels,
        "vocab": vocab.to_dict() if vocab is not None else None,
        "rejects": dict(sorted(Counter(r.reason for r in rejects).items())),
        "source": {"format": fmt, "path": str(src)},
        # additions to the contract: what was left out on purpose, and how the shards were made
        "excluded": dict(sorted(scan.excluded.items())),
        "options": {
            "min_duration_s": min_duration_s,
            "max_duration_s": max_duration_s,
            "resample_quality": resample_quality,
            **{k: source_options[k] for k in sorted(source_options)},
        },
    }
    # backslashreplace: a file name with bytes that are not UTF-8 must not fail the run here
    with open(out / REJECTS_NAME, "w", encoding="utf-8", errors="backslashreplace") as f:
        for r in rejects:
            f.write(json.dumps(r.to_json(), ensure_ascii=False) + "\n")
    if vocab is not None:
        vocab.save(out / VOCAB_NAME)
    (out / INDEX_NAME).write_text(json.dumps(index, ensure_ascii=False, indent=1) + "\n", encoding="utf-8",
                                  errors="backslashreplace")
    return index


def summarize(index: dict[str, Any]) -> list[str]:
    """One line per split, then the reject and exclusion counts (what ``ds-w2v prepare`` prints)."""
    lines = []
    width = max(map(len, index["splits"]), default=5)
    for split, s in sorted(index["splits"].items()):
        shards = s["shards"]
        where = shards[0] if len(shards) == 1 else f"{shards[0]} .. {shards[-1]}"
        lines.append(
            f"{split:<{width}}  {s['num_samples']:>8,} utterances  {_hms(sum(s['shard_seconds'])):>9}  "
            f"{len(shards):>4} shard{'s' if len(shards) > 1 else ' '}  {where}"
        )
    rejects = index.get("rejects") or {}
    total = sum(rejects.values())
    detail = ", ".join(f"{reason} {n}" for reason, n in rejects.items())
    lines.append(f"rejected {total} file(s)" + (f": {detail} (listed in {REJECTS_NAME})" if total else ""))
    if index.get("excluded"):
        lines.append("left out by design: " + ", ".join(f"{k} {n}" for k, n in index["excluded"].items()))
    return lines


def _hms(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


# -- stage 2: decoding, in worker processes ------------------------------------------------------
_DECODE: DecodeOptions | None = None


def _init_worker(options: DecodeOptions) -> None:
    global _DECODE
    _DECODE = options
    # A forked worker inherits its parent's SIGTERM handler. Pool.terminate() (the ``with`` block's
    # exit) ends workers with SIGTERM, after taking the task queue's lock for good; a worker that
    # survives it waits on that lock forever and the parent's join with it: a test suite hung
    # there (a pytest process in which something had set a SIGTERM handler; 2026-12-07).
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _decode_one(utt: Utterance) -> tuple[str, str, bytes, bytes, int] | Reject:
    """(key, audio extension, audio bytes, JSON bytes, samples) of one utterance, or its Reject."""
    options = _DECODE or DecodeOptions()
    try:
        pcm, rate = audio_lib.load_audio_and_rate(utt.audio, options.min_duration_s, options.max_duration_s,
                                                  options.quality)
    except audio_lib.AudioError as e:
        return Reject(utt.audio, e.reason, e.detail, utt.split)
    except Exception as e:  # a decoder bug must cost one file, not the run
        return Reject(utt.audio, "unreadable", f"{type(e).__name__}: {e}", utt.split)
    ext, audio_bytes = encode_audio(pcm, options.codec)
    record = {
        "id": utt.id,
        "duration_s": round(len(pcm) / SAMPLE_RATE, 6),
        "num_samples": len(pcm),
        "speaker": utt.speaker,
        "text": utt.text,
        "phones": utt.phones,
        "phone_spans": _spans_at_16k(utt.phone_spans, rate, len(pcm)),
        "label": utt.label,
        "source": utt.audio,
        "meta": utt.meta,
    }
    # backslashreplace: a file name with undecodable bytes still gives valid JSON
    record_bytes = json.dumps(record, ensure_ascii=False).encode("utf-8", "backslashreplace")
    return utt.id, ext, audio_bytes, record_bytes, len(pcm)


def _decode_all(utterances: list[Utterance], options: DecodeOptions, workers: int, progress: bool, desc: str) -> Iterator:
    from tqdm import tqdm

    bar = tqdm(total=len(utterances), desc=desc, unit="file", disable=not progress, file=sys.stderr)
    if workers == 1:
        _init_worker(options)
        try:
            for utt in utterances:
                result = _decode_one(utt)
                bar.update()
                yield result
        finally:
            bar.close()
        return
    # imap keeps input order, so the parent writes the same shards whatever the worker count;
    # chunks of a few files keep the IPC overhead small without starving the last worker
    chunk = max(1, min(16, len(utterances) // (workers * 8)))
    with multiprocessing.Pool(workers, initializer=_init_worker, initargs=(options,)) as pool:
        try:
            for result in pool.imap(_decode_one, utterances, chunksize=chunk):
                bar.update()
                yield result
            pool.close()  # every result read: the workers end on their own (no SIGTERM needed)
            pool.join()
        finally:
            bar.close()


def _spans_at_16k(spans: list[tuple[int, int]] | None, rate: int, num_samples: int) -> list[list[int]] | None:
    """``[start, end)`` spans in samples at ``rate`` -> samples at 16 kHz, within the decoded audio
    (an alignment may run a few samples past the end, and resampling rounds the length)."""
    if spans is None:
        return None
    scale = SAMPLE_RATE / rate
    return [[min(round(s * scale), num_samples), min(round(e * scale), num_samples)] for s, e in spans]


# -- stage 3: writing, in the parent ------------------------------------------------------------
def _write_shards(
    utterances: list[Utterance], decode: DecodeOptions, out: Path, workers: int, max_shard_samples: int,
    max_shard_bytes: int, progress: bool, desc: str,
) -> tuple[dict[str, dict[str, tuple[int, float]]], list[str], list[Reject]]:
    """Decode and write ``utterances`` (grouped by split); (per-shard stats, texts written, rejects)."""
    per_split = Counter(u.split for u in utterances)
    texts, rejects = [], []
    writer = _SplitWriter(out, max_shard_bytes)
    results = _decode_all(utterances, decode, workers, progress, desc)
    for utt, result in zip(utterances, results, strict=True):
        if isinstance(result, Reject):
            rejects.append(result)
            continue
        key, ext, audio_bytes, record_bytes, num_samples = result
        if writer.split != utt.split:
            writer.start(utt.split, _balanced_count(per_split[utt.split], max_shard_samples))
        writer.write({"__key__": key, ext: audio_bytes, "json": record_bytes}, num_samples / SAMPLE_RATE)
        if utt.text is not None:
            texts.append(utt.text)
    writer.close()
    return writer.stats, texts, rejects


def _split_entry(shards: dict[str, tuple[int, float]]) -> dict[str, Any]:
    """The ``dataset.json`` entry of one split from its ``{shard name: (samples, seconds)}``."""
    num = [n for n, _ in shards.values()]
    seconds = [round(s, 3) for _, s in shards.values()]
    return {
        "shards": list(shards),
        "num_samples": sum(num),
        "hours": round(sum(seconds) / 3600, 4),
        "shard_num_samples": num,
        "shard_seconds": seconds,
    }


class _SplitWriter:
    """``webdataset.ShardWriter`` per split, with per-shard sample counts and seconds."""

    def __init__(self, out: Path, max_bytes: int) -> None:
        self.out, self.max_bytes = out, max_bytes
        self.split: str | None = None
        self._writer = None
        self.stats: dict[str, dict[str, tuple[int, float]]] = {}  # split -> shard name -> (n, s)

    def start(self, split: str, max_samples: int) -> None:
        import webdataset as wds

        self.close()
        if split in self.stats:
            raise RuntimeError(f"split {split!r} written twice: utterances must be grouped by split")
        self.split = split
        self.stats[split] = {}
        pattern = str(self.out / SHARD_PATTERN.format(split=split))
        self._writer = wds.ShardWriter(
            pattern, maxcount=max_samples, maxsize=self.max_bytes, verbose=0,
            encoder=False, mtime=TAR_MTIME, user="ds_w2v", group="ds_w2v", mode=0o444,
        )

    def write(self, sample: dict[str, Any], seconds: float) -> None:
        self._writer.write(sample)
        name = Path(self._writer.fname).name  # ShardWriter moves to the next file before writing
        n, s = self.stats[self.split].get(name, (0, 0.0))
        self.stats[self.split][name] = (n + 1, s + seconds)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _balanced_count(num_utterances: int, max_samples: int) -> int:
    """Samples per shard so that a split's shards are about equal (1050 -> 525 + 525, not 1000 + 50)."""
    num_shards = max(1, math.ceil(num_utterances / max_samples))
    return math.ceil(num_utterances / num_shards)


def _deduplicate(utterances: Iterable[Utterance]) -> tuple[list[Utterance], list[Reject]]:
    """Utterances in write order (split, then hashed id), each id and each audio file once."""
    kept, rejects = [], []
    seen_ids: dict[str, str] = {}
    seen_files: dict[str, str] = {}
    for utt in sorted(utterances, key=lambda u: (u.id, u.audio, u.split)):
        path = os.path.normpath(utt.audio)
        if utt.id in seen_ids:
            rejects.append(Reject(utt.audio, "duplicate_id", f"id {utt.id!r} is already {seen_ids[utt.id]}", utt.split))
        elif path in seen_files:
            rejects.append(Reject(utt.audio, "duplicate_file", f"already listed as {seen_files[path]!r}", utt.split))
        else:
            seen_ids[utt.id] = utt.audio
            seen_files[path] = utt.id
            kept.append(utt)
    kept.sort(key=lambda u: (u.split, _mix(u.id)))
    return kept, rejects


def _mix(utt_id: str) -> str:
    """A fixed pseudo-random position for an utterance: the same input gives the same shards."""
    return hashlib.sha1(f"ds_w2v:{utt_id}".encode()).hexdigest()


def _prepare_out_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    ours = [p for p in out.iterdir() if _SHARD_NAME.match(p.name) or p.name in (INDEX_NAME, REJECTS_NAME, VOCAB_NAME)]
    if ours and not overwrite:
        raise ValueError(f"{out}: already holds a prepared dataset; pass --overwrite or choose another folder")
    for p in ours:
        p.unlink()


def _reason_summary(rejects: list[Reject]) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in sorted(Counter(r.reason for r in rejects).items()))
