"""fairseq wav2vec 2.0 checkpoints in (``interop_fairseq``), checked against statements of fairseq's
layout that are not ours.

The fake checkpoints are written from a ds_w2v model through our HF export (``to_hf_state_dict``,
itself checked against transformers by test_hf_parity.py) and transformers' own table from
fairseq names to HF names, inverted below; their configurations are the configurations of
fairseq's released checkpoints as torchaudio's test assets record them, with our values put in
under those names. So a name that our key table or config reader got wrong fails here, instead
of agreeing with itself.
"""
from __future__ import annotations

import argparse
import dataclasses
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ds_w2v import build_model, load_model, save_model
from ds_w2v.cli import main as cli_main
from ds_w2v.models.wav2vec2 import preset_config
from ds_w2v.models.wav2vec2.config import Wav2Vec2Config
from ds_w2v.models.wav2vec2.interop_fairseq import config_from_fairseq, read_dictionary
from ds_w2v.models.wav2vec2.interop_hf import to_hf_state_dict
from ds_w2v.models.wav2vec2.objective import sample_negatives
from ds_w2v.train.tasks import load_init
from ds_w2v.train.tasks.base import _from_init

# --- independent statements of fairseq's layout ------------------------------------------------
# transformers, src/transformers/models/wav2vec2/convert_wav2vec2_original_pytorch_checkpoint_to_pytorch.py
# at commit 6507bc80d3b802891808b6c467692a7530f4d196 (transformers 5 no longer ships it): MAPPING,
# fairseq name fragment -> HF name. Its rules, from the same script: a "*" is the layer index, the
# path component before the fragment in the fairseq name; the parameter (weight_g, weight_v, bias,
# weight or none) follows the fragment; HF names outside TOP_LEVEL_KEYS sit under "wav2vec2.";
# "w2v_model.layer_norm" names a pretraining model's "layer_norm.*" too; and (load_conv_layer)
# fairseq's "conv_layers.<layer>.<type>": type 0 is the conv, type 2 the norm (layer 0 only in
# the group-norm extractor).
HF_MAPPING = {
    "post_extract_proj": "feature_projection.projection",
    "encoder.pos_conv.0": "encoder.pos_conv_embed.conv",
    "self_attn.k_proj": "encoder.layers.*.attention.k_proj",
    "self_attn.v_proj": "encoder.layers.*.attention.v_proj",
    "self_attn.q_proj": "encoder.layers.*.attention.q_proj",
    "self_attn.out_proj": "encoder.layers.*.attention.out_proj",
    "self_attn_layer_norm": "encoder.layers.*.layer_norm",
    "fc1": "encoder.layers.*.feed_forward.intermediate_dense",
    "fc2": "encoder.layers.*.feed_forward.output_dense",
    "final_layer_norm": "encoder.layers.*.final_layer_norm",
    "encoder.layer_norm": "encoder.layer_norm",
    "w2v_model.layer_norm": "feature_projection.layer_norm",
    "quantizer.weight_proj": "quantizer.weight_proj",
    "quantizer.vars": "quantizer.codevectors",
    "project_q": "project_q",
    "final_proj": "project_hid",
    "w2v_encoder.proj": "lm_head",
    "mask_emb": "masked_spec_embed",
}
HF_TOP_LEVEL_KEYS = ["lm_head", "quantizer.weight_proj", "quantizer.codevectors", "project_q", "project_hid"]
# What MAPPING leaves implicit, from torchaudio/models/wav2vec2/utils/import_fairseq.py (pytorch/audio
# at ec3be0f776271a13df275f2e2ecfe2d066a48565, _map_key): the transformer blocks are
# "encoder.layers.<i>.*"; the layer-norm extractor's norm is "feature_extractor.conv_layers.<i>.2.1.*";
# a fine-tuned encoder holds "w2v_model.*" and "proj.*" (under Wav2VecCtc's "w2v_encoder", which
# MAPPING's "w2v_encoder.proj" names).
TRANSFORMER_LAYERS = "encoder.layers.{}."
LAYER_NORM_CONV_NORM = "2.1"
FINETUNED_BACKBONE = "w2v_encoder.w2v_model."

