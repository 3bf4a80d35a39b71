"""A folder of audio without labels, for self-supervised pretraining.

Every file under SRC (recursively, links followed once) with an audio extension
(:data:`ds_w2v.data.audio.AUDIO_EXTENSIONS`) is an utterance of split ``train``;
``valid_percent`` > 0 moves that share of the files, chosen by a seeded hash of their relative
paths, to ``dev`` (what fairseq's ``wav2vec_manifest.py --valid-percent`` does at random).
"""
from __future__ import annotations

from pathlib import Path

from ds_w2v.data.audio import AUDIO_EXTENSIONS, is_audio_name
from ds_w2v.data.sources.base import SourceScan, Utterance, hash_pick, is_dir, safe_id, walk_files


def scan(src: Path, valid_percent: float = 0.0, valid_seed: int = 0) -> SourceScan:
    if not is_dir(src):
        raise FileNotFoundError(f"{src}: no such directory")
    if not 0 <= valid_percent < 100:
        raise ValueError(f"valid_percent must be in [0, 100), got {valid_percent}")
    scan_ = SourceScan()
    files = walk_files(src, is_audio_name, scan_)
    if not files:
        raise ValueError(f"{src}: no audio files ({' '.join(AUDIO_EXTENSIONS)}) below this folder")
    rel_paths = [p.relative_to(src).as_posix() for p in files]
    dev = hash_pick(rel_paths, valid_percent / 100.0, seed=valid_seed)
    for path, rel in zip(files, rel_paths, strict=True):
        scan_.utterances.append(
            Utterance(
                audio=str(path),
                split="dev" if rel in dev else "train",
                id=safe_id(rel.rsplit(".", 1)[0]),
                speaker=None,
                meta={"corpus": "dir", "relpath": rel},
            )
        )
    return scan_

