"""``ds-w2v bench data [SHARDS...]``: throughput of the data pipeline (figures, not pass/fail).

Prints, in audio-seconds per second (audio-s/s; "x real time" is the same number):

* **streaming**, one worker (this process): tar read + decode + shuffle + bucketing + collation
  into float tensors, for pretraining (crop) and fine-tuning (pad) batches, npy and flac shards;
  the tar read alone as a floor. Goal: >= 10,000 audio-s/s per worker, so that 8 workers feed a
  GPU eating ~1 h of audio per minute many times over.
* **codecs** of :mod:`ds_w2v.data.shard_format` on the same audio: bytes per audio-second and
  decode speed (``npy``: ``np.load`` and the loader's zero-copy view; ``flac``: libsndfile).
* **prepare**, ``prepare_corpus("dir", ...)`` with one worker on a generated WAV corpus (16 kHz,
  and 44.1 kHz to include resampling), as x real time per core. Goal: >= 200x.

With ``--url-prefix`` each set is streamed a second time through that ``data.shard_url_prefix``
(``{dir}`` in it stands for the set's directory): ``--url-prefix 'pipe:cat {dir}/{shard}'``
measures what reading through a ``pipe:`` command costs against local paths (CPU figures then
include the commands' own CPU time).

Without SHARDS a synthetic set is generated in a temporary folder (``--minutes`` of speech-like
noise: low-passed noise under a syllable-rate envelope, utterances of 1-16 s), so FLAC sizes are
in the range of real speech rather than of white noise (which FLAC cannot compress).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

STREAM_GOAL = 10_000.0  # audio-s/s per worker
PREPARE_GOAL = 200.0  # x real time per core


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shards", nargs="*", help="shard paths/URLs to stream (default: a generated set)")
    parser.add_argument("--minutes", type=float, default=30.0, help="audio generated for streaming (min)")
    parser.add_argument("--codec-minutes", type=float, default=5.0, help="audio for the codec comparison (min)")
    parser.add_argument("--prepare-minutes", type=float, default=5.0, help="WAV corpus for prepare (min)")
    parser.add_argument("--batch-s", type=float, default=87.5, help="batch budget, audio-seconds")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per figure (best is printed)")
    parser.add_argument("--skip-prepare", action="store_true")
    parser.add_argument("--skip-codecs", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--url-prefix", default=None, metavar="PREFIX",
                        help="also stream each set through this data.shard_url_prefix ({dir}: the set's directory), "
                             "e.g. 'pipe:cat {dir}/{shard}'")


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="ds_w2v_bench_data_") as tmp:
        tmp_dir = Path(tmp)
        print(f"bench data: batch budget {args.batch_s} audio-s; best of {args.repeats} runs per figure")
        if args.shards:
            urls = _expand(args.shards)
            print(f"streaming {len(urls)} given shard(s)")
            _bench_streaming(_with_url_sets({"given": urls}, args.url_prefix), args)
        else:
            print(f"generating {args.minutes:.0f} min of speech-like audio (npy + flac shards) in {tmp_dir}")
            utts = _synthetic_utterances(args.minutes * 60, args.seed)
            sets = {codec: _write_shards(utts, tmp_dir / codec, codec) for codec in ("npy", "flac")}
            _bench_streaming(_with_url_sets(sets, args.url_prefix), args)
        if not args.skip_codecs:
            _bench_codecs(_synthetic_utterances(args.codec_minutes * 60, args.seed + 1), args)
        if not args.skip_prepare:
            _bench_prepare(tmp_dir / "prepare", args)
    return 0


# -- synthetic audio ------------------------------------------------------------------------
def _synthetic_utterances(total_s: float, seed: int) -> list[Any]:
    """int16 arrays of 1-16 s adding up to ``total_s``: low-passed noise x 4-Hz envelope."""
    import numpy as np

    from ds_w2v.data.shard_format import SAMPLE_RATE

    rng = np.random.default_rng(seed)
    kernel = 0.9 ** np.arange(32)  # truncated AR(1) impulse response: energy below ~1 kHz
    out, done = [], 0.0
    while done < total_s:
        n = int(rng.uniform(1.0, 16.0) * SAMPLE_RATE)
        noise = np.convolve(rng.standard_normal(n), kernel, mode="same")
        t = np.arange(n) / SAMPLE_RATE
        envelope = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(3, 5) * t + rng.uniform(0, 6.3)) ** 2
        out.append(np.clip(noise * envelope * 1500, -32768, 32767).astype(np.int16))
        done += n / SAMPLE_RATE
    return out


def _write_shards(utts: list[Any], out: Path, codec: str, per_shard: int = 100) -> list[str]:
    import json

    import webdataset as wds

    from ds_w2v.data.shard_format import SAMPLE_RATE, encode_audio

    out.mkdir(parents=True)
    with wds.ShardWriter(str(out / "bench-%06d.tar"), maxcount=per_shard, verbose=0) as sink:
        for i, pcm in enumerate(utts):
            ext, data = encode_audio(pcm, codec)
            record = {"id": f"utt{i}", "duration_s": len(pcm) / SAMPLE_RATE, "num_samples": len(pcm),
                      "speaker": None, "text": "synthetic", "phones": None, "phone_spans": None, "label": None,
                      "source": "synthetic", "meta": {}}
            sink.write({"__key__": f"utt{i}", ext: data, "json": json.dumps(record).encode()})
    return sorted(str(p) for p in out.glob("*.tar"))


def _with_url_sets(sets: dict[str, list[str]], url_prefix: str | None) -> dict[str, list[str]]:
    """``sets`` and, with a prefix, each local set again as the URLs ``read_split`` would make."""
    from ds_w2v.data.index import shard_url, url_prefix_problem

    if not url_prefix:
        return sets
    out = dict(sets)
    for name, paths in sets.items():
        if any(not Path(p).is_file() for p in paths):
            raise ValueError(f"--url-prefix: the {name} set is not all local files (it applies to local shards)")
        directory = str(Path(paths[0]).parent)
        prefix = url_prefix.replace("{dir}", directory)
        problem = url_prefix_problem(prefix)
        if problem:
            raise ValueError(f"--url-prefix {url_prefix!r}: {problem}")
        out[f"{name}+url"] = [shard_url(Path(p).name, directory, prefix) for p in paths]
        print(f"{name}+url: {out[f'{name}+url'][0]} ...")
    return out


def _expand(shards: list[str]) -> list[str]:
    urls = []
    for s in shards:
        p = Path(s)
        urls += sorted(str(t) for t in p.glob("*.tar")) if p.is_dir() else [s]
    return urls


# -- measurements ---------------------------------------------------------------------------
def _best(fn: Callable[[], float], repeats: int) -> tuple[float, float]:
    """(audio seconds, fastest wall seconds) over ``repeats`` calls of ``fn`` -> audio seconds."""
    audio_s, wall, _ = _best_wall_cpu(fn, repeats)
    return audio_s, wall


def _cpu_s() -> float:
    """CPU seconds of this process and of its finished children (the commands of ``pipe:`` URLs,
    curl): what a worker costs, whichever process spends it."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _best_wall_cpu(fn: Callable[[], float], repeats: int) -> tuple[float, float, float]:
    """Also the fastest CPU time (``_cpu_s``): on a shared machine, wall time includes waiting for
    a core, CPU time does not (it is the cost per worker)."""
    wall, cpu, audio_s = float("inf"), float("inf"), 0.0
    for _ in range(max(1, repeats)):
        t0, c0 = time.perf_counter(), _cpu_s()
        audio_s = fn()
        wall = min(wall, time.perf_counter() - t0)
        cpu = min(cpu, _cpu_s() - c0)
    return audio_s, wall, cpu


