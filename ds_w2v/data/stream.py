"""The per-rank streaming pipeline: shards -> samples -> shuffle buffer -> buckets -> batches.

One epoch of one rank is a pure function of ``(urls, config, seed, epoch, rank, world_size,
num_workers)``; that is what makes the equal-count guarantee and exact resume possible.

For each *pass* over the data (a rank whose shards run dry before its batch quota starts a new
pass, reshuffled):

1. **shard order**: a permutation of all URLs drawn from ``(seed, epoch, pass)``, so every rank
   computes the same order, and a new one each epoch;
2. **split by node, then by DataLoader worker**: with at least as many shards as ranks, rank
   ``r`` takes shards ``r, r + world, ...``; with fewer, every rank reads every shard and keeps
   samples ``r, r + world, ...`` (a sample-level split: never an empty rank). The same rule then
   splits the rank's share among its workers;
3. each shard is read by its own ``webdataset.WebDataset`` (a path or any URL it opens) with an
   error handler that knows the URL, so a truncated or unreadable shard is logged (once per
   process), counted and skipped: ``unreachable_shard`` when nothing could be read from the URL
   (no such file, a ``pipe:`` command or a download that failed), ``bad_shard`` when its bytes
   are not a valid tar;
4. samples are decoded and validated (:mod:`ds_w2v.data.samples`), speed-perturbed (training
   streams with ``augment.speeds``: :mod:`ds_w2v.data.augment`), filtered by duration (training
   streams only: a single-pass stream delivers every decodable utterance, one that exceeds the
   batch budget alone in its batch), passed through a seeded shuffle buffer and grouped into
   duration buckets (:class:`~ds_w2v.data.batching.DurationBatcher`); a collated batch's rows are
   reverberated and get noise (``augment.rir``, ``augment.noise``);
5. a worker emits exactly its share of the rank's ``num_batches``; batch ``i`` of the epoch comes
   from logical worker ``i % num_workers`` (the order in which ``DataLoader`` interleaves
   workers). Resuming at batch ``k`` rebuilds the epoch and drops the first ``k`` batches before
   collation (no tensors are built for them), then rotates the workers so that DataLoader's
   worker 0 produces batch ``k``.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np
import torch.utils.data

from ds_w2v.data import samples as S
from ds_w2v.data.augment import MIX_STREAM, SPEED_STREAM, Augmenter, apply_speed
from ds_w2v.data.augment_config import AugmentConfig
from ds_w2v.data.batching import (
    BATCH_KINDS, DEFAULT_BUCKETS_S, MAX_SAMPLE_SIZE, PRETRAIN, Batch, CollateStats,
    DurationBatcher, Utterance, collate,
)
from ds_w2v.data.deadline import DeadlineReader, ReadTimeout
from ds_w2v.data.shard_format import SAMPLE_RATE
from ds_w2v.errors import reason

log = logging.getLogger(__name__)
_LOGGED: set[tuple[str, str]] = set()  # (url, reason) already logged by this process

UNREACHABLE_SHARD = "unreachable_shard"
"""Skip reason of a shard from which not one byte could be read: a missing file, a ``pipe:``
command or a download (curl, gsutil) that failed or wrote nothing. Not corruption (not in
``samples.CORRUPTION_REASONS``): the data may be fine, the way to it is not."""


class NoUsableData(RuntimeError):
    """A training stream met not one usable utterance in a full pass over its shards (all
    unreachable, all damaged, or all outside the duration limits): looping would spin forever."""


# curl's exit statuses worth naming (webdataset opens http(s):// with `curl -f -s -L`; `man curl`)
_CURL_EXITS = {6: "could not resolve the host", 7: "could not connect", 22: "HTTP error (4xx/5xx, e.g. 404)",
               28: "timed out", 35: "TLS handshake failed"}


@dataclass
class StreamConfig:
    """How one rank streams batches (see ``docs/data_stream.md``)."""

    kind: str = PRETRAIN
    """"pretrain": crop to the shortest utterance of the batch, no padding; "finetune": pad to
    the longest and carry lengths, texts and labels."""
    batch_s: float = 87.5
    """Budget of one device batch in audio-seconds, counted padded (``B x T``): fairseq's
    ``max_tokens`` / 16 kHz. 87.5 s = 1,400,000 samples, wav2vec 2.0 BASE pretraining."""
    fill: float = 0.85
    """Expected ratio of real audio to budget in a batch (bucket leftovers, padding, crops).
    Batches per epoch per rank = floor(total_s / (world_size * batch_s) * fill): too high and a
    rank re-reads part of its data within the epoch, too low and it leaves some unread; the
    measured value is ``StreamStats.fill``."""
    max_sample_size: int = MAX_SAMPLE_SIZE
    """Pretraining crop cap in samples (fairseq ``max_sample_size``: 250,000 = 15.6 s)."""
    min_duration_s: float = 0.0
    """Training streams (``loop=True``): shorter utterances are skipped and counted ``too_short``
    (fairseq ``min_sample_size`` / 16 kHz). Ignored by single-pass streams, which score everything."""
    max_duration_s: float | None = None
    """Training streams (``loop=True``): longer utterances are skipped and counted ``too_long``, as
    are those that do not fit the budget ``batch_s`` alone. Ignored by single-pass streams."""
    bucket_boundaries_s: tuple[float, ...] = DEFAULT_BUCKETS_S
    """Upper bounds of the duration buckets; ``()`` puts everything in one bucket."""
    max_batch_size: int | None = None
    """Optional cap on utterances per batch (fairseq ``batch_size``)."""
    shuffle_buffer: int = 256
    """Samples held by the shuffle buffer (0: none). Memory: ~32 kB per second of audio each."""
    shard_shuffle: bool = True
    """Permute shards each epoch/pass with ``(seed, epoch, pass)``; False keeps the URL order."""
    seed: int = 0
    """Shared by all ranks: shard order, shuffle buffers, crop offsets and augmentation draws
    derive from it."""
    loop: bool = True
    """True: exactly ``num_batches`` per epoch per rank, looping the rank's shards as needed
    (training); the duration filters apply. False: one pass over the rank's shards, then the
    buckets are flushed (evaluation): every decodable utterance exactly once over all ranks, with
    no duration filter; one that does not fit ``batch_s`` alone gets a batch of its own (wider than
    the budget; ``StreamStats.num_oversize``). Only corrupt samples are skipped (``skipped``).
    Batch counts may differ between ranks."""
    num_workers: int = 0
    """DataLoader worker processes per rank (0: stream in the calling process). Part of the
    stream's definition: resume with the same value."""
    prefetch_factor: int = 2
    pin_memory: bool = False
    read_timeout_s: float | None = 180.0
    """A shard read through a command (http(s) via curl, ``pipe:``) that sends nothing for this
    long is skipped as unreachable (or damaged, if it stalls midway): a warning, counted, the other
    shards go on (:mod:`ds_w2v.data.deadline`). None or 0: wait forever."""
    augment: AugmentConfig | None = None
    """Training streams only (``loop=True``): speed perturbation, reverberation and additive noise
    (:mod:`ds_w2v.data.augment`); None or an inactive config: none. Part of the stream's
    definition, like the seed."""

    def __post_init__(self) -> None:
        if self.kind not in BATCH_KINDS:
            raise ValueError(f"data.kind: unknown batch kind {self.kind!r}; known: {BATCH_KINDS}")
        if self.batch_s <= 0:
            raise ValueError(f"data.batch_s must be > 0, got {self.batch_s}")
        if not 0 < self.fill <= 1:
            raise ValueError(f"data.fill must be in (0, 1], got {self.fill}")
        if self.read_timeout_s is not None and self.read_timeout_s < 0:
            raise ValueError(f"data.read_timeout_s must be >= 0 seconds, got {self.read_timeout_s}")
        if self.num_workers < 0 or self.shuffle_buffer < 0:
            raise ValueError("data.num_workers and data.shuffle_buffer must be >= 0")
        self.bucket_boundaries_s = tuple(self.bucket_boundaries_s)
        if self.augment is not None and self.augment.active and not self.loop:
            raise ValueError("data.augment: augmentation is for training streams (loop=True); a single-pass "
                             "(evaluation) stream scores the audio as it is")

    @property
    def max_batch_samples(self) -> int:
        return int(self.batch_s * SAMPLE_RATE)


