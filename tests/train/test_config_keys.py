"""Configs that explain themselves: every key a training command takes has a docstring, and
``ds-w2v pretrain --help-config`` lists each with its type and default (litgpt parses every
config in a test; here every shipped recipe is parsed by tests/train/test_config.py)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ds_w2v.models.wav2vec2 import Wav2Vec2Config
from ds_w2v.train.config import TrainConfig
from ds_w2v.train.config_keys import config_keys, field_docs


def test_every_training_and_model_key_has_a_docstring():
    keys = config_keys(TrainConfig) + config_keys(Wav2Vec2Config, "model.overrides.")
    assert len(keys) > 100
    assert [k.key for k in keys if not k.doc] == []


def test_field_docs_reads_the_string_under_each_field():
    from dataclasses import dataclass

    @dataclass
    class Toy:
        a: int = 1
        """The a."""
        b: int = 2
        c: str = "x"
        """The
        c."""

    assert field_docs(Toy) == {"a": "The a.", "c": "The c."}


def test_help_config_through_the_console_script():
    out = subprocess.run([str(Path(sys.executable).parent / "ds-w2v"), "pretrain", "--help-config"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "optim.lr (float, default 0.0005)\n    Peak learning rate" in text
    assert "data.read_timeout_s (float | None, default 180.0)" in text
    assert "model.overrides.encoder_layers (int, default 12)" in text
    listed = [line.split(" (", 1)[0] for line in text.splitlines() if not line.startswith(" ") and ", default " in line]
    assert len(listed) == len(config_keys(TrainConfig)) + len(config_keys(Wav2Vec2Config))
