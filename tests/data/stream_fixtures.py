"""Test shards for the streaming loader, written here (not by ``prepare``) to pin the contract.

``write_split`` writes ``{split}-{i:06d}.tar`` shards with ``webdataset.ShardWriter`` and
:func:`ds_w2v.data.shard_format.encode_audio`, and a ``dataset.json`` that follows the contract.
Sample ``s{shard}_{j}`` holds a recognisable waveform: its samples are ``(shard*1000 + j) % 30000``
plus a ramp, so a test can tell which utterance (and which crop) ended up in a batch.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from ds_w2v.data.shard_format import INDEX_NAME, SAMPLE_RATE, encode_audio

LABELS = ("angry", "calm", "happy")
WORLD_SIZE = 2  # of the distributed test


def utterance_pcm(shard: int, j: int, num_samples: int) -> np.ndarray:
    base = (shard * 1000 + j) % 30000
    return (base + np.arange(num_samples) % 100).astype(np.int16)


def write_split(
    out: Path, split: str, durations_s: Sequence[Sequence[float]], codec: str = "npy",
    index: dict | None = None,
) -> dict:
    """One shard per inner list of durations; returns (and merges into ``index``) the index."""
    import webdataset as wds

    out.mkdir(parents=True, exist_ok=True)
    names, shard_seconds, shard_counts = [], [], []
    for shard, durs in enumerate(durations_s):
        name = f"{split}-{shard:06d}.tar"
        names.append(name)
        with wds.TarWriter(str(out / name)) as sink:
            for j, dur in enumerate(durs):
                n = int(round(dur * SAMPLE_RATE))
                key = f"{split}_s{shard}_{j}"
                ext, data = encode_audio(utterance_pcm(shard, j, n), codec)
                record = {
                    "id": key, "duration_s": n / SAMPLE_RATE, "num_samples": n, "speaker": f"spk{j % 3}",
                    "text": f"utterance {j} of shard {shard}", "phones": None, "phone_spans": None,
                    "label": LABELS[(shard + j) % len(LABELS)], "source": f"/src/{key}.wav", "meta": {},
                }
                sink.write({"__key__": key, ext: data, "json": json.dumps(record).encode()})
        shard_seconds.append(sum(round(d * SAMPLE_RATE) for d in durs) / SAMPLE_RATE)
        shard_counts.append(len(durs))
    index = index or {
        "format": 1, "sample_rate": SAMPLE_RATE, "audio_codec": codec, "splits": {},
        "labels": list(LABELS), "vocab": {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4},
        "rejects": {}, "source": {"format": "test", "path": str(out)},
    }
    index["splits"][split] = {
        "shards": names, "num_samples": sum(shard_counts), "hours": sum(shard_seconds) / 3600,
        "shard_num_samples": shard_counts, "shard_seconds": shard_seconds,
    }
    (out / INDEX_NAME).write_text(json.dumps(index, indent=1))
    return index


def random_durations(seed: int, counts: Sequence[int], low_s: float = 0.5, high_s: float = 6.0) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    return [list(np.round(rng.uniform(low_s, high_s, n), 3)) for n in counts]


def distributed_rank_main(rank: int, shard_dir: str, init_file: str, out_dir: str) -> None:
    """One rank of test_stream_distributed (here, not in the test module, so that a spawned
    process can import it whatever the working directory)."""
    import torch
    import torch.distributed as dist

    from ds_w2v.data import StreamConfig, build_loader

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD_SIZE)
    try:
        # rank and world size are read from torch.distributed
        loader, _ = build_loader(shard_dir, "train", StreamConfig(kind="finetune", batch_s=6.0, shuffle_buffer=8))
        counts, shards, ids = [], [], []
        for _epoch in range(2):
            n = 0
            for batch in loader:
                # a collective per batch, like a DDP/DeepSpeed step: hangs if counts differ
                total = torch.tensor([batch.num_audio_s])
                dist.all_reduce(total)
                n += 1
                shards.append(sorted({i.split("_")[1] for i in batch.ids}))
                ids.append(batch.ids)
            counts.append(n)
        everyone = [None] * WORLD_SIZE
        dist.all_gather_object(everyone, counts)
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(
            {"counts": counts, "all_counts": everyone, "num_batches": len(loader), "shards": shards, "ids": ids}
        ))
    finally:
        dist.destroy_process_group()
