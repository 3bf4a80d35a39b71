"""``ds-w2v export-hf SRC OUT``: a ds_w2v model file or run directory -> a HF transformers folder.

OUT gets config.json and model.safetensors (``Wav2Vec2ForPreTraining``, ``Wav2Vec2ForCTC`` or
``Wav2Vec2ForSequenceClassification`` by the model's task), preprocessor_config.json, and for
CTC vocab.json + tokenizer_config.json, so that
``transformers.pipeline("automatic-speech-recognition", model=OUT)`` runs. ``load_model(OUT)``
reads it back.
"""
from __future__ import annotations

import argparse


def build_parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="ds_w2v run directory (its best checkpoint, else latest), model file, fairseq "
                                "wav2vec 2.0 checkpoint (a CTC one with its dict.ltr.txt beside it) or HF folder "
                                "(re-exported): whatever model.init takes")
    p.add_argument("out", help="folder to write")
    return p


def main(args: argparse.Namespace) -> int:
    from ..models.wav2vec2.interop_hf import export_hf
    from ..train.tasks import load_init

    model = load_init(args.src)  # as model.init, evaluate and probe read it
    out = export_hf(model, args.out)
    print(f"wrote {out} ({model.task}: {sorted(p.name for p in out.iterdir())})")
    return 0
