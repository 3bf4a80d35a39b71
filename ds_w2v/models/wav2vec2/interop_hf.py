"""Conversion to and from HF transformers' wav2vec2 checkpoints: the architecture each task model
class names as its ``hf_architecture`` (``Wav2Vec2ForPreTraining``, ``Wav2Vec2ForCTC``,
``Wav2Vec2ForSequenceClassification``), found through ``registry.MODEL_TASKS``.

The key table below is the whole mapping; three tensors also change shape: our fused
``qkv_proj`` is HF's q/k/v projections stacked, our codebook [G, V, d] is HF's
[1, G*V, d], and the positional conv's weight-norm (g, v) are HF's parametrization
``original0`` / ``original1`` (older checkpoints: ``weight_g`` / ``weight_v``).
A folder is read and written as JSON + safetensors, without transformers; only
:func:`build_hf_model` / :func:`hf_twin` (transformers' model itself, for the benches and the
parity tests) import it.

This table depends on the model classes, never the reverse: ``factory.load_model`` reads a
folder through :func:`load_hf_folder`.
"""
from __future__ import annotations

import json
import logging
import re
import warnings
from pathlib import Path
from typing import Any

import torch

from ...text import CharVocab
from .config import Wav2Vec2Config
from .model import Wav2Vec2ForPretraining, Wav2Vec2Task
from .registry import MODEL_TASKS, hf_model_class, model_class

# (our name pattern, HF name template); applied to every key, first match wins.
KEY_TABLE: list[tuple[str, str]] = [
    (r"wav2vec2\.feature_extractor\.conv_layers\.(\d+)\.norm\.(weight|bias)",
     r"wav2vec2.feature_extractor.conv_layers.\1.layer_norm.\2"),
    (r"wav2vec2\.feature_extractor\.conv_layers\.(\d+)\.conv\.(weight|bias)",
     r"wav2vec2.feature_extractor.conv_layers.\1.conv.\2"),
    (r"wav2vec2\.feature_projection\.(layer_norm|projection)\.(weight|bias)", r"wav2vec2.feature_projection.\1.\2"),
    (r"wav2vec2\.mask_emb", "wav2vec2.masked_spec_embed"),
    (r"wav2vec2\.encoder\.pos_conv\.weight_g", "wav2vec2.encoder.pos_conv_embed.conv.parametrizations.weight.original0"),
    (r"wav2vec2\.encoder\.pos_conv\.weight_v", "wav2vec2.encoder.pos_conv_embed.conv.parametrizations.weight.original1"),
    (r"wav2vec2\.encoder\.pos_conv\.bias", "wav2vec2.encoder.pos_conv_embed.conv.bias"),
    (r"wav2vec2\.encoder\.layer_norm\.(weight|bias)", r"wav2vec2.encoder.layer_norm.\1"),
    (r"wav2vec2\.encoder\.layers\.(\d+)\.self_attn\.qkv_proj\.(weight|bias)", r"wav2vec2.encoder.layers.\1.attention.qkv.\2"),
    (r"wav2vec2\.encoder\.layers\.(\d+)\.self_attn\.out_proj\.(weight|bias)", r"wav2vec2.encoder.layers.\1.attention.out_proj.\2"),
    (r"wav2vec2\.encoder\.layers\.(\d+)\.self_attn_layer_norm\.(weight|bias)", r"wav2vec2.encoder.layers.\1.layer_norm.\2"),
    (r"wav2vec2\.encoder\.layers\.(\d+)\.ffn\.fc1\.(weight|bias)", r"wav2vec2.encoder.layers.\1.feed_forward.intermediate_dense.\2"),
    (r"wav2vec2\.encoder\.layers\.(\d+)\.ffn\.fc2\.(weight|bias)", r"wav2vec2.encoder.layers.\1.feed_forward.output_dense.\2"),
    (r"wav2vec2\.encoder\.layers\.(\d+)\.final_layer_norm\.(weight|bias)", r"wav2vec2.encoder.layers.\1.final_layer_norm.\2"),
    (r"quantizer\.weight_proj\.(weight|bias)", r"quantizer.weight_proj.\1"),
    (r"quantizer\.codevectors", "quantizer.codevectors"),
    (r"project_q\.(weight|bias)", r"project_q.\1"),
    (r"final_proj\.(weight|bias)", r"project_hid.\1"),
    (r"lm_head\.(weight|bias)", r"lm_head.\1"),
    (r"(projector|classifier)\.(weight|bias)", r"\1.\2"),
    (r"layer_weighting\.weights", "layer_weights"),
]
_NOT_EXPORTED = ("num_updates",)
# transformers' Wav2Vec2FeatureExtractor normalises with (x - mean) / sqrt(var + 1e-7), a constant
# in its code (zero_mean_unit_var_norm) that no preprocessor_config.json option changes
HF_NORMALIZE_EPS = 1e-7
log = logging.getLogger("ds_w2v.models")
# transformers' backbone alone: it loads as the pretraining model, its quantizer fresh
_BARE_BACKBONE = "Wav2Vec2Model"


