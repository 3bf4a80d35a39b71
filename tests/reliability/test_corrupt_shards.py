"""Training through damaged shards: a tar cut in the middle and a tar holding garbage members sit
in the training split; the run reaches ``max_updates``, and the damage is logged (a warning per
shard and reason), skipped and counted (``loader.stats``, ``data/*`` in metrics.jsonl)."""
from __future__ import annotations

import logging
import math
import sys
import tarfile
from pathlib import Path

import pytest

from ds_w2v.train.config import load_config
from ds_w2v.train.trainer import Trainer

sys.path.insert(0, str(Path(__file__).parent))  # pytest runs with --import-mode=importlib
from reliability_helpers import add_member, metrics_rows, overrides, read_members, repack  # noqa: E402

pytest.importorskip("deepspeed")


def _damage(shards: list[Path]) -> tuple[Path, Path]:
    """Cut shard 1 in the middle of a member; rewrite shard 2 with garbage among its samples."""
    truncated, garbage = shards[1], shards[2]
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2 + 777])
    samples = read_members(garbage)
    with tarfile.open(garbage, "w") as tar:
        for i, (key, parts) in enumerate(samples):
            if i == 1:
                add_member(tar, "junk.bin", b"\x00\x01 not a sample member")  # no audio, no json
                add_member(tar, f"{key}.json", parts["json"])
                add_member(tar, f"{key}.npy", b"\x93NUMPY garbage")  # audio that does not decode
            elif i == 3:
                add_member(tar, f"{key}.json", b"{not json")
                add_member(tar, f"{key}.npy", parts["npy"])
            else:
                for ext, payload in sorted(parts.items()):
                    add_member(tar, f"{key}.{ext}", payload)
    return truncated, garbage


def test_training_skips_logs_and_counts_damaged_shards(speech, tmp_path, caplog):
    shards = repack(speech["dir"], tmp_path / "shards", [6, 6, 6, 6])
    truncated, garbage = _damage(shards)
    run = tmp_path / "run"
    config = load_config("pretrain_tiny", overrides(tmp_path / "shards", run, "max_updates=4"))
    with caplog.at_level(logging.WARNING, logger="ds_w2v.data.stream"):
        trainer = Trainer(config)
        result = trainer.train()
    assert result["updates"] == 4 and result["skipped_updates"] == 0
    assert all(math.isfinite(float(p.detach().abs().max())) for p in trainer.module.parameters())

    stats = trainer.loader.stats
    assert stats.bad_shards == {str(truncated), str(garbage)}
    assert stats.skipped["bad_shard"] >= 1  # the cut tar, once per pass over it
    assert stats.skipped["bad_audio"] >= 1 and stats.skipped["bad_json"] >= 1
    assert stats.skipped["incomplete_sample"] >= 1
    assert stats.num_corrupt == sum(stats.skipped.get(r, 0) for r in
                                    ("bad_shard", "bad_audio", "bad_json", "incomplete_sample"))
    warnings = [r.getMessage() for r in caplog.records]
    assert any(truncated.name in w and "bad_shard" in w for w in warnings)
    assert any(garbage.name in w and "bad_audio" in w for w in warnings)

    rows = [r for r in metrics_rows(run) if "train/loss" in r]
    assert [r["update"] for r in rows] == [1, 2, 3, 4]
    assert rows[-1]["data/num_corrupt"] > 0 and rows[-1]["data/skipped/bad_shard"] >= 1
    assert [r["data/num_corrupt"] for r in rows] == sorted(r["data/num_corrupt"] for r in rows)  # running count