# The model section of wav2vec_small.pt's configuration (BASE, pretraining), as torchaudio records it:
# test/torchaudio_unittest/assets/wav2vec2/fairseq/wav2vec_small.json (pytorch/audio at
# 415362b89cb0a27d202308d6f28af22bfceaad56).
WAV2VEC_SMALL = {
    "_name": "wav2vec2", "activation_dropout": 0.0, "activation_fn": "gelu", "attention_dropout": 0.1,
    "codebook_negatives": 0, "conv_bias": False,
    "conv_feature_layers": "[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] * 2", "conv_pos": 128,
    "conv_pos_groups": 16, "cross_sample_negatives": 0, "dropout": 0.1, "dropout_features": 0.1,
    "dropout_input": 0.1, "encoder_attention_heads": 12, "encoder_embed_dim": 768, "encoder_ffn_embed_dim": 3072,
    "encoder_layerdrop": 0.05, "encoder_layers": 12, "extractor_mode": "default", "feature_grad_mult": 0.1,
    "final_dim": 256, "latent_dim": 0, "latent_groups": 2, "latent_temp": [2.0, 0.5, 0.999995], "latent_vars": 320,
    "layer_norm_first": False, "logit_temp": 0.1, "mask_channel_before": False, "mask_channel_length": 10,
    "mask_channel_min_space": 1, "mask_channel_other": 0.0, "mask_channel_prob": 0.0,
    "mask_channel_selection": "static", "mask_length": 10, "mask_min_space": 1, "mask_other": 0.0,
    "mask_prob": 0.65, "mask_selection": "static", "negatives_from_everywhere": False,
    "no_mask_channel_overlap": False, "no_mask_overlap": False, "num_negatives": 100, "quantize_input": False,
    "quantize_targets": True, "quantizer_depth": 1, "quantizer_factor": 3, "same_quantizer": False,
    "target_glu": False,
}
# wav2vec_vox_new.pt's (LARGE, LV-60k), ibid. wav2vec_vox_new.json (at f1a0b605044fc51db58c88a1ce8334c948aaefe5):
# the options in which it differs from wav2vec_small's.
WAV2VEC_VOX_NEW = {
    **WAV2VEC_SMALL, "conv_bias": True, "dropout": 0.0, "encoder_attention_heads": 16, "encoder_embed_dim": 1024,
    "encoder_ffn_embed_dim": 4096, "encoder_layerdrop": 0.0, "encoder_layers": 24, "extractor_mode": "layer_norm",
    "feature_grad_mult": 1.0, "final_dim": 768, "latent_temp": [2.0, 0.1, 0.999995], "layer_norm_first": True,
}
# wav2vec_small_960h.pt's (BASE fine-tuned with CTC on LibriSpeech 960 h), ibid. wav2vec_small_960h.json
# (at 01693b53e5b1371831f01743194dc5962e449493): the fine-tuning options; its w2v_args.model is
# wav2vec_small's model section above, its w2v_args.task has normalize false.
WAV2VEC_SMALL_960H = {
    "_name": "wav2vec_ctc", "activation_dropout": 0.1, "apply_mask": True, "attention_dropout": 0.0,
    "blank_mode": "add", "blank_weight": 0.0,
    "conv_feature_layers": "[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] + [(512,2,2)]", "dropout": 0.0,
    "dropout_input": 0.0, "encoder_embed_dim": 512, "feature_grad_mult": 0.0, "final_dropout": 0.0,
    "freeze_finetune_updates": 0, "layerdrop": 0.1, "mask_channel_before": False, "mask_channel_length": 64,
    "mask_channel_min_space": 1, "mask_channel_other": 0.0, "mask_channel_prob": 0.1,
    "mask_channel_selection": "static", "mask_length": 10, "mask_min_space": 1, "mask_other": 0.0,
    "mask_prob": 0.5, "mask_selection": "static", "no_mask_channel_overlap": False, "no_mask_overlap": False,
    "no_pretrained_weights": False, "normalize": False, "w2v_path": "???",
}
# fairseq's Dictionary gives ids 0-3 to <s>, <pad>, </s>, <unk>; transformers' script (above) makes
# vocab.json from it with "<pad>" -> 0 and "<s>" -> 1 ("fairseq has the <pad> and <s> switched").
HF_NAMES_OF_FAIRSEQ_IDS_0_1 = ("<pad>", "<s>")
# fairseq normalises a waveform (task normalize=True) in its dataset (fairseq/data/audio/raw_audio_dataset.py,
# RawAudioDataset.postprocess) with F.layer_norm(feats, feats.shape): torch's default eps, 1e-5
FAIRSEQ_LAYER_NORM_EPS = 1e-5

