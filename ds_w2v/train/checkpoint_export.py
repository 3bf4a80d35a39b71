"""A run's weights out of its DeepSpeed checkpoints: consolidated fp32 weights of any ZeRO stage, the
model at a tag, and ``export`` to a ds_w2v model file (what ``ds-w2v export`` writes)."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ..models.wav2vec2.factory import model_from_payload, save_model
from ..models.wav2vec2.model import Wav2Vec2Task
from .checkpoint_tags import ckpt_dir, resolve_tag, saved_state


def consolidated_state_dict(run_dir: Path, tag: str) -> dict[str, torch.Tensor]:
    """fp32 weights of any ZeRO stage (DeepSpeed's zero_to_fp32), on CPU, in one process. DeepSpeed
    prints its progress ("Processing zero checkpoint ...") with print(): it goes to stderr, so that a
    command reading a run directory keeps stdout for its results (JSON lines, a transcript)."""
    import contextlib
    import sys

    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    with contextlib.redirect_stdout(sys.stderr):
        state = get_fp32_state_dict_from_zero_checkpoint(str(ckpt_dir(run_dir)), tag=tag)
    return {k: v.float() if v.is_floating_point() else v for k, v in state.items()}


def model_from_run(run_dir: Path, tag: str | None = None) -> Wav2Vec2Task:
    """The run's model at ``tag`` (``latest``, ``best``, a tag directory's name; default: ``best``
    if there is one, else ``latest``)."""
    run_dir = Path(run_dir)
    tag = resolve_tag(run_dir, tag)
    return model_with_state(run_dir, tag, consolidated_state_dict(run_dir, tag))


def model_with_state(run_dir: Path, tag: str, state: dict[str, torch.Tensor]) -> Wav2Vec2Task:
    """The run's model (``model.json``) holding ``state`` (consolidated weights, as of ``tag``)."""
    meta = json.loads((Path(run_dir) / "model.json").read_text())
    template = model_from_payload({**meta, "state_dict": None}, str(run_dir), load_weights=False)
    full = template.state_dict()
    for k in full:  # buffers (the update counter) are not in ZeRO's fp32 partitions
        if k in state:
            full[k] = state[k]
    if "num_updates" not in state:
        client = saved_state(run_dir, tag)
        if client and "update" in client:
            full["num_updates"] = torch.tensor(int(client["update"]))
    template.load_state_dict(full)
    return template


def export(run_dir: Path, out: Path, tag: str | None = None) -> Path:
    model = model_from_run(run_dir, tag)
    return save_model(model, out)