def _architecture(task: str) -> str:
    arch = model_class(task).hf_architecture
    if arch is None:
        raise ValueError(f"task {task!r} has no HF export")
    return arch


def _to_hf_name(name: str) -> str:
    for pattern, template in KEY_TABLE:
        if re.fullmatch(pattern, name):
            return re.sub(pattern, template, name)
    raise KeyError(f"no HF name for parameter {name!r}")


def to_hf_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        if name in _NOT_EXPORTED:
            continue
        hf = _to_hf_name(name)
        if ".attention.qkv." in hf:
            for part, chunk in zip("qkv", tensor.chunk(3, dim=0)):
                out[hf.replace(".qkv.", f".{part}_proj.")] = chunk.contiguous()
        elif hf == "quantizer.codevectors":
            out[hf] = tensor.reshape(1, -1, tensor.shape[-1]).contiguous()
        else:
            out[hf] = tensor.contiguous()
    return out


def from_hf_state_dict(hf_state: dict[str, torch.Tensor], model: Wav2Vec2Task) -> dict[str, torch.Tensor]:
    """Our state dict (for ``model``'s parameter names) from an HF one. Missing keys raise."""
    hf_state = {k.replace("pos_conv_embed.conv.weight_g", "pos_conv_embed.conv.parametrizations.weight.original0")
                 .replace("pos_conv_embed.conv.weight_v", "pos_conv_embed.conv.parametrizations.weight.original1"): v
                for k, v in hf_state.items()}
    ours = model.state_dict()
    out: dict[str, torch.Tensor] = {}
    missing = []
    for name, ref in ours.items():
        if name in _NOT_EXPORTED:
            out[name] = ref
            continue
        hf = _to_hf_name(name)
        if ".attention.qkv." in hf:
            parts = [hf.replace(".qkv.", f".{p}_proj.") for p in "qkv"]
            if all(p in hf_state for p in parts):
                out[name] = torch.cat([hf_state[p] for p in parts], dim=0)
            else:
                missing.append(hf)
        elif hf in hf_state:
            out[name] = hf_state[hf].reshape(ref.shape)
        else:
            missing.append(hf)
    if missing:
        raise KeyError(f"HF checkpoint lacks {len(missing)} tensors, e.g. {missing[:3]}")
    return out


