"""The study's corpora, made with the repo's own tools: ``ds-w2v synth`` (espeak-ng, offline)
then ``ds-w2v prepare``, each a subprocess through the real entry point, skipped when its
``dataset.json`` is already there (a rerun reuses them).

* ``timit``: the labelled read speech (TIMIT layout: train / dev / test / test_noncore, phones
  with timings), as the demo's;
* one folder per :class:`~ds_w2v.study.plan.UnlabeledSet`: more read speech with its own seed
  (other voices and sentences), prepared with every TEST speaker in ``test`` and no dev split,
  used only as unlabelled pretraining audio (all its splits; its transcripts are never read);
* ``ravdess``: the emotion corpus (RAVDESS layout: actors 1-18 train, 19-20 dev, 21-24 test);
* ``<corpus>_train10``: a seeded 10 % of a corpus's train utterances (:func:`subset_shards`).

The synthetic voices come from one finite pool (espeak accents x variants, each speaker with
its own prosody), so an unlabelled speaker can share accent and variant with a labelled test
speaker; no audio file is shared.
"""
from __future__ import annotations

import json
import random
import subprocess
import sys
import tarfile
from pathlib import Path

from ..data.shard_format import INDEX_NAME, VOCAB_NAME, read_index
from .plan import Corpora

SUBSET_SEED = 0  # demo.subset_split's seed: the same 10 % of the read speech as the demo's ablation


def _cli(*args: str) -> None:
    cmd = [sys.executable, "-m", "ds_w2v", *args]
    print(f"  $ ds-w2v {' '.join(args)}", flush=True)
    subprocess.run(cmd, check=True)


def make_corpora(corpora: Corpora, root: Path, workers: int = 2) -> dict[str, Path]:
    """Synthesise and prepare every corpus of ``corpora`` under ``root`` (``corpora/``,
    ``shards/``); returns name -> prepared directory."""
    raw, shards = root / "corpora", root / "shards"
    w = ["--workers", str(workers)]
    out: dict[str, Path] = {}

    def build(name: str, synth: list[str], prepare: list[str]) -> None:
        dst = shards / name
        if not (dst / INDEX_NAME).is_file():
            _cli("synth", *synth, "--out", str(raw / name), *w, "--overwrite")
            _cli("prepare", *prepare, str(raw / name), "--out", str(dst), *w, "--overwrite", "--no-progress")
        out[name] = dst

    size = ["--speakers", str(corpora.timit_speakers), "--sentences-per-speaker", "4"] \
        if corpora.timit_speakers else ["--hours", f"{corpora.timit_hours:g}"]
    build("timit", ["timit", *size], ["--format", "timit"])
    for u in corpora.unlabeled:
        build(u.name, ["timit", "--speakers", str(u.speakers), "--sentences-per-speaker", str(u.sentences_per_speaker),
                       "--seed", str(u.seed)],
              ["--format", "timit", "--dev-percent", "0", "--timit-test", "all"])
    actors = ["--actors", corpora.ravdess_actors] if corpora.ravdess_actors else []
    build("ravdess", ["ravdess", *actors], ["--format", "ravdess"])
    return out


def unlabeled_entries(shards: dict[str, Path], labelled: str, names: tuple[str, ...]) -> list[str]:
    """``data.train`` of a pretraining: the labelled corpus's train split and every split of each
    unlabelled set, weighted by their audio (mix_alpha 1)."""
    entries = [f"{shards[labelled]}:train"]
    for name in names:
        entries += [f"{shards[name]}:{split}" for split in sorted(read_index(shards[name])["splits"])]
    return entries


def subset_shards(src: Path, out: Path, fraction: float, seed: int = SUBSET_SEED, split: str = "train") -> Path:
    """A prepared copy of ``src`` whose ``split`` keeps a seeded ``fraction`` of its utterances,
    every other split the original's (its shards named by absolute path, not copied).

    The kept samples are copied byte for byte, so every record field survives (phones and their
    timings, labels); the choice is ``demo.subset_split``'s (``random.Random(seed).sample`` of
    the split's utterances in shard order), so the read speech's 10 % is the demo's. Written to
    a temporary folder and renamed: a half-written subset is never taken for a finished one."""
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
        import shutil

        shutil.rmtree(out)
    tmp.rename(out)
    return out
