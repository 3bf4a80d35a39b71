"""The loader a trainer holds: batches of one rank, epoch after epoch, with a resumable position.

::

    split = read_split("data/librispeech", "train")
    loader = StreamingLoader.from_split(split, StreamConfig(kind="pretrain", batch_s=87.5, num_workers=4))
    loader.load_state_dict(ckpt["data"])          # optional: resume mid-epoch
    for batch in loader:                          # exactly len(loader) batches on every rank
        ...                                       # batch.to("cuda")
        ckpt["data"] = loader.state_dict()        # {"epoch": 3, "batches_in_epoch": 1250, ...}

``for batch in loader`` runs the current epoch from the saved position to its end, then moves
the loader to the next epoch. Rank and world size come from ``torch.distributed`` when it is
initialised, unless given.

**Another world size.** A position restored by a loader with the saved world size and worker
count is exact (the same batches follow). With another world size or worker count the saved
epoch cannot be continued batch for batch (each rank's share of the shards changes), so the
rest of it is read from the shards *no rank had begun* by the save (``opened``, gathered over the
ranks with :func:`merge_rank_states` before a checkpoint is written), split over the new ranks,
for ``batches_per_epoch`` of their audio; the next epoch is a normal one. No shard is read twice
in the epoch; the unread part of the shards open at the save (and the shuffle buffers) is left
out of it.

**Workers.** With ``num_workers > 0`` a training stream's ``DataLoader`` workers are started once
and kept from epoch to epoch (``persistent_workers``): the epoch, its batch count, the resume
position and its shards are written to a small shared-memory tensor before each epoch
(:class:`_EpochPlan`), and each worker reads it when the epoch's iteration starts. A new
``DataLoader`` per epoch would start (fork, import, open shards) ``num_workers`` processes at
every epoch boundary: with short epochs, the data wait and end-to-end audio-s/s would measure
worker start-up. The batches are the same either way (each epoch's stream is a function of the
plan alone).
"""
from __future__ import annotations

import logging
import math
from typing import Any, Iterator, Sequence

import torch
import torch.utils.data

from ds_w2v.data.batching import Batch
from ds_w2v.data.index import SplitIndex, read_split
from ds_w2v.data.stream import ShardStream, StreamConfig, StreamStats, batches_per_epoch

log = logging.getLogger(__name__)


def _passthrough(item: Any) -> Any:  # module level: DataLoader workers may need to pickle it
    return item


class _EpochPlan(torch.utils.data.IterableDataset):
    """A training stream's epochs for persistent DataLoader workers: :meth:`set` (the loader, before
    each epoch) writes what defines the epoch into shared memory; a worker's iteration reads it
    when it starts (after the DataLoader's reset, so always the plan just written)."""

    _HEAD = 4  # epoch, batch count, batches to skip, number of shard indices that follow (-1: every shard)

    def __init__(self, urls: Sequence[str], config: StreamConfig, rank: int, world_size: int):
        super().__init__()
        self.urls, self.config, self.rank, self.world_size = list(urls), config, rank, world_size
        # int64 [4 + shards]; shared: forked (or spawned) workers see the loader's writes
        self.plan = torch.zeros(self._HEAD + len(self.urls), dtype=torch.int64).share_memory_()

    def set(self, epoch: int, num_batches: int, skip: int, shards: Sequence[int] | None) -> None:
        head = [epoch, num_batches, skip, -1 if shards is None else len(shards)]
        self.plan[: self._HEAD] = torch.tensor(head, dtype=torch.int64)
        if shards is not None:
            self.plan[self._HEAD: self._HEAD + len(shards)] = torch.tensor(list(shards), dtype=torch.int64)

    def stream(self) -> ShardStream:
        epoch, num_batches, skip, n = self.plan[: self._HEAD].tolist()
        urls = self.urls if n < 0 else [self.urls[i] for i in self.plan[self._HEAD: self._HEAD + n].tolist()]
        return ShardStream(urls, self.config, rank=self.rank, world_size=self.world_size, epoch=epoch,
                           num_batches=num_batches, skip=skip)

    def __iter__(self) -> Iterator[tuple[Batch, StreamStats]]:
        yield from self.stream()  # a generator: the plan is read at the worker's first batch request


