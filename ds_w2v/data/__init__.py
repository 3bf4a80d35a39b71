"""Data: corpora on disk -> WebDataset shards (``prepare``) -> streaming batches (``loader``).

The streaming API is exported lazily (PEP 562), so that ``import ds_w2v.data.shard_format``
(the writer's only need) does not import torch.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    # batching
    "Batch": "ds_w2v.data.batching",
    "Utterance": "ds_w2v.data.batching",
    "DurationBatcher": "ds_w2v.data.batching",
    "collate": "ds_w2v.data.batching",
    "geometric_buckets": "ds_w2v.data.batching",
    "PRETRAIN": "ds_w2v.data.batching",
    "FINETUNE": "ds_w2v.data.batching",
    # the per-rank pipeline
    "StreamConfig": "ds_w2v.data.stream",
    "StreamStats": "ds_w2v.data.stream",
    "ShardStream": "ds_w2v.data.stream",
    "batches_per_epoch": "ds_w2v.data.stream",
    "shard_order": "ds_w2v.data.stream",
    "slot_shards": "ds_w2v.data.stream",
    # training-time augmentation
    "AugmentConfig": "ds_w2v.data.augment",
    # the trainer-facing loader
    "StreamingLoader": "ds_w2v.data.loader",
    "build_loader": "ds_w2v.data.loader",
    # the index
    "SplitIndex": "ds_w2v.data.index",
    "read_split": "ds_w2v.data.index",
    # a split's utterances, read once in shard order
    "split_utterances": "ds_w2v.data.reader",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
