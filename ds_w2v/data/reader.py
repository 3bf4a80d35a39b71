"""The decoded utterances of one split of a prepared directory, read once in shard order.

For the readers that want a split's utterances rather than batches: the probes
(:func:`ds_w2v.probe.utterances.read_utterances`), shard-backed noise
(:meth:`ds_w2v.data.augment.NoiseBank.load`) and ``ds-w2v bench decode``. The training stream
reads its shards itself (``stream.py``: shuffled, split over ranks and workers, every skip
counted in its statistics).

A damaged sample (:class:`~ds_w2v.data.samples.SampleError`) or a shard that cannot be read is
described in one line naming the shard's URL and the reason::

    data/timit/train-000003.tar: bad_audio: train_fcjf0_sx37.npy: ValueError: not a .npy entry (bad magic)
    data/timit/train-000004.tar: cannot read the shard (ReadError: unexpected end of data ...)

which :func:`split_utterances` raises as a ``ValueError``, or appends to a list and goes on.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from ds_w2v.data.index import read_split
from ds_w2v.data.samples import SampleError, decode_sample

if TYPE_CHECKING:
    from ds_w2v.data.batching import Utterance


def split_utterances(
    shard_dir: str | Path, split: str, *, limit: int | None = None, damaged: list[str] | None = None,
) -> Iterator[Utterance]:
    """The decoded utterances of ``split`` in ``shard_dir``, in shard order (the index's order,
    each shard's samples as written), at most ``limit`` of them (None: all).

    With ``damaged=None`` the first damaged sample or unreadable shard raises ``ValueError`` in
    one line naming the shard's URL and the reason (module docstring). With a list, each is
    appended to it as that line instead and skipped: the rest of the shard (what can still be
    read of it) and the next shards are read on. A shard is reported once, with its first
    error (a damaged tar may raise more than once: a member, then the stream).

    The index is read now: an unknown split or a bad ``dataset.json`` raises here
    (:func:`~ds_w2v.data.index.read_split`); the shards are read as the iterator is consumed,
    and no further than ``limit`` needs.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 (None: all), got {limit}")
    return _utterances(read_split(shard_dir, split).urls, limit, damaged)


def _utterances(urls: Sequence[str], limit: int | None, damaged: list[str] | None) -> Iterator[Utterance]:
    count = 0
    for url in urls:
        for raw in _raw_samples(url, damaged):
            try:
                utt = decode_sample(raw)
            except SampleError as e:
                if damaged is None:
                    raise ValueError(f"{url}: {e}") from None
                damaged.append(f"{url}: {e}")
                continue
            yield utt
            count += 1
            if limit is not None and count >= limit:
                return


def _raw_samples(url: str, damaged: list[str] | None) -> Iterator[dict[str, Any]]:
    """The raw samples of one shard, read by WebDataset as the training stream reads it."""
    import webdataset as wds

    reported = False

    def skip(exn: Exception) -> bool:  # WebDataset's handler: True = skip the damaged part, go on
        nonlocal reported
        if not reported:
            reported = True
            damaged.append(_unreadable(url, exn))
        return True

    # seed=0: WebDataset would otherwise draw a seed from the global `random` state
    dataset = wds.WebDataset([url], handler=wds.reraise_exception if damaged is None else skip, shardshuffle=False,
                             nodesplitter=None, workersplitter=None, empty_check=False, seed=0)
    try:
        yield from dataset
    except Exception as e:  # a tar that cannot be read: tarfile / OSError from webdataset
        if damaged is None:
            raise ValueError(_unreadable(url, e)) from None
        if not reported:  # what the handler did not see: the shard ends here
            damaged.append(_unreadable(url, e))


def _unreadable(url: str, exn: Exception) -> str:
    return f"{url}: cannot read the shard ({type(exn).__name__}: {exn})"
