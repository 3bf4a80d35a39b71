"""Small synthetic corpora and a tiny model for the probe tests, made once per session.

TIMIT: 30 speakers x 4 sentences (SA1/SA2 left out by prepare): 10 train, 2 dev and 48 test
utterances with real ``.PHN`` timings from espeak's phoneme events. RAVDESS: actors 1 (train),
19 (dev) and 21 (test), 60 clips each. ~15 s in all on 2 cores.
"""
from __future__ import annotations

import pytest

from ds_w2v.cli import main as cli


@pytest.fixture(scope="session")
def probe_timit(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe_timit")
    assert cli(["synth", "timit", "--out", str(root / "TIMIT"), "--speakers", "30", "--sentences-per-speaker", "4",
                "--workers", "2"]) == 0
    assert cli(["prepare", "--format", "timit", str(root / "TIMIT"), "--out", str(root / "shards"),
                "--workers", "2", "--no-progress"]) == 0
    return root / "shards"


@pytest.fixture(scope="session")
def probe_ravdess(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe_ravdess")
    assert cli(["synth", "ravdess", "--out", str(root / "RAVDESS"), "--actors", "1,19,21", "--workers", "2"]) == 0
    assert cli(["prepare", "--format", "ravdess", str(root / "RAVDESS"), "--out", str(root / "shards"),
                "--workers", "2", "--no-progress"]) == 0
    return root / "shards"


@pytest.fixture(scope="session")
def tiny_model_file(tmp_path_factory):
    import torch

    from ds_w2v.models.wav2vec2 import build_model, save_model

    torch.manual_seed(0)
    return save_model(build_model("tiny", "pretrain"), tmp_path_factory.mktemp("probe_model") / "tiny.pt")
