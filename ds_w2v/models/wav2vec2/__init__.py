"""wav2vec 2.0 (Baevski et al. 2020), written from scratch: one concept a file.

config.py          Wav2Vec2Config (fields named as fairseq's)
presets.py         tiny / small / medium / original / large, parameter counting rule
feature_encoder.py conv feature encoder (group / layer norm modes, fp32 norms, grad mult)
frontend.py        feature projection, length -> frame-mask arithmetic
masking.py         span masking over time (equal count per batch) and channels
position_encoder.py convolutional positional embedding (ZeRO-3-safe weight norm)
transformer.py     post-LN / pre-LN transformer with SDPA and deterministic LayerDrop
quantizer.py       Gumbel product quantizer
objective.py       negatives, contrastive logits, InfoNCE and diversity losses
model.py           backbone, task base class, pretraining model
heads.py           CTC and sequence-classification models
registry.py        MODEL_TASKS: the task models by name (register_model_task)
factory.py         build_model / save_model / load_model, the model file format
interop_hf.py      HF transformers key table, config mapping, export and import
interop_fairseq.py fairseq checkpoints in: key table, config reading, dict.ltr.txt, safe unpickling
"""
from .config import Wav2Vec2Config
from .factory import build_model, load_model, save_model
from .heads import DEFAULT_VOCAB, Wav2Vec2ForCTC, Wav2Vec2ForSequenceClassification
from .model import Wav2Vec2ForPretraining, Wav2Vec2Output, Wav2Vec2Task
from .presets import DOCUMENTED_PARAMS_M, PRESETS, count_parameters, preset_config
from .registry import MODEL_TASKS, register_model_task

__all__ = [
    "Wav2Vec2Config", "build_model", "load_model", "save_model", "DEFAULT_VOCAB", "MODEL_TASKS", "register_model_task",
    "Wav2Vec2ForPretraining", "Wav2Vec2ForCTC", "Wav2Vec2ForSequenceClassification", "Wav2Vec2Output",
    "Wav2Vec2Task", "PRESETS", "DOCUMENTED_PARAMS_M", "count_parameters", "preset_config",
]