# --- fake fairseq checkpoints -----------------------------------------------------------------
LAYOUTS = {  # BASE: group-norm conv encoder, post-LN; LARGE: layer-norm conv encoder with bias, pre-LN
    "base": {"layer_norm_first": False},
    "large": {"layer_norm_first": True, "extractor_mode": "layer", "conv_bias": True, "normalize_audio": True},
}
# not the defaults, so that a field the reader forgets, or takes from a default, shows
SMALL = dict(encoder_layers=2, conv_pos=16, conv_pos_groups=8, latent_vars=24, latent_dim=64, final_dim=96,
             latent_temp=(1.5, 0.25, 0.9999), num_negatives=20, logit_temp=0.2, diversity_weight=0.2,
             feature_pen_weight=5.0, feature_grad_mult=0.3, dropout=0.05, attention_dropout=0.02,
             activation_dropout=0.03, dropout_input=0.04, dropout_features=0.06, encoder_layerdrop=0.07,
             mask_prob=0.3, mask_length=4, mask_channel_prob=0.2, mask_channel_length=8)
CTC_ONLY = dict(final_dropout=0.08)
# fine-tuning options under their fairseq names (WAV2VEC_SMALL_960H's) -> our fields
FINETUNED_AS = {"dropout": "dropout", "activation_dropout": "activation_dropout", "attention_dropout": "attention_dropout",
                "dropout_input": "dropout_input", "mask_prob": "mask_prob", "mask_length": "mask_length",
                "mask_channel_prob": "mask_channel_prob", "mask_channel_length": "mask_channel_length",
                "layerdrop": "encoder_layerdrop", "feature_grad_mult": "feature_grad_mult",
                "final_dropout": "final_dropout", "normalize": "normalize_audio"}
UPDATES = 1234


def _fairseq_name(hf_name: str, finetuned: bool, layer_norm_conv: bool) -> str:
    """The fairseq name of an HF tensor, by transformers' MAPPING (and torchaudio where it is silent)."""
    # transformers 5 names the positional conv's weight norm as a parametrization; the script's
    # transformers had weight_g / weight_v
    hf_name = hf_name.replace("parametrizations.weight.original0", "weight_g").replace(
        "parametrizations.weight.original1", "weight_v")
    top_level = any(hf_name == k or hf_name.startswith(k + ".") for k in HF_TOP_LEVEL_KEYS)
    bare = hf_name if top_level else hf_name.removeprefix("wav2vec2.")
    backbone = FINETUNED_BACKBONE if finetuned else ""
    conv = re.fullmatch(r"feature_extractor\.conv_layers\.(\d+)\.(conv|layer_norm)\.(weight|bias)", bare)
    if conv:
        layer, part, param = conv.groups()
        kind = "0" if part == "conv" else (LAYER_NORM_CONV_NORM if layer_norm_conv else "2")
        return f"{backbone}feature_extractor.conv_layers.{layer}.{kind}.{param}"
    found = []
    for fragment, hf_key in HF_MAPPING.items():
        pattern = re.escape(hf_key).replace(r"\*", r"(\d+)") + r"(?:\.(weight_g|weight_v|weight|bias))?"
        match = re.fullmatch(pattern, bare)
        if match:
            *layer, param = match.groups()
            name = (TRANSFORMER_LAYERS.format(layer[0]) if layer else "") + fragment + (f".{param}" if param else "")
            if fragment.startswith("w2v_encoder."):  # the CTC head: an absolute name
                found.append(name)
            elif top_level:  # the pretraining heads
                found.append(name)
            else:
                found.append(backbone + name.split("w2v_model.")[-1])
    assert len(found) == 1, (hf_name, found)
    return found[0]


