"""ds_w2v: wav2vec 2.0 pretraining and fine-tuning under DeepSpeed.

    import ds_w2v
    model = ds_w2v.build_model("tiny", task="pretrain")
    out = model(waveform, lengths)       # waveform [B, T] float at 16 kHz, lengths in samples
    out.loss, out.contrastive_loss, out.diversity_loss, out.code_perplexity, ...

The model names are imported on first use (PEP 562): ``import ds_w2v`` alone does not import
torch, so commands that never touch a model (``build-lm``, ``prepare``, ``--help``) start fast.
"""
__version__ = "0.1.0"

__all__ = ["build_model", "load_model", "save_model", "Wav2Vec2Config", "PRESETS", "__version__"]
_MODEL_NAMES = ("build_model", "load_model", "save_model", "Wav2Vec2Config", "PRESETS")


def __getattr__(name: str):
    if name in _MODEL_NAMES:
        from .models import wav2vec2

        return getattr(wav2vec2, name)
    raise AttributeError(f"module 'ds_w2v' has no attribute {name!r}")
