"""The frozen model a probe reads: from a model file, an HF folder, a run directory (with the
trainer's loader, which ``ds-w2v probe`` passes: run directories are the trainer's, above this
package), or freshly initialised (``random:PRESET``, ``random:MODEL``) for the "pretrained vs
random init" rows.

Its identity, for the feature cache, is a hash of what decides its features -- the whole config
and every tensor of the backbone (heads and quantizer do not touch the features) -- not of its
path: a model file copied elsewhere, or ``random:tiny`` rebuilt with the same seed, hits the same
cache entry, and a retrained file at the same path does not. The whole config rather than a list
of "architecture" fields, because a cache hit on a model that differs in a field the list forgot
(``layer_norm_first`` changes no tensor shape) would give another model's features; a miss only
costs the time to compute them.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

import torch

from ..models.wav2vec2 import PRESETS, Wav2Vec2Task, build_model, load_model

RANDOM_PREFIX = "random:"


def load_upstream(spec: str, seed: int = 0, load: Callable[[str], Wav2Vec2Task] = load_model) -> Wav2Vec2Task:
    """The model ``spec`` names, in eval mode on the CPU.

    spec: what ``load`` reads (``load_model``: a ds_w2v model file or a local HF wav2vec2 folder;
        ``ds_w2v.train.tasks.load_init``: also a run directory, its best checkpoint else its
        latest), ``random:PRESET`` (a fresh pretraining model of a preset) or ``random:MODEL``
        (MODEL's architecture with fresh weights); fresh weights are drawn under
        ``torch.manual_seed(seed)``.
    Raises FileNotFoundError / ValueError naming the path and the reason.
    """
    if spec.startswith(RANDOM_PREFIX):
        what = spec[len(RANDOM_PREFIX):]
        if what in PRESETS:
            config = what
        else:
            if not Path(what).exists():
                raise FileNotFoundError(f"{spec}: {what!r} is neither a preset ({', '.join(PRESETS)}) nor a model path")
            config = load(what).config
        torch.manual_seed(seed)
        model = build_model(config, "pretrain")
    else:
        model = load(spec)
    return model.eval()


def model_fingerprint(model: Wav2Vec2Task) -> str:
    """SHA-256 (hex) of the config and the backbone's state dict: names, dtypes, shapes, bytes."""
    h = hashlib.sha256(json.dumps(model.config.to_dict(), sort_keys=True, default=str).encode())
    for name, tensor in sorted(model.wav2vec2.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