def fairseq_state(model, rows: list[int] | None = None) -> dict[str, torch.Tensor]:
    """``model``'s weights under fairseq's names (``rows``: fairseq's order of the CTC outputs)."""
    finetuned = model.task == "ctc"
    state = {}
    for hf_name, tensor in to_hf_state_dict(model.state_dict()).items():
        name = _fairseq_name(hf_name, finetuned, model.config.extractor_mode == "layer")
        assert name not in state, name
        state[name] = tensor[rows] if rows is not None and hf_name.startswith("lm_head.") else tensor
    return state


def _conv_source(layers) -> str:
    """conv_feature_layers as fairseq writes it: Python source, repeated layers as [...] * n."""
    runs: list[list] = []
    for layer in layers:
        if runs and runs[-1][0] == layer:
            runs[-1][1] += 1
        else:
            runs.append([layer, 1])
    return " + ".join(f"[{layer}]" + (f" * {n}" if n > 1 else "") for layer, n in runs)


def pretraining_sections(c: Wav2Vec2Config) -> dict:
    """fairseq's cfg of a pretraining run of ``c``: wav2vec_small's options with ours put in."""
    model = dict(WAV2VEC_SMALL)
    same_name = {f.name for f in dataclasses.fields(Wav2Vec2Config)} & set(WAV2VEC_SMALL)
    assert {"encoder_layers", "encoder_embed_dim", "layer_norm_first", "conv_bias", "conv_pos", "latent_vars",
            "final_dim", "latent_dim", "mask_prob", "dropout", "feature_grad_mult"} <= same_name
    model.update({k: getattr(c, k) for k in same_name if k not in ("conv_layers", "extractor_mode", "latent_temp")})
    model.update(conv_feature_layers=_conv_source(c.conv_layers), latent_temp=list(c.latent_temp),
                 extractor_mode={"group": "default", "layer": "layer_norm"}[c.extractor_mode])
    return {"model": model, "task": {"_name": "audio_pretraining", "normalize": c.normalize_audio},
            "criterion": {"_name": "wav2vec", "loss_weights": [c.diversity_weight, c.feature_pen_weight]}}


def finetuning_sections(c: Wav2Vec2Config) -> dict:
    """fairseq's cfg of a CTC fine-tuning of ``c`` from a pretraining run with other dropouts and masks."""
    model = dict(WAV2VEC_SMALL_960H)
    assert set(FINETUNED_AS) <= set(model)
    model.update({theirs: getattr(c, ours) for theirs, ours in FINETUNED_AS.items()})
    pretrained = c.replace(dropout=0.5, attention_dropout=0.5, mask_prob=0.6, mask_channel_prob=0.0, feature_grad_mult=1.0,
                           encoder_layerdrop=0.0)
    model.update(apply_mask=True, w2v_args=pretraining_sections(pretrained))
    return {"model": model, "task": {"_name": "audio_finetuning", "normalize": c.normalize_audio, "labels": "ltr"}}


def checkpoint(model, cfg, rows=None) -> dict:
    """What fairseq's trainer saves (trainer.state_dict): the config, the weights, the update count."""
    return {"args": None, "cfg": cfg, "model": fairseq_state(model, rows),
            "optimizer_history": [{"criterion_name": "Wav2vecCriterion", "optimizer_name": "FairseqAdam",
                                   "lr_scheduler_state": {"best": 1.5}, "num_updates": UPDATES}],
            "extra_state": {"train_iterator": {"epoch": 3}, "val_loss": 1.5}}


def write_dictionary(path: Path, symbols: list[str]) -> Path:
    """A fairseq dict.ltr.txt: one ``SYMBOL COUNT`` line a symbol after fairseq's four specials."""
    path.write_text("".join(f"{s} {1000 - i}\n" for i, s in enumerate(symbols)), encoding="utf-8")
    return path


