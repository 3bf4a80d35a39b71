"""ds_w2v: wav2vec 2.0 pretraining and fine-tuning under DeepSpeed."""
__version__ = "0.1.0"
