"""Small real corpora for the trainer tests, synthesised once per session (espeak-ng, ~10 s)."""
from __future__ import annotations

import pytest

from ds_w2v.cli import main as cli


@pytest.fixture(scope="session")
def timit_shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("timit")
    assert cli(["synth", "timit", "--out", str(root / "TIMIT"), "--speakers", "40", "--sentences-per-speaker", "5",
                "--workers", "2", "--overwrite"]) == 0
    assert cli(["prepare", "--format", "timit", str(root / "TIMIT"), "--out", str(root / "shards"),
                "--workers", "2", "--no-progress", "--overwrite"]) == 0
    return root / "shards"


@pytest.fixture(scope="session")
def ravdess_shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("ravdess")
    # actors 1-2 train, 19 dev, 21 test with the reader's default actor split
    assert cli(["synth", "ravdess", "--out", str(root / "RAVDESS"), "--actors", "1,2,19,21", "--workers", "2",
                "--overwrite"]) == 0
    assert cli(["prepare", "--format", "ravdess", str(root / "RAVDESS"), "--out", str(root / "shards"),
                "--workers", "2", "--no-progress", "--overwrite"]) == 0
    return root / "shards"