def batches_per_epoch(total_s: float, batch_s: float, world_size: int, fill: float) -> int:
    """Batches each rank yields per epoch: ``floor(total_s / (world_size * batch_s) * fill)``,
    at least 1. Computed from the index alone, so identical on every rank."""
    return max(1, math.floor(total_s / (world_size * batch_s) * fill))


def shard_order(urls: Sequence[str], seed: int, epoch: int, pass_: int, shuffle: bool = True) -> list[str]:
    """The order of all shards for one pass of one epoch; the same on every rank."""
    if not shuffle:
        return list(urls)
    perm = np.random.default_rng([seed, epoch, pass_]).permutation(len(urls))
    return [urls[i] for i in perm]


def split_shards(urls: Sequence[str], index: int, count: int) -> tuple[list[str], tuple[int, int] | None]:
    """Part ``index`` of ``count``: every ``count``-th shard, or, with fewer shards than parts,
    all shards and a sample-level split ``(stride, offset)``."""
    if count == 1:
        return list(urls), None
    if len(urls) >= count:
        return list(urls[index::count]), None
    return list(urls), (count, index)


def slot_shards(
    urls: Sequence[str], rank: int, world_size: int, worker: int, num_workers: int
) -> tuple[list[str], list[tuple[int, int]]]:
    """Shards read by one (rank, worker) slot and the sample-level splits applied, in order."""
    node_urls, node_split = split_shards(urls, rank, world_size)
    slot_urls, worker_split = split_shards(node_urls, worker, num_workers)
    return slot_urls, [s for s in (node_split, worker_split) if s is not None]