# --- configs ----------------------------------------------------------------------------------
def to_hf_config(config: Wav2Vec2Config, task: str, extra: dict[str, Any]) -> dict[str, Any]:
    c = config
    d: dict[str, Any] = {
        "model_type": "wav2vec2",
        "architectures": [_architecture(task)],
        "conv_dim": [ch for ch, _, _ in c.conv_layers],
        "conv_kernel": [k for _, k, _ in c.conv_layers],
        "conv_stride": [s for _, _, s in c.conv_layers],
        "num_feat_extract_layers": len(c.conv_layers),
        "conv_bias": c.conv_bias,
        "feat_extract_norm": c.extractor_mode,
        "feat_extract_activation": "gelu",
        "hidden_size": c.encoder_embed_dim,
        "num_hidden_layers": c.encoder_layers,
        "num_attention_heads": c.encoder_attention_heads,
        "intermediate_size": c.encoder_ffn_embed_dim,
        "hidden_act": "gelu",
        "do_stable_layer_norm": c.layer_norm_first,
        "layer_norm_eps": c.layer_norm_eps,
        "num_conv_pos_embeddings": c.conv_pos,
        "num_conv_pos_embedding_groups": c.conv_pos_groups,
        "hidden_dropout": c.dropout,
        "attention_dropout": c.attention_dropout,
        "activation_dropout": c.activation_dropout,
        "feat_proj_dropout": c.dropout_input,
        "feat_quantizer_dropout": c.dropout_features,
        "final_dropout": c.final_dropout,
        "layerdrop": c.encoder_layerdrop,
        "apply_spec_augment": True,
        "mask_time_prob": c.mask_prob,
        "mask_time_length": c.mask_length,
        "mask_time_min_masks": c.mask_min_spans,
        "mask_feature_prob": c.mask_channel_prob,
        "mask_feature_length": c.mask_channel_length,
        "mask_feature_min_masks": c.mask_channel_min_spans,
        "num_codevectors_per_group": c.latent_vars,
        "num_codevector_groups": c.latent_groups,
        "codevector_dim": c.latent_dim,
        "proj_codevector_dim": c.final_dim,
        "contrastive_logits_temperature": c.logit_temp,
        "num_negatives": c.num_negatives,
        "diversity_loss_weight": c.diversity_weight,
        "use_weighted_layer_sum": c.use_weighted_layer_sum,
        "classifier_proj_size": c.classifier_proj_size,
        "initializer_range": 0.02,
        "add_adapter": False,
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "ctc_loss_reduction": "sum",
        "ctc_zero_infinity": True,
        "vocab_size": len(extra.get("vocab", [])) or 32,
        # ours, not HF's: kept so a round trip restores every field
        "ds_w2v": {"feature_grad_mult": c.feature_grad_mult, "normalize_audio": c.normalize_audio,
                   "normalize_audio_eps": c.normalize_audio_eps,
                   "latent_temp": list(c.latent_temp), "feature_pen_weight": c.feature_pen_weight},
    }
    if "labels" in model_class(task).head_state:
        labels = extra["labels"]
        d["id2label"] = {str(i): lab for i, lab in enumerate(labels)}
        d["label2id"] = {lab: i for i, lab in enumerate(labels)}
        d["num_labels"] = len(labels)
    return d


def from_hf_config(d: dict[str, Any]) -> Wav2Vec2Config:
    ours = d.get("ds_w2v", {})
    return Wav2Vec2Config(
        conv_layers=tuple(zip(d["conv_dim"], d["conv_kernel"], d["conv_stride"])),
        extractor_mode=d.get("feat_extract_norm", "group"),
        conv_bias=d.get("conv_bias", False),
        feature_grad_mult=ours.get("feature_grad_mult", 0.1),
        normalize_audio=ours.get("normalize_audio", d.get("feat_extract_norm") == "layer"),
        # a folder transformers wrote (no "ds_w2v" section) normalises as its feature extractor does
        normalize_audio_eps=ours.get("normalize_audio_eps", HF_NORMALIZE_EPS),
        encoder_layers=d["num_hidden_layers"],
        encoder_embed_dim=d["hidden_size"],
        encoder_ffn_embed_dim=d["intermediate_size"],
        encoder_attention_heads=d["num_attention_heads"],
        layer_norm_first=d.get("do_stable_layer_norm", False),
        layer_norm_eps=d.get("layer_norm_eps", 1e-5),
        conv_pos=d.get("num_conv_pos_embeddings", 128),
        conv_pos_groups=d.get("num_conv_pos_embedding_groups", 16),
        dropout=d.get("hidden_dropout", 0.1),
        attention_dropout=d.get("attention_dropout", 0.1),
        activation_dropout=d.get("activation_dropout", 0.0),
        dropout_input=d.get("feat_proj_dropout", 0.0),
        dropout_features=d.get("feat_quantizer_dropout", 0.0),
        final_dropout=d.get("final_dropout", 0.0),
        encoder_layerdrop=d.get("layerdrop", 0.0),
        mask_prob=d.get("mask_time_prob", 0.05),
        mask_length=d.get("mask_time_length", 10),
        mask_min_spans=d.get("mask_time_min_masks", 2),
        mask_channel_prob=d.get("mask_feature_prob", 0.0),
        mask_channel_length=d.get("mask_feature_length", 10),
        mask_channel_min_spans=d.get("mask_feature_min_masks", 0),
        latent_vars=d.get("num_codevectors_per_group", 320),
        latent_groups=d.get("num_codevector_groups", 2),
        latent_dim=d.get("codevector_dim", 256),
        final_dim=d.get("proj_codevector_dim", 256),
        latent_temp=tuple(ours.get("latent_temp", (2.0, 0.5, 0.999995))),
        num_negatives=d.get("num_negatives", 100),
        logit_temp=d.get("contrastive_logits_temperature", 0.1),
        diversity_weight=d.get("diversity_loss_weight", 0.1),
        feature_pen_weight=ours.get("feature_pen_weight", 10.0),
        classifier_proj_size=d.get("classifier_proj_size", 256),
        use_weighted_layer_sum=d.get("use_weighted_layer_sum", False),
    )


