"""Probes of a frozen model: what its layers know, measured the ways the field does.

    from ds_w2v.probe import read_utterances, linear_phone_probe
    train = read_utterances("shards/timit", "train", max_utterances=100)
    test = read_utterances("shards/timit", "test", max_utterances=100)
    linear_phone_probe(model, train, test, device="cpu")   # {"layers": {"conv": 0.41, ...}, "best_layer", "best_acc"}

Command line: ``ds-w2v probe UPSTREAM --data DIR`` (``ds_w2v/commands/probe.py``).

utterances.py  a split of a prepared corpus in memory; what each protocol needs, checked up front
frames.py      frame -> phone labels from the shards' phone spans (the frame-centre convention)
upstream.py    the frozen model from a file / run / HF folder / ``random:PRESET``; its fingerprint
features.py    every layer's frame features (conv, transformer input, each block), eval mode
cache.py       those features on disk, keyed by upstream fingerprint + utterances + settings
linear.py      CPC's linear phone classification, one classifier per layer -> frame accuracy
downstream.py  SUPERB's shared parts: normalised softmax-weighted layer sum, head training, dev choice
pr.py          SUPERB phone recognition: weighted sum -> linear -> CTC over 39 phones -> PER
er.py          SUPERB emotion recognition: weighted sum -> 256 -> mean pool -> linear -> accuracy
"""
from .cache import cached_features
from .er import emotion_recognition_probe
from .features import LayerFeatures, extract_features, layer_names
from .frames import IGNORE, frame_phone_labels
from .linear import linear_phone_probe, linear_probe_features, train_linear_probe
from .pr import phone_recognition_probe
from .upstream import load_upstream, model_fingerprint
from .utterances import ProbeUtterance, read_utterances

__all__ = [
    "cached_features", "emotion_recognition_probe", "LayerFeatures", "extract_features", "layer_names", "IGNORE",
    "frame_phone_labels", "linear_phone_probe", "linear_probe_features", "train_linear_probe",
    "phone_recognition_probe", "load_upstream", "model_fingerprint", "ProbeUtterance", "read_utterances",
]