def fairseq_symbols(tokens: list[str]) -> list[str]:
    """fairseq's ids of an HF vocabulary (the inverse of transformers' swap of ids 0 and 1)."""
    assert tuple(tokens[:2]) == HF_NAMES_OF_FAIRSEQ_IDS_0_1
    return ["<s>", "<pad>", *tokens[2:]]


def source_model(task: str, layout: str, **extra):
    torch.manual_seed(0)
    model = build_model("tiny", task, **LAYOUTS[layout], **SMALL, **(CTC_ONLY if task == "ctc" else {}),
                        normalize_audio_eps=FAIRSEQ_LAYER_NORM_EPS, **extra)
    model.set_num_updates(UPDATES)
    return model.eval()


def write_pretraining(tmp_path: Path, layout: str = "base", name: str = "wav2vec_small.pt"):
    model = source_model("pretrain", layout)
    path = tmp_path / name
    torch.save(checkpoint(model, pretraining_sections(model.config)), path)
    return model, path


def write_ctc(tmp_path: Path, layout: str = "base", dictionary: bool = True):
    model = source_model("ctc", layout)
    path = tmp_path / "wav2vec_small_960h.pt"
    torch.save(checkpoint(model, finetuning_sections(model.config)), path)
    if dictionary:
        write_dictionary(tmp_path / "dict.ltr.txt", fairseq_symbols(model.vocab.tokens)[4:])
    return model, path


def batch():
    g = torch.Generator().manual_seed(1)
    lengths = torch.tensor([6000, 4500])
    x = torch.randn(2, 6000, generator=g) * 0.1 * (torch.arange(6000)[None] < lengths[:, None])
    return x, lengths


def assert_same_weights(a, b, counter: bool = True):
    """Every tensor equal (``counter``: the update counter too; an HF folder has none)."""
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        if counter or k != "num_updates":
            assert torch.equal(sa[k], sb[k]), k


def _one_line(error: Exception, *names: str) -> str:
    text = str(error)
    assert "\n" not in text, text
    for name in names:
        assert name in text, (name, text)
    return text


# --- round trips --------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", LAYOUTS)
def test_pretraining_checkpoint_loads_as_the_same_model(tmp_path, layout):
    source, path = write_pretraining(tmp_path, layout)
    loaded = load_model(path).eval()
    assert loaded.task == "pretrain" and loaded.config == source.config
    assert_same_weights(source, loaded)
    assert loaded.temperature == source.temperature == pytest.approx(1.5 * 0.9999**UPDATES)
    x, lengths = batch()
    frames = int(source.wav2vec2.feature_extractor.output_lengths(lengths).min())
    mask = torch.zeros(2, source.config.num_frames(6000), dtype=torch.bool)
    mask[:, 3:frames - 2] = True
    negatives = sample_negatives(2, int(mask[0].sum()), source.config.num_negatives)
    with torch.no_grad():
        want, got = source(x, lengths, mask_time=mask, negatives=negatives), loaded(x, lengths, mask_time=mask,
                                                                                    negatives=negatives)
    assert torch.equal(want.logits, got.logits) and torch.equal(want.loss, got.loss)
    assert torch.equal(want.last_hidden_state, got.last_hidden_state)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_ctc_checkpoint_with_its_dictionary_loads_as_the_same_model(tmp_path, layout):
    source, path = write_ctc(tmp_path, layout)
    loaded = load_model(path).eval()
    assert loaded.task == "ctc" and loaded.vocab == source.vocab
    # the fine-tuning options win over the pretraining run's (w2v_args), as in fairseq
    assert loaded.config == source.config
    assert_same_weights(source, loaded)
    x, lengths = batch()
    with torch.no_grad():
        want, got = source(x, lengths), loaded(x, lengths)
    assert torch.equal(want.logits, got.logits)
    assert loaded.decode(got.logits, got.frame_lengths) == source.decode(want.logits, want.frame_lengths)


