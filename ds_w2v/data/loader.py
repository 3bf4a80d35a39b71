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
"""
from __future__ import annotations

import logging
from typing import Any, Iterator, Sequence

import torch
import torch.utils.data

from ds_w2v.data.batching import Batch
from ds_w2v.data.index import SplitIndex, read_split
from ds_w2v.data.stream import ShardStream, StreamConfig, StreamStats, batches_per_epoch

log = logging.getLogger(__name__)


def _passthrough(item: Any) -> Any:  # module level: DataLoader workers may need to pickle it
    return item


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
        self.epoch = 0
        self.batches_in_epoch = 0
        self.stats = StreamStats()
        """Everything streamed by this loader since it was built (all epochs, all workers)."""

    @classmethod
    def from_split(cls, split: SplitIndex, config: StreamConfig, **kwargs: Any) -> "StreamingLoader":
        return cls(split.urls, config, total_s=split.total_s, **kwargs)

    def __len__(self) -> int:
        """Batches per epoch on this rank (training streams only)."""
        if self.num_batches is None:
            raise TypeError("a single-pass (loop=False) stream has no fixed length")
        return self.num_batches

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch`` from its first batch at the next iteration."""
        self.epoch, self.batches_in_epoch = int(epoch), 0

    def __iter__(self) -> Iterator[Batch]:
        dataset = ShardStream(
            self.urls, self.config, rank=self.rank, world_size=self.world_size, epoch=self.epoch,
            num_batches=self.num_batches, skip=self.batches_in_epoch,
        )
        cfg = self.config
        if cfg.num_workers > 0:
            pairs = iter(torch.utils.data.DataLoader(
                dataset, batch_size=None, num_workers=cfg.num_workers, collate_fn=_passthrough,
                pin_memory=cfg.pin_memory, prefetch_factor=cfg.prefetch_factor,
            ))
        else:
            pairs = iter(dataset)
        for batch, delta in pairs:
            self.stats.merge(delta)
            if batch is None:  # skips met after the last batch of a single-pass stream
                continue
            self.batches_in_epoch += 1
            if cfg.pin_memory and cfg.num_workers == 0 and torch.cuda.is_available():
                batch = batch.pin_memory()
            yield batch
        if cfg.loop and self.batches_in_epoch != self.num_batches:
            raise RuntimeError(
                f"rank {self.rank}: epoch {self.epoch} ended after {self.batches_in_epoch} of "
                f"{self.num_batches} batches; the equal-count guarantee is broken"
            )
        self.set_epoch(self.epoch + 1)

    # -- resumable position -----------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The stream position, plus what defines the stream (checked on restore)."""
        epoch, done = self.epoch, self.batches_in_epoch
        if self.num_batches is not None and done >= self.num_batches:
            epoch, done = epoch + 1, 0  # saved after the last batch: the next epoch is next
        return {
            "epoch": epoch, "batches_in_epoch": done, "num_batches": self.num_batches,
            "seed": self.config.seed, "world_size": self.world_size,
            "num_workers": self.config.num_workers, "num_shards": len(self.urls),
        }

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Restore a position: the next batches are those the saved loader would have yielded.

        The stream is defined by the seed, world size, worker count, shard count and batch
        count; if one differs, ``strict`` raises, else the epoch is kept and the position
        scaled to the new epoch length (a warning says the batches are no longer the same).
        """
        mine = self.state_dict()
        changed = [k for k in ("seed", "world_size", "num_workers", "num_shards", "num_batches")
                   if k in state and state[k] != mine[k]]
        epoch, done = int(state["epoch"]), int(state["batches_in_epoch"])
        if changed:
            detail = ", ".join(f"{k}: saved {state[k]}, now {mine[k]}" for k in changed)
            if strict:
                raise ValueError(f"data stream state does not match this loader ({detail})")
            log.warning("data stream changed (%s): resuming epoch %d at a scaled position", detail, epoch)
            if self.num_batches and state.get("num_batches"):
                done = done * self.num_batches // int(state["num_batches"])
        self.epoch, self.batches_in_epoch = epoch, done
        if self.num_batches is not None and done >= self.num_batches:
            self.set_epoch(epoch + 1)


def build_loader(
    shard_dir: str, split: str, config: StreamConfig, *, rank: int | None = None,
    world_size: int | None = None, url_prefix: str | None = None,
) -> tuple[StreamingLoader, SplitIndex]:
    """The loader of ``split`` in a prepared directory, and the split's index (labels, vocab);
    ``url_prefix``: where its shards are read from (:func:`~ds_w2v.data.index.read_split`)."""
    index = read_split(shard_dir, split, url_prefix)
    return StreamingLoader.from_split(index, config, rank=rank, world_size=world_size), index
