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

**Augmentation** (``data.augment``, :mod:`ds_w2v.data.augment`): with ``--augment`` (or any of
``--speeds 0.9,1.0,1.1``, ``--noise DIR``, ``--snr 5,20``, ``--rir DIR``) each training stream is
timed a second time with it on, and each effect is timed alone per utterance (CPU time: speed
perturbation by factor, reverberation, noise read from a folder and from memory). ``--augment``
turns on all three, with noise and RIRs generated in the temporary folder when ``--noise`` /
``--rir`` name none (pink and white noise WAVs, exponentially decaying noise as RIRs).

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
AUGMENT_MINUTES = 2.0  # audio each augmentation is timed alone on


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
    aug = parser.add_argument_group("augmentation (data.augment): streams are timed without and with it")
    aug.add_argument("--augment", action="store_true",
                     help="speeds 0.9,1.0,1.1 + noise + RIRs (generated noise/RIRs unless --noise/--rir are given)")
    aug.add_argument("--speeds", type=_floats, default=None, metavar="F,F,...", help="speed factors, e.g. 0.9,1.0,1.1")
    aug.add_argument("--noise", default=None, metavar="DIR", help="noise folder or prepared shard directory")
    aug.add_argument("--snr", type=_floats, default=(5.0, 20.0), metavar="LOW,HIGH", help="SNR range in dB (5,20)")
    aug.add_argument("--noise-prob", type=float, default=1.0)
    aug.add_argument("--rir", default=None, metavar="DIR", help="folder of room impulse responses")
    aug.add_argument("--rir-prob", type=float, default=0.5)


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated numbers") from None


def _augment_config(args: argparse.Namespace, tmp_dir: Path) -> Any:
    """The AugmentConfig the options ask for (None: none), generating noise/RIRs for --augment."""
    from ds_w2v.data.augment_config import AugmentConfig

    speeds, noise, rir = args.speeds, args.noise, args.rir
    if args.augment:
        speeds = speeds or (0.9, 1.0, 1.1)
        noise = noise or str(_synthetic_noise(tmp_dir / "noise", args.seed))
        rir = rir or str(_synthetic_rirs(tmp_dir / "rir", args.seed))
    if len(args.snr) != 2:
        raise ValueError(f"--snr: expected LOW,HIGH in dB, got {args.snr}")
    config = AugmentConfig(speeds=speeds or (), noise=noise, noise_prob=args.noise_prob, snr_db=args.snr, rir=rir,
                           rir_prob=args.rir_prob)
    return config if config.active else None


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="ds_w2v_bench_data_") as tmp:
        tmp_dir = Path(tmp)
        print(f"bench data: batch budget {args.batch_s} audio-s; best of {args.repeats} runs per figure")
        augment = _augment_config(args, tmp_dir)
        if augment is not None:
            from ds_w2v.data.augment_config import describe
            from ds_w2v.data.augment_sources import check_augment

            check_augment(augment)
            print(f"augmentation: {describe(augment)}")
        if args.shards:
            urls = _expand(args.shards)
            print(f"streaming {len(urls)} given shard(s)")
            _bench_streaming(_with_url_sets({"given": urls}, args.url_prefix), args, augment)
        else:
            print(f"generating {args.minutes:.0f} min of speech-like audio (npy + flac shards) in {tmp_dir}")
            utts = _synthetic_utterances(args.minutes * 60, args.seed)
            sets = {codec: _write_shards(utts, tmp_dir / codec, codec) for codec in ("npy", "flac")}
            _bench_streaming(_with_url_sets(sets, args.url_prefix), args, augment)
        if augment is not None:
            _bench_augment(_synthetic_utterances(AUGMENT_MINUTES * 60, args.seed + 3), augment, args, tmp_dir)
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