def test_dictionary_with_the_word_delimiter_elsewhere_moves_its_row(tmp_path):
    source = source_model("ctc", "base")
    ours = source.vocab.tokens
    # fairseq's order: its four specials, then the file's symbols, here "|" last
    file_symbols = list(reversed(ours[4:]))
    rows = [0, 1, 2, 3, *(ours.index(s) for s in file_symbols)]
    path = tmp_path / "elsewhere" / "ft.pt"
    path.parent.mkdir()
    torch.save(checkpoint(source, finetuning_sections(source.config), rows), path)
    dictionary = write_dictionary(tmp_path / "letters.txt", file_symbols)
    loaded = load_model(path, dictionary=dictionary).eval()  # an explicit dictionary, not beside the .pt
    assert loaded.vocab.tokens == [*ours[:4], "|", *(s for s in file_symbols if s != "|")]
    x, lengths = batch()
    with torch.no_grad():
        want, got = source(x, lengths).logits, loaded(x, lengths).logits
    for token in ours:
        assert torch.equal(got[..., loaded.vocab.tokens.index(token)], want[..., ours.index(token)]), token


def test_older_checkpoint_with_an_argparse_namespace_and_numpy_state(tmp_path):
    """fairseq before its hydra port saved every option flat in an argparse.Namespace, some as Python
    source, and torch's old (non-zip) format; meters may hold numpy scalars."""
    source = source_model("pretrain", "large")
    c = source.config
    sections = pretraining_sections(c)
    flat = {**sections["model"], "arch": "wav2vec2", "normalize": c.normalize_audio,
            "latent_temp": str(tuple(c.latent_temp)), "loss_weights": str([c.diversity_weight, c.feature_pen_weight])}
    del flat["_name"]
    payload = {**checkpoint(source, None), "args": argparse.Namespace(**flat)}
    del payload["cfg"]
    payload["extra_state"]["val_loss"] = np.float64(1.5)
    path = tmp_path / "old.pt"
    torch.save(payload, path, _use_new_zipfile_serialization=False)
    loaded = load_model(path)
    assert loaded.config == c
    assert_same_weights(source, loaded)


def _tripwire(path: str) -> None:  # what a hostile checkpoint would run on unpickling
    Path(path).write_text("ran")


class Hostile:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return _tripwire, (str(self.marker),)


def test_classes_a_checkpoint_names_are_never_run(tmp_path):
    source, path = write_pretraining(tmp_path)
    payload = torch.load(path, weights_only=True)
    payload["extra_state"]["meters"] = Hostile(tmp_path / "ran.txt")
    torch.save(payload, path)
    with pytest.raises(pickle.UnpicklingError):  # torch's own weights-only reader refuses the file
        torch.load(path, weights_only=True)
    assert_same_weights(source, load_model(path))
    assert not (tmp_path / "ran.txt").exists()
    payload["cfg"] = Hostile(tmp_path / "ran.txt")  # a configuration that is not data (a pickled omegaconf one)
    torch.save(payload, path)
    with pytest.raises(ValueError) as e:
        load_model(path)
    _one_line(e.value, str(path), "_tripwire", "not a dict, argparse.Namespace or omegaconf DictConfig")
    assert not (tmp_path / "ran.txt").exists()


def test_fairseq_builds_no_projection_when_the_conv_features_have_the_transformer_width(tmp_path):
    source = build_model("tiny", "pretrain", conv_layers=((256, 10, 5), (256, 3, 2), (256, 2, 2)), encoder_layers=1,
                         conv_pos=16).eval()
    source.set_num_updates(UPDATES)
    with torch.no_grad():
        source.wav2vec2.feature_projection.projection.weight.copy_(torch.eye(256))
        source.wav2vec2.feature_projection.projection.bias.zero_()
    payload = checkpoint(source, pretraining_sections(source.config))
    payload["model"] = {k: v for k, v in payload["model"].items() if not k.startswith("post_extract_proj.")}
    torch.save(payload, tmp_path / "m.pt")
    assert_same_weights(source, load_model(tmp_path / "m.pt"))


