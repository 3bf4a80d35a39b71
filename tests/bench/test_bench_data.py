"""``ds-w2v bench data --augment`` on a small generated set: each training stream is timed plain
and augmented, and each effect alone (no timing assertions: figures, not pass/fail)."""
from __future__ import annotations

import re

from ds_w2v.cli import main as cli


def test_augmented_streams_and_each_effect_are_timed(capsys):
    assert cli(["bench", "data", "--minutes", "0.3", "--repeats", "1", "--skip-prepare", "--skip-codecs",
                "--augment", "--snr", "0,10"]) == 0
    out = capsys.readouterr().out
    assert "'speeds': [0.9, 1.0, 1.1]" in out and "'snr_db': [0.0, 10.0]" in out
    for codec in ("npy", "flac"):
        for kind in ("pretrain", "pretrain+aug", "finetune", "finetune+aug"):
            assert re.search(rf"^  {codec} +{re.escape(kind)} +batches +[\d,]+ audio-s/s", out, re.M), (codec, kind)
    for effect in ("speed 0.9 (soxr HQ)", "speed 1.1 (soxr HQ)", "reverberation (FFT)",
                   "noise, read on demand (folder)", "noise, from memory (shards)"):
        assert re.search(rf"^  {re.escape(effect)} +[\d.]+ ms per utterance .* audio-s per CPU-second$", out, re.M), \
            effect


def test_no_augmentation_options_time_plain_streams_only(capsys):
    assert cli(["bench", "data", "--minutes", "0.2", "--repeats", "1", "--skip-prepare", "--skip-codecs"]) == 0
    out = capsys.readouterr().out
    assert "+aug" not in out and "augmentation" not in out