# --- transformers' twin ------------------------------------------------------------------------
def build_hf_model(config: Wav2Vec2Config, task: str = "pretrain", extra: dict[str, Any] | None = None,
                   *, attn_implementation: str = "sdpa"):
    """transformers' ``Wav2Vec2ForPreTraining`` / ``ForCTC`` / ``ForSequenceClassification`` for
    ``task`` with the config equivalent to ``config`` (:func:`to_hf_config`), freshly initialised
    by transformers. ``extra``: the task's data as ``extra_state()`` gives it (CTC: ``vocab``,
    sizing the head; classification: ``labels``, needed)."""
    import transformers

    d = to_hf_config(config, task, extra or {})
    for key in ("model_type", "architectures", "ds_w2v"):  # config.json's, not Wav2Vec2Config's arguments
        d.pop(key)
    hf_config = transformers.Wav2Vec2Config(**d)
    hf_config._attn_implementation = attn_implementation
    return getattr(transformers, _architecture(task))(hf_config)


def hf_twin(model: Wav2Vec2Task, *, attn_implementation: str = "sdpa"):
    """``model``'s twin in transformers: :func:`build_hf_model` of its config and task, with its
    weights (every tensor mapped: a strict load) and its train / eval mode."""
    hf = build_hf_model(model.config, model.task, model.extra_state(), attn_implementation=attn_implementation)
    hf.load_state_dict(to_hf_state_dict(model.state_dict()), strict=True)
    return hf.train(model.training)


