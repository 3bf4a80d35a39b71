"""A labelled-budget subset of a prepared corpus: the demo's and the study's "10 % of the labels"
rows (``subset_split``), a prepared directory that any command reads as it reads the original."""
from __future__ import annotations

import json
import random
import shutil
import tarfile
from pathlib import Path

from .shard_format import INDEX_NAME, VOCAB_NAME, read_index


def subset_split(src: Path, out: Path, fraction: float, seed: int = 0, split: str = "train") -> Path:
    """A prepared copy of ``src`` whose ``split`` keeps a seeded ``fraction`` of its utterances,
    every other split the original's (its shards named by absolute path, not copied).

    The kept samples are copied byte for byte, so every record field survives (phones and their
    timings, labels); the choice is ``random.Random(seed).sample`` of the split's utterances in
    shard order. Written to a temporary folder and renamed: a half-written subset is never taken
    for a finished one."""
    if (out / INDEX_NAME).is_file():
        return out
    index = read_index(src)
    info = index["splits"][split]
    samples: list[tuple[Path, str, dict]] = []  # shard, sample key, record; in shard order
    shards = [Path(n) if Path(n).is_absolute() else src / n for n in info["shards"]]
    for shard in shards:
        with tarfile.open(shard) as tar:
            for member in tar:
                if member.name.endswith(".json"):
                    samples.append((shard, member.name[: -len(".json")], json.loads(tar.extractfile(member).read())))
    rng = random.Random(seed)
    keep = {(s[0], s[1]) for s in rng.sample(samples, max(1, round(fraction * len(samples))))}
    tmp = out.with_name(out.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    shard_name = f"{split}-000000.tar"
    seconds = sum(float(r["duration_s"]) for shard, key, r in samples if (shard, key) in keep)
    count = len(keep)
    with tarfile.open(tmp / shard_name, "w") as dst:
        for shard in shards:
            with tarfile.open(shard) as tar:
                for member in tar:
                    if (shard, member.name.split(".", 1)[0]) in keep:
                        dst.addfile(member, tar.extractfile(member))
    splits = {}
    for name, entry in index["splits"].items():
        if name == split:
            splits[name] = {**entry, "shards": [shard_name], "num_samples": count, "hours": round(seconds / 3600, 4),
                            "shard_num_samples": [count], "shard_seconds": [round(seconds, 3)]}
        else:
            splits[name] = {**entry, "shards": [str((src / s).resolve()) if not Path(s).is_absolute() else s
                                                for s in entry["shards"]]}
    subset = {**index, "splits": splits,
              "subset": {"of": str(src.resolve()), "split": split, "fraction": fraction, "seed": seed, "kept": count,
                         "from": len(samples)}}
    (tmp / INDEX_NAME).write_text(json.dumps(subset, indent=1))
    if (src / VOCAB_NAME).is_file():
        (tmp / VOCAB_NAME).write_text((src / VOCAB_NAME).read_text())
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out
