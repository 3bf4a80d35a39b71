"""Shared by the reliability tests: one small speech corpus (espeak-ng, ~3 s), prepared twice
(``--format dir``: one unlabelled train shard for pretraining; ``--format timit``: transcripts
and a vocabulary for CTC). Helpers are in ``reliability_helpers.py``.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from ds_w2v.cli import main as cli


@pytest.fixture(scope="session")
def speech(tmp_path_factory) -> dict[str, Path]:
    """``{"dir": shards, "timit": shards, "src": TIMIT tree}``: 120 synthetic utterances (~6.5 min)."""
    root = tmp_path_factory.mktemp("speech")
    assert cli(["synth", "timit", "--out", str(root / "TIMIT"), "--speakers", "30", "--sentences-per-speaker", "4",
                "--workers", "2", "--overwrite"]) == 0
    for fmt in ("dir", "timit"):
        assert cli(["prepare", "--format", fmt, str(root / "TIMIT"), "--out", str(root / fmt), "--workers", "2",
                    "--no-progress"]) == 0
    return {"dir": root / "dir", "timit": root / "timit", "src": root / "TIMIT"}