def _synthetic_noise(out: Path, seed: int, num_files: int = 6, seconds: float = 10.0) -> Path:
    """White and pink (1/f power) noise WAVs, 16 kHz 16-bit: what a noise folder holds."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(seed + 10)
    out.mkdir(parents=True)
    n = int(seconds * 16_000)
    for i in range(num_files):
        x = rng.standard_normal(n)
        if i % 2:  # pink: the white spectrum shaped by 1/sqrt(f)
            spectrum = np.fft.rfft(x)
            spectrum[1:] /= np.sqrt(np.arange(1, len(spectrum)))
            x = np.fft.irfft(spectrum, n)
        sf.write(out / f"noise{i:02d}.wav", (0.3 * x / np.abs(x).max()).astype(np.float32), 16_000, subtype="PCM_16")
    return out


def _synthetic_rirs(out: Path, seed: int, num_files: int = 8) -> Path:
    """Exponentially decaying noise behind a direct-path peak (RT60 0.2-0.8 s, as long as RT60):
    the usual stand-in for a simulated room."""
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(seed + 20)
    out.mkdir(parents=True)
    for i in range(num_files):
        rt60_s = 0.2 + 0.6 * i / max(1, num_files - 1)
        t = np.arange(int(rt60_s * 16_000)) / 16_000
        h = 0.3 * rng.standard_normal(len(t)) * 10 ** (-3 * t / rt60_s)  # -60 dB at RT60
        h[0] = 1.0
        sf.write(out / f"rir{i:02d}.wav", (0.5 * h).astype(np.float32), 16_000, subtype="FLOAT")
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


def _bench_streaming(sets: dict[str, list[str]], args: argparse.Namespace, augment: Any = None) -> None:
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
        # with augmentation, each kind is timed plain, then augmented (the same stream otherwise)
        variants = [None] if augment is None else [None, augment]
        for kind, aug in [(k, a) for k in ("pretrain", "finetune") for a in variants]:
            cfg = StreamConfig(kind=kind, batch_s=args.batch_s, seed=args.seed, augment=aug)
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
            label = f"{kind}+aug" if aug is not None else kind
            print(f"  {name:8s} {label:12s} batches {audio_s / wall:>10,.0f} audio-s/s in batches "
                  f"(per CPU-second {audio_s / cpu:,.0f}; {st.num_batches} batches, {waste}, fill {st.fill:.2f}) "
                  f"-> {verdict} the {STREAM_GOAL:,.0f} goal")


def _bench_augment(utts: list[Any], augment: Any, args: argparse.Namespace, tmp_dir: Path) -> None:
    """Each effect alone on the same utterances, in CPU time per utterance (what a worker pays)."""
    import numpy as np

    from ds_w2v.data.augment import SPEED_QUALITY, Augmenter, change_speed
    from ds_w2v.data.augment_config import AugmentConfig
    from ds_w2v.data.augment_sources import NoiseBank
    from ds_w2v.data.batching import Utterance
    from ds_w2v.data.shard_format import INDEX_NAME, SAMPLE_RATE

    total_s = sum(len(u) for u in utts) / SAMPLE_RATE
    print(f"\naugmentation alone, {total_s / 60:.1f} min of speech-like audio ({len(utts)} utterances of 1-16 s), "
          "CPU time, best of the runs")
    rows = [u * np.float32(1 / 32768) for u in utts]
    cases: list[tuple[str, Callable[[], None]]] = []
    def speed(factor: float) -> None:
        for u in utts:
            change_speed(Utterance("u", u, {}), factor)

    for f in sorted({s for s in augment.speeds if s != 1.0}):
        cases.append((f"speed {f:g} (soxr {SPEED_QUALITY})", lambda f=f: speed(f)))
    if augment.rir is not None:
        reverb = Augmenter(AugmentConfig(rir=augment.rir, rir_prob=1.0))
        cases.append(("reverberation (FFT)", lambda: _mix_each(reverb, rows)))
    if augment.noise is not None:
        noise_sources = [augment.noise]
        if not (Path(augment.noise) / INDEX_NAME).is_file():  # a folder: also timed from memory, prepared as shards
            from ds_w2v.data.prepare import prepare_corpus

            shards = Path(tmp_dir) / "noise_shards"
            prepare_corpus("dir", augment.noise, shards, workers=1, overwrite=True)
            noise_sources.append(str(shards))
        for source in noise_sources:
            aug = Augmenter(AugmentConfig(noise=source, noise_prob=1.0, snr_db=augment.snr_db))
            where = "from memory (shards)" if isinstance(aug.noise, NoiseBank) else "read on demand (folder)"
            cases.append((f"noise, {where}", lambda aug=aug: _mix_each(aug, rows)))
    for label, fn in cases:
        cpu = float("inf")
        for _ in range(max(1, args.repeats)):  # process_time: os.times ticks (10 ms) are too coarse here
            c0 = time.process_time()
            fn()
            cpu = min(cpu, time.process_time() - c0)
        print(f"  {label:32s} {cpu / len(utts) * 1e3:>7.2f} ms per utterance ({total_s / len(utts):.1f} s mean)  "
              f"{total_s / cpu:>9,.0f} audio-s per CPU-second")


def _mix_each(aug: Any, rows: list[Any]) -> None:
    """Each utterance as a batch row of its own (the copy stands for the collation's)."""
    import numpy as np

    rng = np.random.default_rng(0)
    for x in rows:
        row = x.copy()[None, :]
        aug.mix_rows(row, [row.shape[1]], rng)


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