# --- folders ----------------------------------------------------------------------------------
def export_hf(model: Wav2Vec2Task, out_dir: str | Path) -> Path:
    """Write ``out_dir`` so that ``transformers.<Arch>.from_pretrained(out_dir)`` loads it; for a
    model whose head carries a vocabulary (CTC) also the tokenizer and feature-extractor files
    ``pipeline("automatic-speech-recognition", model=out_dir)`` needs.

    transformers cannot express another normalisation epsilon than its 1e-7: a model that
    normalises with another (1e-5, read from fairseq) is written with ``do_normalize`` true, its
    epsilon kept in config.json's "ds_w2v" section (``load_model(out_dir)`` uses it), and one
    warning line saying that transformers' own feature extractor will differ on quiet audio."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    extra = model.extra_state()
    hf_config = to_hf_config(model.config, model.task, extra)
    (out / "config.json").write_text(json.dumps(hf_config, indent=2))
    c = model.config
    if c.normalize_audio and c.normalize_audio_eps != HF_NORMALIZE_EPS:
        log.warning("%s: transformers' feature extractor normalises audio with variance + %g, this model with + %g "
                    "(fairseq's): quiet audio (RMS 0.01) gets other logits there; load_model(%s) keeps %g",
                    out, HF_NORMALIZE_EPS, c.normalize_audio_eps, out, c.normalize_audio_eps)
    tensors = to_hf_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()})
    if not (model.config.mask_prob > 0 or model.config.mask_channel_prob > 0):
        # transformers creates masked_spec_embed only when a mask probability is > 0; written
        # anyway, from_pretrained warns "masked_spec_embed UNEXPECTED" for a model trained without
        # masking. The embedding is not used by such a model; load_model reads the folder back with
        # a freshly initialised one (a fine-tune with masking from the folder learns it anew)
        tensors.pop("wav2vec2.masked_spec_embed", None)
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "preprocessor_config.json").write_text(json.dumps({
        "feature_extractor_type": "Wav2Vec2FeatureExtractor",
        "feature_size": 1,
        "sampling_rate": 16000,
        "padding_value": 0.0,
        "padding_side": "right",
        "do_normalize": model.config.normalize_audio,
        "return_attention_mask": True,  # ds_w2v always masks padding
        "processor_class": "Wav2Vec2Processor",
    }, indent=2))
    if "vocab" in extra:
        CharVocab(extra["vocab"]).save(out / "vocab.json")
        (out / "tokenizer_config.json").write_text(json.dumps({
            "tokenizer_class": "Wav2Vec2CTCTokenizer",
            "processor_class": "Wav2Vec2Processor",
            "unk_token": "<unk>", "pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>",
            "word_delimiter_token": "|", "do_lower_case": False,
        }, indent=2))
        (out / "special_tokens_map.json").write_text(json.dumps({
            "unk_token": "<unk>", "pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>"}, indent=2))
    return out


def _read_hf_weights(folder: Path) -> dict[str, torch.Tensor]:
    if (folder / "model.safetensors").is_file():
        from safetensors.torch import load_file

        return load_file(str(folder / "model.safetensors"))
    if (folder / "pytorch_model.bin").is_file():
        return torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
    raise FileNotFoundError(f"{folder}: no model.safetensors or pytorch_model.bin")


def load_hf_folder(folder: str | Path) -> Wav2Vec2Task:
    """A task model from an HF wav2vec2 folder. ``Wav2Vec2Model`` / ``Wav2Vec2ForPreTraining``
    load as ``pretrain`` (a bare backbone gets a freshly initialised quantizer, with a warning)."""
    folder = Path(folder)
    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{folder}: not a HF model folder (no config.json)")
    d = json.loads(cfg_path.read_text())
    if d.get("model_type") != "wav2vec2":
        raise ValueError(f"{cfg_path}: model_type {d.get('model_type')!r} is not wav2vec2")
    arch = (d.get("architectures") or ["Wav2Vec2ForPreTraining"])[0]
    cls = hf_model_class(Wav2Vec2ForPretraining.hf_architecture if arch == _BARE_BACKBONE else arch)
    if cls is None:
        supported = sorted(c.hf_architecture for c in MODEL_TASKS.values() if c.hf_architecture)
        raise ValueError(f"{cfg_path}: unsupported architecture {arch!r}; supported: {supported}")
    config = from_hf_config(d)
    hf_state = _read_hf_weights(folder)
    if not any(k.startswith("wav2vec2.") for k in hf_state):  # saved from a bare Wav2Vec2Model
        hf_state = {f"wav2vec2.{k}": v for k, v in hf_state.items()}
    head = {}
    if "vocab" in cls.head_state:
        if not (folder / "vocab.json").is_file():
            raise FileNotFoundError(f"{folder}: CTC model without vocab.json")
        head["vocab"] = CharVocab.load(folder / "vocab.json")
    if "labels" in cls.head_state:
        id2label = d.get("id2label") or {str(i): str(i) for i in range(d.get("num_labels", 2))}
        head["labels"] = [id2label[str(i)] for i in range(len(id2label))]
    model = cls.from_head_state(config, **head)
    if isinstance(model, Wav2Vec2ForPretraining) and "quantizer.codevectors" not in hf_state:
        warnings.warn(f"{folder}: no quantizer in the checkpoint; it starts freshly initialised")
        own = to_hf_state_dict(model.state_dict())
        hf_state = {**{k: v for k, v in own.items() if not k.startswith("wav2vec2.")}, **hf_state}
    if "wav2vec2.masked_spec_embed" not in hf_state:  # HF drops it when mask probs are 0
        hf_state["wav2vec2.masked_spec_embed"] = model.wav2vec2.mask_emb.detach().clone()
    model.load_state_dict(from_hf_state_dict(hf_state, model))
    return model