# --- the configurations of fairseq's released checkpoints -----------------------------------------
def test_released_configs_read_as_our_presets():
    task, base, labels = config_from_fairseq({"model": WAV2VEC_SMALL, "task": {"normalize": False}}, "wav2vec_small.pt")
    assert (task, labels) == ("pretrain", "ltr") and base == preset_config("original", normalize_audio_eps=FAIRSEQ_LAYER_NORM_EPS)
    task, large, _ = config_from_fairseq({"model": WAV2VEC_VOX_NEW, "task": {"normalize": True}}, "wav2vec_vox_new.pt")
    architecture = ("conv_layers", "extractor_mode", "conv_bias", "normalize_audio", "encoder_layers", "encoder_embed_dim",
                    "encoder_ffn_embed_dim", "encoder_attention_heads", "layer_norm_first", "conv_pos", "conv_pos_groups",
                    "latent_vars", "latent_groups", "latent_dim", "final_dim")
    want = preset_config("large")
    assert task == "pretrain" and {k: getattr(large, k) for k in architecture} == {k: getattr(want, k) for k in architecture}
    assert large.latent_temp == (2.0, 0.1, 0.999995) and large.dropout == 0.0 and large.feature_grad_mult == 1.0


def test_released_ctc_config_takes_the_architecture_from_w2v_args():
    cfg = {"model": {**WAV2VEC_SMALL_960H, "w2v_args": {"model": WAV2VEC_SMALL, "task": {"normalize": False}}},
           "task": {"_name": "audio_finetuning", "normalize": False, "labels": "ltr"}}
    task, c, labels = config_from_fairseq(cfg, "wav2vec_small_960h.pt")
    assert (task, labels) == ("ctc", "ltr")
    # the fine-tuning section's own encoder_embed_dim (512, a seq2seq decoder option) is not the encoder's
    assert c.encoder_embed_dim == 768 and c.conv_layers == preset_config("original").conv_layers
    assert (c.dropout, c.attention_dropout, c.activation_dropout, c.encoder_layerdrop, c.feature_grad_mult) == (0.0, 0.0, 0.1, 0.1, 0.0)
    assert (c.mask_prob, c.mask_channel_prob, c.mask_channel_length) == (0.5, 0.1, 64)
    no_mask = config_from_fairseq({**cfg, "model": {**cfg["model"], "apply_mask": False}}, "x.pt")[1]
    assert no_mask.mask_prob == 0.0 and no_mask.mask_channel_prob == 0.0