@dataclass
class StreamStats:
    """Counters of what a stream produced and skipped; summed over workers by the loader."""

    num_batches: int = 0
    num_utterances: int = 0
    """Utterances delivered in batches (the oversize ones included)."""
    num_oversize: int = 0
    """Utterances delivered alone in a batch wider than the budget because they do not fit it
    (single-pass streams only; a training stream skips them as ``too_long``)."""
    valid_samples: int = 0
    """Real audio samples delivered in batches (after pretraining crops)."""
    tensor_samples: int = 0
    """Sum of ``B x T`` over batches: what the budget counts."""
    cropped_samples: int = 0
    """Audio dropped by pretraining crops."""
    budget_samples: int = 0
    """``num_batches x`` the batch budget."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Skip events by reason (``samples.CORRUPTION_REASONS``, ``unreachable_shard``, and for
    training streams only the filters ``too_short``, ``too_long``); a damaged shard counts one
    ``bad_shard``, an unreachable one one ``unreachable_shard``, per pass that meets it."""
    bad_shards: set[str] = field(default_factory=set)
    """URLs of shards in which damage was met."""
    unreachable_shards: set[str] = field(default_factory=set)
    """URLs from which nothing could be read."""
    opened_shards: set[str] = field(default_factory=set)
    """URLs the stream began to read (before the batch this delta came with): how a loader knows
    which shards of the epoch are started, so that a resume on another world size reads the
    rest of the epoch from the others only (:meth:`StreamingLoader.load_state_dict`)."""

    @property
    def num_corrupt(self) -> int:
        return sum(self.skipped.get(r, 0) for r in S.CORRUPTION_REASONS)

    @property
    def audio_s(self) -> float:
        """Audio delivered in batches, in seconds (padding excluded, after pretraining crops)."""
        return self.valid_samples / SAMPLE_RATE

    @property
    def padding_fraction(self) -> float:
        """Padding / (B x T) over all batches (0 for pretraining, which crops instead)."""
        return 1.0 - self.valid_samples / self.tensor_samples if self.tensor_samples else 0.0

    @property
    def crop_fraction(self) -> float:
        """Audio dropped by crops / audio read, over all batches (pretraining)."""
        read = self.valid_samples + self.cropped_samples
        return self.cropped_samples / read if read else 0.0

    @property
    def fill(self) -> float:
        """Real audio / budget: the measured counterpart of ``StreamConfig.fill``."""
        return self.valid_samples / self.budget_samples if self.budget_samples else 0.0

    def add_batch(self, c: CollateStats, budget_samples: int, oversize: bool = False) -> None:
        self.num_batches += 1
        self.num_utterances += c.num_utterances
        self.num_oversize += c.num_utterances if oversize else 0
        self.valid_samples += c.valid_samples
        self.tensor_samples += c.tensor_samples
        self.cropped_samples += c.cropped_samples
        self.budget_samples += budget_samples

    def skip(self, reason: str, url: str, detail: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        if reason == UNREACHABLE_SHARD:
            self.unreachable_shards.add(url)
            if (url, reason) not in _LOGGED:
                _LOGGED.add((url, reason))
                log.warning("skipping unreachable shard %s (%s): %s; streaming goes on with the other shards",
                            url, reason, detail)
        elif reason in S.CORRUPTION_REASONS:
            self.bad_shards.add(url)
            if (url, reason) not in _LOGGED:
                _LOGGED.add((url, reason))
                log.warning("skipping damaged data in shard %s (%s): %s", url, reason, detail)

    def merge(self, other: "StreamStats") -> None:
        for name in ("num_batches", "num_utterances", "num_oversize", "valid_samples", "tensor_samples",
                     "cropped_samples", "budget_samples"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for reason, n in other.skipped.items():
            self.skipped[reason] = self.skipped.get(reason, 0) + n
        self.bad_shards |= other.bad_shards
        self.unreachable_shards |= other.unreachable_shards
        self.opened_shards |= other.opened_shards

    def as_dict(self, prefix: str = "data/") -> dict[str, float]:
        """Flat, namespaced figures for the metrics logger."""
        out = {f"{prefix}{k}": float(v) for k, v in (
            ("num_batches", self.num_batches), ("num_utterances", self.num_utterances),
            ("num_oversize", self.num_oversize),
            ("audio_s", self.audio_s), ("padding_fraction", self.padding_fraction),
            ("crop_fraction", self.crop_fraction), ("fill", self.fill), ("num_corrupt", self.num_corrupt),
        )}
        out.update({f"{prefix}skipped/{r}": float(n) for r, n in sorted(self.skipped.items())})
        return out


def _shuffled(items: Iterator[Utterance], size: int, rng: np.random.Generator) -> Iterator[Utterance]:
    """A shuffle buffer: hold ``size`` items, emit a random one for each new item."""
    if size <= 1:
        yield from items
        return
    buf: list[Utterance] = []
    for item in items:
        if len(buf) < size:
            buf.append(item)
            continue
        j = int(rng.integers(size))
        yield buf[j]
        buf[j] = item
    for j in rng.permutation(len(buf)):
        yield buf[j]


class ShardStream(torch.utils.data.IterableDataset):
    """One epoch of one rank, as ``(Batch, StreamStats delta)`` pairs; iterated directly or by a
    ``DataLoader(batch_size=None)`` whose workers each produce their share. A single-pass stream
    may end with ``(None, delta)`` to report skips met after its last batch."""

    def __init__(
        self, urls: Sequence[str], config: StreamConfig, *, rank: int, world_size: int,
        epoch: int, num_batches: int | None, skip: int = 0,
    ):
        super().__init__()
        if not urls:
            raise ValueError("no shard URLs to stream")
        if config.loop and not num_batches:
            raise ValueError("a looping stream needs num_batches > 0")
        self.urls, self.config = list(urls), config
        self.rank, self.world_size = rank, world_size
        self.epoch, self.num_batches, self.skip = epoch, num_batches, skip

    def __iter__(self) -> Iterator[tuple[Batch, StreamStats]]:
        info = torch.utils.data.get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        slot = (worker + self.skip) % num_workers  # the logical worker (module docstring, 5.)
        if self.config.loop:
            total = self.num_batches // num_workers + (slot < self.num_batches % num_workers)
            skip = self.skip // num_workers + (slot < self.skip % num_workers)
        else:
            total, skip = math.inf, 0
        if skip >= total:
            return
        yield from self._batches(slot, num_workers, total, skip)

    # -- pipeline stages --------------------------------------------------------------------
    def _batches(self, slot: int, num_slots: int, total: float, skip: int) -> Iterator[tuple[Batch, StreamStats]]:
        cfg = self.config
        pending = _Pending()
        batcher = DurationBatcher(
            cfg.max_batch_samples, cfg.kind, cfg.bucket_boundaries_s, cfg.max_sample_size, cfg.max_batch_size
        )
        shuffle_rng = np.random.default_rng([cfg.seed, self.epoch, self.rank, slot, 0])
        aug = Augmenter(cfg.augment) if cfg.augment is not None and cfg.augment.active else None
        utts = _shuffled(self._utterances(slot, num_slots, batcher, pending, aug), cfg.shuffle_buffer, shuffle_rng)
        perturb = aug is not None and aug.config.perturbs_speed

        def groups() -> Iterator[tuple[list[Utterance], bool]]:
            """``(utterances, oversize)``: oversize is a batch of one that does not fit the budget."""
            for utt in utts:
                # only single-pass streams let such an utterance through (_utterances): the
                # batcher cannot hold it, so it is a batch of its own, as wide as it needs
                if not batcher.fits_alone(utt.num_samples):
                    yield [utt], True
                    continue
                full = batcher.add(utt)
                if full is not None:
                    yield full, False
            # reached only by single-pass (loop=False) streams
            yield from ((group, False) for group in batcher.flush())

        made = 0
        for group, oversize in groups():
            if made >= skip:  # fast-forward: batches before the resume point are never collated
                if perturb:  # the speed changes drawn in _utterances, made only for batches kept
                    group = [apply_speed(u) for u in group]
                crop_rng = np.random.default_rng([cfg.seed, self.epoch, self.rank, slot, 1, made])
                batch, cstats = collate(group, cfg.kind, cfg.max_sample_size, crop_rng)
                if aug is not None and aug.config.mixes:  # in place on the rows: the tensor shares their memory
                    mix_rng = np.random.default_rng([cfg.seed, self.epoch, self.rank, slot, MIX_STREAM, made])
                    aug.mix_rows(batch.audio.numpy(), batch.lengths_list, mix_rng)
                pending.stats.add_batch(cstats, cfg.max_batch_samples, oversize)
                yield batch, pending.take()
            made += 1
            if made >= total:
                return
        if pending.stats.skipped:  # a single-pass stream: report skips met after the last batch
            yield None, pending.take()

    def _utterances(
        self, slot: int, num_slots: int, batcher: DurationBatcher, pending: "_Pending", aug: Augmenter | None,
    ) -> Iterator[Utterance]:
        cfg = self.config
        # one speed draw per decoded utterance, in decode order: a resume decodes the epoch again
        # from its start, so it draws the same factors (module docstring of augment.py)
        speed_rng = np.random.default_rng([cfg.seed, self.epoch, self.rank, slot, SPEED_STREAM])
        perturb = aug is not None and aug.config.perturbs_speed
        # the duration filters of training streams (StreamConfig.min/max_duration_s), in samples
        min_samples = cfg.min_duration_s * SAMPLE_RATE
        max_samples = math.inf if cfg.max_duration_s is None else cfg.max_duration_s * SAMPLE_RATE
        pass_ = 0
        while True:
            order = shard_order(self.urls, cfg.seed, self.epoch, pass_, cfg.shard_shuffle)
            urls, splits = slot_shards(order, self.rank, self.world_size, slot, num_slots)
            seen = [0] * len(splits)  # samples met by each sample-level split stage
            usable = 0
            unreachable: list[tuple[str, str]] = []  # (url, why) of this pass
            for url in urls:
                pending.stats.opened_shards.add(url)
                for raw in self._read_shard(url, pending, unreachable):
                    if not _keep(seen, splits):
                        continue
                    try:
                        utt = S.decode_sample(raw)
                    except S.SampleError as e:
                        pending.stats.skip(e.reason, url, e.detail)
                        continue
                    if not cfg.loop:  # single pass (evaluation): score everything decodable
                        yield utt
                        continue
                    if perturb:  # drawn here, applied at collation; the filters and the batcher count the new length
                        utt = aug.draw_speed(utt, speed_rng)
                    n = utt.num_samples
                    if n < min_samples:
                        pending.stats.skip(S.TOO_SHORT, url, utt.key)
                    elif n > max_samples or not batcher.fits_alone(n):
                        pending.stats.skip(S.TOO_LONG, url, utt.key)
                    else:
                        usable += 1
                        yield utt
            if not cfg.loop:
                return
            if usable == 0 and len(unreachable) == len(urls):  # the likeliest cause first: a wrong URL
                url, why = unreachable[0]
                raise NoUsableData(
                    f"rank {self.rank} worker {slot}: no usable utterance in a full pass: none of its {len(urls)} "
                    f"shard(s) could be read ({UNREACHABLE_SHARD}; the first, {url}: {why}); check the shard URLs "
                    "(data.shards, data.shard_url_prefix) and that they open from this machine"
                )
            if usable == 0:  # looping on nothing would spin forever: fail loudly instead
                raise NoUsableData(
                    f"rank {self.rank} worker {slot}: no usable utterance in a full pass over {len(urls)} "
                    f"shard(s) (skipped: {pending.stats.skipped}); check the shards and the duration limits"
                )
            pass_ += 1

    def _read_shard(
        self, url: str, pending: "_Pending", unreachable: list[tuple[str, str]]
    ) -> Iterator[dict[str, Any]]:
        """The raw samples of one shard; a failure is counted once (``unreachable_shard`` when no
        sample came out and nothing could be read, else ``bad_shard``) and ends the shard."""
        damaged = False
        read = 0  # samples out of this shard so far

        def handler(exn: Exception) -> bool:
            nonlocal damaged
            if not damaged:  # a damaged tar may raise several times (member, then stream): count once
                damaged = True
                why = _unreachable(exn) if read == 0 else None
                if why is not None:
                    unreachable.append((url, why))
                    pending.stats.skip(UNREACHABLE_SHARD, url, why)
                else:
                    pending.stats.skip(S.BAD_SHARD, url, reason(exn))
            return True  # skip what is left of the damaged part and go on

        # WebDataset's own stages for one URL (StreamingOpen, tar_file_expander, group_by_keys: what
        # wds.WebDataset([url], shardshuffle=False) runs), with the stream of a URL read through a
        # command (curl, pipe:) under the read deadline; a local file cannot stall
        from webdataset.cache import StreamingOpen
        from webdataset.tariterators import group_by_keys, tar_file_expander

        streams = []

        def opened():
            for source in StreamingOpen(handler=handler)([url]):
                if "local_path" not in source and self.config.read_timeout_s:
                    source = {**source, "stream": DeadlineReader(source["stream"], self.config.read_timeout_s)}
                streams.append(source["stream"])
                yield source

        try:
            for raw in group_by_keys(tar_file_expander(opened(), handler=handler), handler=handler):
                read += 1
                yield raw
        finally:
            for stream in streams:
                stream.close()


def _unreachable(exn: Exception) -> str | None:
    """Why nothing could be read from a shard, if ``exn`` (met before its first sample) says so;
    None when bytes came but are not a tar (``bad_shard``).

    WebDataset appends the stream and the URL to an exception's ``args``; a ``pipe:`` URL and
    http(s)/gs URLs are read from a command (``webdataset.gopen.Pipe``) whose exit status it
    loses when the command wrote nothing (a ``ReadError('empty file')``): it is read back here."""
    import subprocess
    import tarfile

    if isinstance(exn, ReadTimeout):
        return str(exn.strerror)
    pipe = next((a for a in exn.args if hasattr(a, "proc") and hasattr(a.proc, "wait")), None)
    empty = isinstance(exn, tarfile.ReadError) and "empty file" in str(exn.args[0] if exn.args else "")
    if pipe is not None and (empty or isinstance(exn, OSError)):
        try:
            status = pipe.proc.wait(timeout=10)  # it closed its output: it has exited, or soon will
        except subprocess.TimeoutExpired:  # a command that closed its output but runs on
            status = None
        # a pipe: URL's shell command is the URL itself; http(s)/gs run curl/gsutil, named here
        cmd = pipe.args[0][0] if pipe.args and pipe.args[0] else ""
        program = cmd[0] if isinstance(cmd, (list, tuple)) and cmd else "the command"
        if status is None:
            return f"{program} wrote nothing and did not exit"
        if status == 0:
            return f"{program} exited with status 0 but wrote nothing"
        meaning = _CURL_EXITS.get(status) if program == "curl" else None
        # not "before writing a byte": whether WebDataset sees the exit status (OSError) or the end
        # of the stream (ReadError) first is a race, and an OSError may come after a few bytes
        return (f"{program} exited with status {status}{f' ({meaning})' if meaning else ''} "
                "before the shard's first sample")
    if pipe is None and isinstance(exn, OSError):  # opening a path failed: FileNotFoundError, PermissionError ...
        return f"{type(exn).__name__}: {exn.strerror or exn}"
    if isinstance(exn, ValueError) and "no gopen handler" in str(exn):  # a scheme webdataset does not open
        return f"webdataset cannot open this URL ({exn.args[0]})"
    return None


class _Pending:
    """The statistics not yet reported; each yielded batch carries them away (``take``)."""

    def __init__(self) -> None:
        self.stats = StreamStats()

    def take(self) -> StreamStats:
        out, self.stats = self.stats, StreamStats()
        return out


def _keep(seen: list[int], splits: list[tuple[int, int]]) -> bool:
    """Apply the sample-level splits in order; each stage counts the samples that reach it."""
    for i, (stride, offset) in enumerate(splits):
        k = seen[i]
        seen[i] = k + 1
        if k % stride != offset:
            return False
    return True
