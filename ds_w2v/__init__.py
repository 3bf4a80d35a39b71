"""ds_w2v: wav2vec 2.0 pretraining and fine-tuning under DeepSpeed.

    import ds_w2v
    model = ds_w2v.build_model("tiny", task="pretrain")
    out = model(waveform, lengths)       # waveform [B, T] float at 16 kHz, lengths in samples
    out.loss, out.contrastive_loss, out.diversity_loss, out.code_perplexity, ...
"""
__version__ = "0.1.0"

from .models.wav2vec2 import PRESETS, Wav2Vec2Config, build_model, load_model, save_model

__all__ = ["build_model", "load_model", "save_model", "Wav2Vec2Config", "PRESETS", "__version__"]