def test_dictionary_file_format(tmp_path):
    path = tmp_path / "dict.ltr.txt"
    path.write_text("| 94802\nE 51860\n<unk> 7 #fairseq:overwrite\nT 38431\n", encoding="utf-8")
    assert read_dictionary(path) == ["<s>", "<pad>", "</s>", "<unk>", "|", "E", "T"]
    path.write_text("| 94802\nE\n", encoding="utf-8")
    with pytest.raises(ValueError) as e:
        read_dictionary(path)
    _one_line(e.value, f"{path}:2")
    path.write_text("| 3\nE 2\nE 1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="twice"):
        read_dictionary(path)


# --- entry points ---------------------------------------------------------------------------------
def test_model_init_reads_a_fairseq_checkpoint(tmp_path):
    source, path = write_pretraining(tmp_path)
    init = load_init(str(path))
    assert init.task == "pretrain"
    assert_same_weights(source, init)
    ctc = _from_init(init, "ctc", {})  # what a CTC run with model.init=wav2vec_small.pt builds
    backbone = {k: v for k, v in source.state_dict().items() if k.startswith("wav2vec2.")}
    for k, v in backbone.items():
        assert torch.equal(ctc.state_dict()[k], v), k


def test_export_hf_command_on_a_fairseq_checkpoint(tmp_path):
    source, path = write_ctc(tmp_path)
    out = subprocess.run([sys.executable, "-m", "ds_w2v", "export-hf", str(path), str(tmp_path / "hf")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    back = load_model(tmp_path / "hf")
    assert back.vocab == source.vocab and back.config.encoder_layers == source.config.encoder_layers
    assert_same_weights(source, back, counter=False)


def test_a_ds_w2v_model_file_still_loads(tmp_path):
    model = source_model("ctc", "large")
    save_model(model, tmp_path / "m.pt")
    back = load_model(tmp_path / "m.pt")
    assert back.config == model.config and back.vocab == model.vocab
    assert_same_weights(model, back)


# --- bad input: one line naming the file and the reason ----------------------------------------------
def test_not_a_checkpoint(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 not really a zip, nor a pickle")
    with pytest.raises(ValueError) as e:
        load_model(bad)
    _one_line(e.value, "bad.pt", "not a ds_w2v model file or fairseq checkpoint")


def test_ctc_checkpoint_without_its_dictionary(tmp_path, capsys):
    _, path = write_ctc(tmp_path, dictionary=False)
    with pytest.raises(FileNotFoundError) as e:
        load_model(path)
    _one_line(e.value, str(path), str(tmp_path / "dict.ltr.txt"))
    assert cli_main(["export-hf", str(path), str(tmp_path / "hf")]) == 1  # the command says the same line
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "dict.ltr.txt" in err and not (tmp_path / "hf").exists()


def test_dictionary_of_another_model(tmp_path):
    source, path = write_ctc(tmp_path)
    write_dictionary(tmp_path / "dict.ltr.txt", fairseq_symbols(source.vocab.tokens)[4:-1])
    with pytest.raises(ValueError) as e:
        load_model(path)
    _one_line(e.value, str(tmp_path / "dict.ltr.txt"), str(path), "not the dictionary")


def test_dictionary_for_a_pretraining_checkpoint(tmp_path):
    _, path = write_pretraining(tmp_path)
    with pytest.raises(ValueError) as e:
        load_model(path, dictionary=write_dictionary(tmp_path / "dict.ltr.txt", ["|", "A"]))
    _one_line(e.value, str(path), "no CTC head")


@pytest.mark.parametrize("option,value", [("layer_type", "conformer"), ("activation_fn", "relu"), ("quantize_input", True),
                                          ("pos_conv_depth", 5), ("extractor_mode", "none"), ("target_glu", True),
                                          ("quantize_targets", False)])
def test_unsupported_option(tmp_path, option, value):
    model = source_model("pretrain", "base")
    cfg = pretraining_sections(model.config)
    cfg["model"][option] = value
    torch.save(checkpoint(model, cfg), tmp_path / "m.pt")
    with pytest.raises(ValueError) as e:
        load_model(tmp_path / "m.pt")
    _one_line(e.value, "m.pt", f"fairseq {option}={value!r} is not supported")


@pytest.mark.parametrize("change,reason", [
    (lambda p: p["cfg"]["model"].update(_name="hubert"), "fairseq model 'hubert' is not wav2vec 2.0"),
    (lambda p: p["cfg"]["model"].update(conv_bias=None), "fairseq conv_bias is None, not a plain value"),
    # fairseq's default (BASE's 512-channel layers) for a missing option: the tensors show it is wrong
    (lambda p: p["cfg"]["model"].pop("conv_feature_layers"), "feature_extractor.conv_layers.0.0.weight has shape"),
    (lambda p: p["cfg"]["model"].update(conv_feature_layers="__import__('os').system('touch pwned')"),
     "is not a list of numbers"),
    (lambda p: p["cfg"]["model"].update(conv_feature_layers="[(512, 10, 5)] * 100000000"), "is not a list of numbers"),
    (lambda p: p["model"].update({"encoder.layers.0.adapter.weight": torch.zeros(1)}), "1 tensors ds_w2v has no place for"),
    (lambda p: p["model"].pop("quantizer.vars"), "1 tensors missing"),
    (lambda p: p["model"].update({"final_proj.weight": torch.zeros(3, 3)}), "final_proj.weight has shape (3, 3)"),
])
def test_broken_checkpoint(tmp_path, monkeypatch, change, reason):
    monkeypatch.chdir(tmp_path)
    model = source_model("pretrain", "base")
    payload = checkpoint(model, pretraining_sections(model.config))
    change(payload)
    torch.save(payload, tmp_path / "m.pt")
    with pytest.raises(ValueError) as e:
        load_model(tmp_path / "m.pt")
    _one_line(e.value, "m.pt", reason)
    assert not (tmp_path / "pwned").exists()
