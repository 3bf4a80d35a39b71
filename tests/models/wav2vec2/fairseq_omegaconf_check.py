"""Run as a script, once, where omegaconf 2.0 is importable beside this project's torch (fairseq
required omegaconf < 2.1 while it pickled its cfg as a DictConfig)::

    python -m venv /tmp/omc && /tmp/omc/bin/pip install omegaconf==2.0.6
    PYTHONPATH=/tmp/omc/lib/python3.11/site-packages .venv/bin/python -m tests.models.wav2vec2.fairseq_omegaconf_check

It checks that fairseq_omegaconf.py pickles a cfg as omegaconf itself does: the same globals, the
same opcodes and arguments (the memo's numbering aside), and the same configuration read back by
ds_w2v from both files. It printed "same" for both sections with omegaconf 2.0.6. Not part of the
test run: CI has no omegaconf."""
from __future__ import annotations

import pickle
import pickletools
import sys
import tempfile
from pathlib import Path

import torch
from omegaconf import OmegaConf

from ds_w2v.models.wav2vec2.interop_fairseq import config_from_fairseq, load_torch_file

from . import fairseq_omegaconf as fixture
from .test_interop_fairseq import finetuning_sections, pretraining_sections, source_model

_MEMO = {"BINPUT", "LONG_BINPUT", "BINGET", "LONG_BINGET", "MEMOIZE", "PUT", "GET"}


def opcodes(data: bytes) -> list:
    return [op.name.replace("LONG_", "") if op.name in _MEMO else (op.name, arg) for op, arg, _ in pickletools.genops(data)]


def main() -> int:
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, cfg in [("pretraining", pretraining_sections(source_model("pretrain", "large").config)),
                          ("fine-tuning", finetuning_sections(source_model("ctc", "large").config))]:
            real = pickle.dumps(OmegaConf.create(cfg), protocol=2)
            with fixture.omegaconf_names():
                fake = pickle.dumps(fixture.DictConfig(cfg), protocol=2)
            torch.save({"cfg": OmegaConf.create(cfg), "model": {}}, Path(tmp) / "real.pt")
            fixture.save_with_dictconfig({"cfg": cfg, "model": {}}, Path(tmp) / "fake.pt", torch.save)
            read = [config_from_fairseq(load_torch_file(Path(tmp) / f)["cfg"], f) for f in ("real.pt", "fake.pt")]
            same = opcodes(real) == opcodes(fake) and read[0] == read[1]
            failed += not same
            print(f"{name}: {'same' if same else 'DIFFERENT'} ({len(opcodes(real))} opcodes)")
    return failed


if __name__ == "__main__":
    sys.exit(main())
