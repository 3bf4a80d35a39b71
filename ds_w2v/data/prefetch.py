"""The trainer's batch feed: a loader's batches epoch after epoch, optionally one batch ahead on the device.

::

    feed = BatchFeed(loader, torch.device("cuda", 0), prefetch=True)
    batch = next(feed)            # already on the GPU; the next one is being copied meanwhile
    ckpt["data"] = feed.state_dict()   # the position after the batches handed out, not read

With ``prefetch`` the feed reads one batch ahead and, on a GPU, copies it from pinned host
memory with a non-blocking copy on a side CUDA stream, so the host-to-device transfer of batch
``n + 1`` overlaps the compute of batch ``n``. The consuming (current) stream waits for that copy
(``wait_stream``) when the batch is handed out, and the batch's tensors are marked as used by it
(``record_stream``), so the caching allocator does not recycle their memory, allocated on the
side stream, while the current stream still reads them. Both ``audio`` and ``lengths`` are copied
(the model reads the lengths on the device); the batch keeps the lengths as host integers too
(``Batch.host_lengths``), so the trainer's audio-seconds and FLOP counts never wait on the device.

The loader counts the batches it has yielded; the feed holds one of them unconsumed, so the
position it saves is the one recorded when the last *handed-out* batch left the loader: a resume
starts at the first batch training did not see, bit-exact with an uninterrupted run. On CPU the
batches pass through unchanged (read one ahead; a CPU "copy" is the same tensors).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from ds_w2v.data.batching import Batch
from ds_w2v.data.loader import StreamingLoader


class BatchFeed:
    """``next(feed)``: the loader's next batch, moving the loader to the next epoch at an epoch's
    end; ``state_dict``/``load_state_dict``: the loader's position as training consumed it."""

    def __init__(self, loader: StreamingLoader, device: torch.device, prefetch: bool = False):
        self.loader = loader
        self.device = torch.device(device)
        self.prefetch = prefetch
        self.copy_stream = torch.cuda.Stream(self.device) if prefetch and self.device.type == "cuda" else None
        self._epoch_iter: Iterator[Batch] | None = None
        # read ahead, not handed out yet: (batch, loader.epoch, loader.state_dict()) as they were
        # right after the loader yielded it
        self._ahead: tuple[Batch, int, dict[str, Any]] | None = None
        self._consumed: tuple[int, dict[str, Any]] | None = None  # the same, for the last handed-out batch

    def __iter__(self) -> BatchFeed:
        return self

    def __next__(self) -> Batch:
        if not self.prefetch:
            return self._read()
        entry = self._ahead if self._ahead is not None else self._read_ahead()
        batch, epoch, position = entry
        if self.copy_stream is not None:
            current = torch.cuda.current_stream(self.device)
            current.wait_stream(self.copy_stream)  # its copy (and the earlier ones) done before use
            batch.audio.record_stream(current)
            batch.lengths.record_stream(current)
        self._consumed = (epoch, position)
        self._ahead = self._read_ahead()  # the next copy starts now, before this batch's compute
        return batch

    def _read(self) -> Batch:
        """The loader's next host batch, epoch after epoch (a training loader never ends)."""
        while True:
            if self._epoch_iter is None:
                self._epoch_iter = iter(self.loader)
            try:
                return next(self._epoch_iter)
            except StopIteration:
                self._epoch_iter = None

    def _read_ahead(self) -> tuple[Batch, int, dict[str, Any]]:
        batch = self._read()
        epoch, position = self.loader.epoch, self.loader.state_dict()
        if self.copy_stream is not None:
            if not batch.audio.is_pinned():  # workers pin with StreamConfig.pin_memory; else here
                batch = batch.pin_memory()
            with torch.cuda.stream(self.copy_stream):
                batch = batch.to(self.device, non_blocking=True)
        return batch, epoch, position

    # -- the consumed position ------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        """The loader's epoch as of the last batch handed out."""
        return self._consumed[0] if self._ahead is not None else self.loader.epoch

    def state_dict(self) -> dict[str, Any]:
        """:meth:`StreamingLoader.state_dict` as of the last batch handed out (a batch read ahead
        is not counted: a resume yields it first)."""
        return dict(self._consumed[1]) if self._ahead is not None else self.loader.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the loader's position; a batch read ahead is dropped (the position precedes it)."""
        self.loader.load_state_dict(state)
        self._epoch_iter = self._ahead = self._consumed = None