def _bench_streaming(sets: dict[str, list[str]], args: argparse.Namespace) -> None:
    import json

    import webdataset as wds

    from ds_w2v.data import StreamConfig, StreamingLoader
    from ds_w2v.data.shard_format import SAMPLE_RATE

    print("\nstreaming, 1 worker (this process): read + decode + shuffle + buckets + collate, ~3 passes")
    for name, urls in sets.items():
        def read_only() -> float:  # the floor: tar members out of WebDataset, JSON parsed, no audio decode
            n = 0
            for sample in wds.WebDataset(urls, shardshuffle=False, nodesplitter=None, workersplitter=None, seed=0):
                n += json.loads(sample["json"])["num_samples"]
            return n / SAMPLE_RATE

        audio_s, wall = _best(read_only, args.repeats)
        print(f"  {name:8s} tar read only        {audio_s / wall:>10,.0f} audio-s/s"
              f"  ({audio_s:,.0f} s in {wall:.2f} s)")
        # steady state: a training stream (loop=True) over ~3 passes of the data, so that the
        # buckets' initial fill (up to num_buckets x batch_s of audio read ahead) is amortised
        total_s = 3 * audio_s
        for kind in ("pretrain", "finetune"):
            cfg = StreamConfig(kind=kind, batch_s=args.batch_s, seed=args.seed)
            holder: dict[str, Any] = {}

            def stream() -> float:
                loader = StreamingLoader(urls, cfg, total_s=total_s, rank=0, world_size=1)
                for _ in loader:
                    pass
                holder["stats"] = loader.stats
                return loader.stats.valid_samples / SAMPLE_RATE

            audio_s, wall, cpu = _best_wall_cpu(stream, args.repeats)
            st = holder["stats"]
            waste = (f"crop {st.crop_fraction:.1%}" if kind == "pretrain" else f"padding {st.padding_fraction:.1%}")
            verdict = "meets" if audio_s / cpu >= STREAM_GOAL else "MISSES"
            print(f"  {name:8s} {kind:8s} batches    {audio_s / wall:>10,.0f} audio-s/s in batches "
                  f"(per CPU-second {audio_s / cpu:,.0f}; {st.num_batches} batches, {waste}, fill {st.fill:.2f}) "
                  f"-> {verdict} the {STREAM_GOAL:,.0f} goal")


