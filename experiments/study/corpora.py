"""The study's corpora, made with the repo's own tools: ``ds-w2v synth`` (espeak-ng, offline)
then ``ds-w2v prepare``, each a subprocess through the real entry point, skipped when its
``dataset.json`` is already there (a rerun reuses them).

* ``timit``: the labelled read speech (TIMIT layout: train / dev / test / test_noncore, phones
  with timings), as the demo's;
* one folder per :class:`~experiments.study.plan.UnlabeledSet`: more read speech with its own seed
  (other voices and sentences), prepared with every TEST speaker in ``test`` and no dev split,
  used only as unlabelled pretraining audio (all its splits; its transcripts are never read);
* ``ravdess``: the emotion corpus (RAVDESS layout: actors 1-18 train, 19-20 dev, 21-24 test);
* ``<corpus>_train10``: a seeded 10 % of a corpus's train utterances
  (:func:`ds_w2v.data.subset.subset_split`, as the demo's).

The synthetic voices come from one finite pool (espeak accents x variants, each speaker with
its own prosody), so an unlabelled speaker can share accent and variant with a labelled test
speaker; no audio file is shared.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ds_w2v.data.shard_format import INDEX_NAME, read_index
from .plan import Corpora



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