def dist_rank_world(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """``(rank, world_size)``: the given values, else ``torch.distributed``'s, else ``(0, 1)``."""
    if rank is None or world_size is None:
        dist = torch.distributed
        initialised = dist.is_available() and dist.is_initialized()
        rank = rank if rank is not None else (dist.get_rank() if initialised else 0)
        world_size = world_size if world_size is not None else (dist.get_world_size() if initialised else 1)
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    return rank, world_size


class StreamingLoader:
    """Duration-budgeted batches over WebDataset shards for one rank (see ``docs/data_stream.md``).

    ``urls`` are anything WebDataset opens (paths, ``pipe:...``, ``https://...``; one that cannot be
    read is skipped and counted ``unreachable_shard``). With ``config.loop`` (training)
    each epoch yields exactly ``num_batches`` batches on every rank: given, or derived from
    ``total_s`` (audio seconds of the split) by :func:`~ds_w2v.data.stream.batches_per_epoch`.
    Without it (evaluation) an epoch is one pass that yields every decodable utterance of the
    rank's share once, unfiltered; ``stats`` then says what was scored (``num_utterances``,
    ``audio_s``, ``num_oversize``) and what could not be (``skipped``, all corrupt samples).
    """

    def __init__(
        self, urls: Sequence[str], config: StreamConfig, *, total_s: float | None = None,
        num_batches: int | None = None, rank: int | None = None, world_size: int | None = None,
        shard_seconds: Sequence[float] | None = None,
    ):
        self.urls = list(urls)
        if not self.urls:
            raise ValueError("StreamingLoader: no shard URLs")
        self.config = config
        self.rank, self.world_size = dist_rank_world(rank, world_size)
        if config.loop and num_batches is None:
            if total_s is None:
                raise ValueError("StreamingLoader: give total_s (from the index) or num_batches")
            num_batches = batches_per_epoch(total_s, config.batch_s, self.world_size, config.fill)
        self.num_batches = num_batches
        self.shard_seconds = None if shard_seconds is None else [float(x) for x in shard_seconds]
        if self.shard_seconds is not None and len(self.shard_seconds) != len(self.urls):
            raise ValueError(f"StreamingLoader: {len(self.shard_seconds)} shard durations for {len(self.urls)} shards")
        self._url_index = {u: i for i, u in enumerate(self.urls)}
        self.epoch = 0
        self.batches_in_epoch = 0
        self.rest: tuple[list[int], int] | None = None
        """The current epoch's (shards, batches) when it is the rest of an epoch begun on another
        world size (module docstring); None for a normal epoch (all shards, ``num_batches``)."""
        self.opened: set[int] = set()
        """Indices of the shards begun in the current epoch, as of the batches yielded."""
        self.stats = StreamStats()
        """Everything streamed by this loader since it was built (all epochs, all workers)."""
        self._plan: _EpochPlan | None = None
        self._workers: torch.utils.data.DataLoader | None = None
        """A training stream's DataLoader, its workers kept across epochs (module docstring)."""

    @classmethod
    def from_split(cls, split: SplitIndex, config: StreamConfig, **kwargs: Any) -> "StreamingLoader":
        return cls(split.urls, config, total_s=split.total_s, shard_seconds=split.shard_seconds, **kwargs)

    def __len__(self) -> int:
        """Batches per epoch on this rank (training streams only)."""
        if self.num_batches is None:
            raise TypeError("a single-pass (loop=False) stream has no fixed length")
        return self.num_batches

    @property
    def epoch_batches(self) -> int | None:
        """Batches of the current epoch on this rank: ``num_batches``, or the rest's."""
        return self.num_batches if self.rest is None else self.rest[1]

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch`` (a normal one: every shard) from its first batch at the next iteration."""
        self.epoch, self.batches_in_epoch = int(epoch), 0
        self.rest, self.opened = None, set()

    def __iter__(self) -> Iterator[Batch]:
        urls = self.urls if self.rest is None else [self.urls[i] for i in self.rest[0]]
        dataset = ShardStream(  # built here also when workers stream: a bad plan is refused in this process
            urls, self.config, rank=self.rank, world_size=self.world_size, epoch=self.epoch,
            num_batches=self.epoch_batches, skip=self.batches_in_epoch,
        )
        cfg = self.config
        if cfg.num_workers > 0 and cfg.loop:
            self._plan_workers().set(self.epoch, self.epoch_batches, self.batches_in_epoch,
                                     None if self.rest is None else self.rest[0])
            pairs = iter(self._workers)  # the same workers, reset to the plan just written
        elif cfg.num_workers > 0:  # a single pass (evaluation): one epoch per loader, no workers to keep
            pairs = iter(torch.utils.data.DataLoader(
                dataset, batch_size=None, num_workers=cfg.num_workers, collate_fn=_passthrough,
                pin_memory=cfg.pin_memory, prefetch_factor=cfg.prefetch_factor, generator=self._seeds(),
            ))
        else:
            pairs = iter(dataset)
        for batch, delta in pairs:
            self.stats.merge(delta)
            self.opened.update(self._url_index[u] for u in delta.opened_shards)
            if batch is None:  # skips met after the last batch of a single-pass stream
                continue
            self.batches_in_epoch += 1
            if cfg.pin_memory and cfg.num_workers == 0 and torch.cuda.is_available():
                batch = batch.pin_memory()
            yield batch
        if cfg.loop and self.batches_in_epoch != self.epoch_batches:
            raise RuntimeError(
                f"rank {self.rank}: epoch {self.epoch} ended after {self.batches_in_epoch} of "
                f"{self.epoch_batches} batches; the equal-count guarantee is broken"
            )
        self.set_epoch(self.epoch + 1)

    def _seeds(self) -> torch.Generator:
        """The DataLoader's own generator for its workers' base seed: without one it draws from the
        global torch RNG at every iterator it starts, so the training's random stream (masks,
        dropout) would depend on when epochs start and runs resume. The stream itself uses no
        worker seed (its randomness is seeded from ``config.seed``, epoch, rank and slot)."""
        return torch.Generator().manual_seed(self.config.seed)

    def _plan_workers(self) -> _EpochPlan:
        """The shared epoch plan, and the persistent-worker DataLoader reading it (started once)."""
        if self._plan is None or self._workers is None:
            cfg = self.config
            self._plan = _EpochPlan(self.urls, cfg, self.rank, self.world_size)
            self._workers = torch.utils.data.DataLoader(
                self._plan, batch_size=None, num_workers=cfg.num_workers, collate_fn=_passthrough,
                pin_memory=cfg.pin_memory, prefetch_factor=cfg.prefetch_factor, persistent_workers=True,
                generator=self._seeds(),
            )
        return self._plan

    def close(self) -> None:
        """Stop the kept workers now (they stop anyway when the loader is collected)."""
        workers, self._workers, self._plan = self._workers, None, None
        iterator = getattr(workers, "_iterator", None)
        if iterator is not None and hasattr(iterator, "_shutdown_workers"):
            iterator._shutdown_workers()

    # -- resumable position -----------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The stream position, plus what defines the stream (checked on restore) and the shards
        begun in the epoch (this rank's; :func:`merge_rank_states` unions the ranks')."""
        epoch, done, rest, opened = self.epoch, self.batches_in_epoch, self.rest, sorted(self.opened)
        if self.epoch_batches is not None and done >= self.epoch_batches:
            epoch, done, rest, opened = epoch + 1, 0, None, []  # saved after the last batch: the next epoch is next
        return {
            "epoch": epoch, "batches_in_epoch": done, "num_batches": self.num_batches,
            "seed": self.config.seed, "world_size": self.world_size,
            "num_workers": self.config.num_workers, "num_shards": len(self.urls),
            "rest": None if rest is None else {"shards": list(rest[0]), "num_batches": rest[1]},
            "opened": opened,
        }

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Restore a position: the next batches are those the saved loader would have yielded.

        The stream is defined by the seed, shard count, world size, worker count and batch count.
        A seed or shard count that differs: ``strict`` raises, else the epoch is kept and the
        position scaled to the new epoch length (a warning says the batches are no longer the
        same). Another world size or worker count (the batch count follows from them): the rest of
        the saved epoch is read from the shards no rank had begun (module docstring), with a log
        line; a state saved without that record starts the next epoch, with a warning.
        """
        mine = self.state_dict()
        epoch, done = int(state["epoch"]), int(state["batches_in_epoch"])
        changed = [k for k in ("seed", "num_shards") if k in state and state[k] != mine[k]]
        regrouped = [k for k in ("world_size", "num_workers") if k in state and state[k] != mine[k]]
        if not changed and not regrouped and "num_batches" in state and state["num_batches"] != mine["num_batches"]:
            changed.append("num_batches")  # the same world, another epoch length (data.batch_s, fill)
        if changed:
            detail = ", ".join(f"{k}: saved {state[k]}, now {mine[k]}" for k in changed)
            if strict:
                raise ValueError(f"data stream state does not match this loader ({detail})")
            log.warning("data stream changed (%s): resuming epoch %d at a scaled position", detail, epoch)
            if self.num_batches and state.get("num_batches"):
                done = done * self.num_batches // int(state["num_batches"])
            self.set_epoch(epoch)
            self.batches_in_epoch = done
        elif regrouped:
            self._continue_elsewhere(state, regrouped)
        else:
            self.set_epoch(epoch)
            rest = state.get("rest")
            self.rest = None if rest is None else ([int(i) for i in rest["shards"]], int(rest["num_batches"]))
            self.batches_in_epoch = done
            self.opened = {int(i) for i in state.get("opened", ())}
        if self.epoch_batches is not None and self.batches_in_epoch >= self.epoch_batches:
            self.set_epoch(self.epoch + 1)

    def _continue_elsewhere(self, state: dict[str, Any], regrouped: list[str]) -> None:
        """The rest of a saved epoch on another world size / worker count (module docstring)."""
        epoch = int(state["epoch"])
        now = {"world_size": self.world_size, "num_workers": self.config.num_workers}
        detail = ", ".join(f"{k} {state[k]} -> {now[k]}" for k in regrouped)
        if int(state["batches_in_epoch"]) == 0 and not state.get("rest"):  # saved at an epoch's start
            self.set_epoch(epoch)
            return
        if "opened" not in state:
            log.warning("data stream regrouped (%s) from a checkpoint that does not record the shards begun: "
                        "epoch %d is left and epoch %d starts", detail, epoch, epoch + 1)
            self.set_epoch(epoch + 1)
            return
        rest = state.get("rest")
        epoch_shards = list(range(len(self.urls))) if rest is None else [int(i) for i in rest["shards"]]
        opened = {int(i) for i in state["opened"]}
        left = [i for i in epoch_shards if i not in opened]
        seconds = self.shard_seconds
        if seconds is None:  # no per-shard durations: the shards' share of the split's batches
            batches = (self.num_batches or 0) * len(left) // max(1, len(self.urls))
        else:
            left_s = sum(seconds[i] for i in left)
            batches = math.floor(left_s / (self.world_size * self.config.batch_s) * self.config.fill) if left else 0
        self.set_epoch(epoch)
        if batches < 1:
            log.info("data stream regrouped (%s): no unread shard left in epoch %d (%d of %d begun); epoch %d starts",
                     detail, epoch, len(opened), len(epoch_shards), epoch + 1)
            self.set_epoch(epoch + 1)
            return
        self.rest, self.opened = (left, batches), set(opened)
        log.info("data stream regrouped (%s): the rest of epoch %d is %d unread shard(s) of %d, %d batch(es) per rank",
                 detail, epoch, len(left), len(epoch_shards), batches)


def merge_rank_states(states: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One position for a checkpoint from every rank's ``state_dict()`` (rank order): rank 0's,
    with the shards begun in the epoch by any rank; a mix's (``kind: "mix"``) source by source.
    The ranks agree on everything else (the position is a function of the update count)."""
    first = dict(states[0])
    if first.get("kind") == "mix":
        first["loaders"] = [merge_rank_states([s["loaders"][k] for s in states]) for k in range(len(first["loaders"]))]
        return first
    if "opened" in first:
        first["opened"] = sorted(set().union(*(s.get("opened", ()) for s in states)))
    return first


def build_loader(
    shard_dir: str, split: str, config: StreamConfig, *, rank: int | None = None,
    world_size: int | None = None, url_prefix: str | None = None,
) -> tuple[StreamingLoader, SplitIndex]:
    """The loader of ``split`` in a prepared directory, and the split's index (labels, vocab);
    ``url_prefix``: where its shards are read from (:func:`~ds_w2v.data.index.read_split`)."""
    index = read_split(shard_dir, split, url_prefix)
    return StreamingLoader.from_split(index, config, rank=rank, world_size=world_size), index