def _bench_codecs(utts: list[Any], args: argparse.Namespace) -> None:
    from ds_w2v.data.samples import decode_npy_int16
    from ds_w2v.data.shard_format import SAMPLE_RATE, decode_audio, encode_audio

    total_s = sum(len(u) for u in utts) / SAMPLE_RATE
    print(f"\ncodecs, {total_s / 60:.1f} min of speech-like audio ({len(utts)} utterances)")
    t0 = time.perf_counter()
    npy = [encode_audio(u, "npy")[1] for u in utts]
    npy_encode = time.perf_counter() - t0
    t0 = time.perf_counter()
    flac = [encode_audio(u, "flac")[1] for u in utts]
    flac_encode = time.perf_counter() - t0
    rows = [
        ("npy", "np.load (shard_format)", npy, lambda d: decode_audio("npy", d), npy_encode),
        ("npy", "zero-copy view (loader)", npy, decode_npy_int16, npy_encode),
        ("flac", "libsndfile", flac, lambda d: decode_audio("flac", d), flac_encode),
    ]
    for codec, how, blobs, decode, encode_s in rows:
        _, wall = _best(lambda: [decode(b) for b in blobs] and 0.0, args.repeats)
        size = sum(len(b) for b in blobs) / total_s
        print(f"  {codec:4s} {size:>8,.0f} bytes/audio-s  encode {total_s / encode_s:>9,.0f} audio-s/s  "
              f"decode {total_s / wall:>12,.0f} audio-s/s  [{how}]")
    ratio = sum(map(len, flac)) / sum(map(len, npy))
    print(f"  flac/npy size ratio {ratio:.2f} (real speech is typically ~0.5-0.7; noise compresses worse)")


def _bench_prepare(root: Path, args: argparse.Namespace) -> None:
    print("\nprepare, `dir` format, 1 worker process (x real time per core)")
    try:
        from ds_w2v.data.prepare import prepare_corpus
    except ImportError as e:
        print(f"  not available: ds_w2v.data.prepare.prepare_corpus cannot be imported ({e})")
        return
    import numpy as np
    import soundfile as sf

    utts = _synthetic_utterances(args.prepare_minutes * 60, args.seed + 2)
    total_s = sum(len(u) for u in utts) / 16_000
    for rate in (16_000, 44_100):
        src = root / f"wav{rate}"
        src.mkdir(parents=True)
        for i, pcm in enumerate(utts):
            if rate != 16_000:  # a cheap stand-in for a 44.1-kHz recording: prepare resamples it
                pcm = np.interp(np.arange(int(len(pcm) * rate / 16_000)) * 16_000 / rate,
                                np.arange(len(pcm)), pcm).astype(np.int16)
            sf.write(src / f"utt{i:05d}.wav", pcm, rate, subtype="PCM_16")
        for codec in ("npy", "flac"):
            out = root / f"out{rate}_{codec}"

            def prepare() -> float:
                prepare_corpus("dir", src, out, workers=1, codec=codec, overwrite=True)
                return total_s

            _, wall = _best(prepare, min(args.repeats, 2))
            speed = total_s / wall
            verdict = "meets" if speed >= PREPARE_GOAL else "MISSES"
            print(f"  {rate / 1000:g} kHz WAV -> {codec:4s}  {speed:>8,.0f}x real time  "
                  f"({total_s:,.0f} s in {wall:.2f} s) -> {verdict} the {PREPARE_GOAL:.0f}x goal")
