"""Reading fairseq's wav2vec 2.0 checkpoints (``.pt``) without fairseq: pretraining models
(fairseq's ``wav2vec2``: wav2vec_small.pt, libri960_big.pt, wav2vec_vox_new.pt) and CTC fine-tuned
ones (``wav2vec_ctc``: wav2vec_small_960h.pt, ...), in the BASE layout (group-norm conv encoder,
post-LN blocks) and the LARGE one (layer-norm conv encoder with bias, pre-LN blocks).

A fairseq checkpoint is one ``torch.save`` of a dict: ``model`` (the state dict) and the training
configuration, either ``cfg`` (a plain dict of sections ``model``, ``task``, ``criterion``; fairseq
since its hydra port; from 2020-10-20 to 2021-03-03 fairseq's save_state pickled it as an omegaconf
``DictConfig``, read here from its pickled ``_content`` without omegaconf) or ``args`` (an
``argparse.Namespace`` with the options flat; older files), beside optimizer and meter state that is
not read here. An option the configuration lacks takes fairseq's default, as fairseq's own reader
(``convert_namespace_to_omegaconf``, then its config dataclasses) gives it. A fine-tuned model
nests the pretraining model's configuration under ``w2v_args`` and its weights under
``w2v_encoder.w2v_model.``; its CTC projection is ``w2v_encoder.proj``.

fairseq normalises a LARGE model's waveform (task option ``normalize``) in its dataset with
``F.layer_norm(wav, wav.shape)``, eps 1e-5; every model read from fairseq gets
``normalize_audio_eps=1e-5`` (transformers' feature extractor, and so ds_w2v's default, uses 1e-7).

The key table below is the whole mapping of tensor names. Two tensors change shape: fairseq's
separate q/k/v projections are our fused ``qkv_proj``, and its codebook ``quantizer.vars``
[1, G*V, d] is our [G, V, d].

The CTC head's symbols are not in the checkpoint: fairseq reads them from the fine-tuning data
folder's ``dict.<labels>.txt`` (``dict.ltr.txt`` for letters), so :func:`load_fairseq_checkpoint`
needs that file (see docs/interop.md, "Import from fairseq").
"""
from __future__ import annotations

import argparse
import ast
import pickle
import pickletools
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from ...text import SPECIAL_TOKENS, CharVocab
from .config import Wav2Vec2Config
from .model import Wav2Vec2Task
from .registry import model_class

# (our name pattern, fairseq name template); first match wins. In the templates "{w2v}" is where
# the backbone sits ("" in a pretraining checkpoint, "w2v_encoder.w2v_model." in a fine-tuned
# one), "{norm}" is a conv layer's norm module (fairseq builds each layer as Sequential(conv,
# dropout, norm, GELU): the GroupNorm is item 2; the LayerNorm is item 1 of a Sequential(
# TransposeLast, LayerNorm, TransposeLast) at item 2) and "{qkv}" stands for q, k and v.
KEY_TABLE: list[tuple[str, str]] = [
    (r"wav2vec2\.feature_extractor\.conv_layers\.(\d+)\.conv\.(weight|bias)", r"{w2v}feature_extractor.conv_layers.\1.0.\2"),
    (r"wav2vec2\.feature_extractor\.conv_layers\.(\d+)\.norm\.(weight|bias)", r"{w2v}feature_extractor.conv_layers.\1.{norm}.\2"),
    (r"wav2vec2\.feature_projection\.layer_norm\.(weight|bias)", r"{w2v}layer_norm.\1"),
    (r"wav2vec2\.feature_projection\.projection\.(weight|bias)", r"{w2v}post_extract_proj.\1"),
    (r"wav2vec2\.mask_emb", "{w2v}mask_emb"),
    (r"wav2vec2\.encoder\.pos_conv\.(weight_g|weight_v|bias)", r"{w2v}encoder.pos_conv.0.\1"),
    (r"wav2vec2\.encoder\.layer_norm\.(weight|bias)", r"{w2v}encoder.layer_norm.\1"),
    (r"wav2vec2\.encoder\.layers\.(\d+)\.self_attn\.qkv_proj\.(weight|bias)", r"{w2v}encoder.layers.\1.self_attn.{qkv}_proj.\2"),
    (r"wav2vec2\.encoder\.layers\.(\d+)\.self_attn\.out_proj\.(weight|bias)", r"{w2v}encoder.layers.\1.self_attn.out_proj.\2"),
    (r"wav2vec2\.encoder\.layers\.(\d+)\.(self_attn_layer_norm|final_layer_norm)\.(weight|bias)", r"{w2v}encoder.layers.\1.\2.\3"),
    (r"wav2vec2\.encoder\.layers\.(\d+)\.ffn\.(fc1|fc2)\.(weight|bias)", r"{w2v}encoder.layers.\1.\2.\3"),
    (r"quantizer\.weight_proj\.(weight|bias)", r"quantizer.weight_proj.\1"),
    (r"quantizer\.codevectors", "quantizer.vars"),
    (r"(project_q|final_proj)\.(weight|bias)", r"\1.\2"),
    (r"lm_head\.(weight|bias)", r"w2v_encoder.proj.\1"),
]
_FINETUNED_PREFIX = "w2v_encoder.w2v_model."
_CTC_HEAD = "w2v_encoder.proj"
_CONV_NORM = {"group": "2", "layer": "2.1"}

# fairseq's model names (``cfg.model._name``, or ``args.arch``) -> our task
FAIRSEQ_MODELS = {"wav2vec2": "pretrain", "wav2vec_ctc": "ctc"}
# fairseq options whose other values change the network, and the values ds_w2v implements; an
# option a checkpoint does not hold is fairseq's default, which is the first value
SUPPORTED_OPTIONS: dict[str, tuple[Any, ...]] = {
    "extractor_mode": ("default", "layer_norm"),
    "activation_fn": ("gelu",),
    "layer_type": ("transformer",),  # newer fairseq: "conformer", "trf_adp" blocks
    "pos_conv_depth": (1,),  # newer fairseq: a stack of positional convolutions
    "quantize_input": (False,),
    "target_glu": (False,),
    "quantizer_depth": (1,),  # an MLP before the codebook logits
    "crop_seq_to_multiple": (1,),
}
# fine-tuning options (Wav2Vec2AsrConfig) with the same reading
SUPPORTED_FINETUNE_OPTIONS: dict[str, tuple[Any, ...]] = {
    "blank_weight": (0,),  # fairseq adds it to the blank's logit when decoding; our head has no such term
}
# fairseq's defaults for the options read here (fairseq 0.12.2, fairseq/models/wav2vec/wav2vec2.py,
# Wav2Vec2Config): fairseq reads a configuration that lacks an option (a Namespace from before its
# hydra port saved only the options given or filled in) with these, so ds_w2v does too. They are
# the same since 2020-11-18, when conv_feature_layers' default became BASE's 7 layers (before:
# kernels 10, 8, 4, 4, 4, 1, whose tensors have other shapes, so a file made with that default and
# lacking the option stops at the first conv weight's shape; every shape is checked).
FAIRSEQ_DEFAULTS: dict[str, Any] = {
    "extractor_mode": "default", "conv_feature_layers": "[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] + [(512,2,2)]",
    "conv_bias": False, "encoder_layers": 12, "encoder_embed_dim": 768, "encoder_ffn_embed_dim": 3072,
    "encoder_attention_heads": 12, "layer_norm_first": False, "conv_pos": 128, "conv_pos_groups": 16,
    "quantize_targets": False, "feature_grad_mult": 1.0, "dropout": 0.1, "attention_dropout": 0.1,
    "activation_dropout": 0.0, "dropout_input": 0.0, "dropout_features": 0.0, "encoder_layerdrop": 0.0,
    "mask_prob": 0.65, "mask_length": 10, "mask_channel_prob": 0.0, "mask_channel_length": 10, "latent_vars": 320,
    "latent_groups": 2, "latent_dim": 0, "final_dim": 0, "latent_temp": (2.0, 0.5, 0.999995),
    "num_negatives": 100, "logit_temp": 0.1,
}
# the fine-tuning options' defaults (ibid. wav2vec2_asr.py, Wav2Vec2AsrConfig; ``layerdrop`` is
# encoder_layerdrop) for those FINETUNE_OVERRIDES names: fairseq's encoder always overrides the
# pretraining values with these when the fine-tuning configuration lacks them
FAIRSEQ_FINETUNE_DEFAULTS: dict[str, Any] = {
    "dropout": 0.0, "activation_dropout": 0.0, "attention_dropout": 0.0, "dropout_input": 0.0, "mask_prob": 0.5,
    "mask_length": 10, "mask_channel_prob": 0.0, "mask_channel_length": 10, "feature_grad_mult": 0.0,
    "final_dropout": 0.0, "layerdrop": 0.0, "apply_mask": False,
}
# fairseq's waveform normalisation: F.layer_norm(wav, wav.shape) in its audio dataset, whose eps is
# torch's default (added to the variance, in squared sample units)
FAIRSEQ_NORMALIZE_EPS = 1e-5
# a fine-tuning configuration's options that replace the pretraining ones in the fine-tuned model
# (fairseq wav2vec2_asr.py, Wav2VecEncoder's arg_overrides; ``layerdrop`` is its name for
# encoder_layerdrop); an option it lacks is FAIRSEQ_FINETUNE_DEFAULTS' value, as in fairseq
FINETUNE_OVERRIDES = {**{name: name for name in (
    "dropout", "activation_dropout", "attention_dropout", "dropout_input", "mask_prob", "mask_length",
    "mask_channel_prob", "mask_channel_length", "feature_grad_mult", "final_dropout")}, "layerdrop": "encoder_layerdrop"}
# fairseq's Dictionary puts these before a dictionary file's symbols (ids 0-3: bos, pad, eos, unk)
FAIRSEQ_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")
_MAX_CONV_LAYERS = 64  # a bound on ``[...] * n`` in conv_feature_layers, so a hostile n cannot fill memory


# --- reading the file ---------------------------------------------------------------------------
class Unread:
    """Stands in for a class or function a checkpoint names beyond torch's weights-only allowlist
    (numpy scalars in fairseq's meter state, an omegaconf container, anything else): it keeps the
    arguments and state it is given and runs nothing. ``name`` is what the file named."""

    name = "?"

    def __init__(self, *args: Any, **kwargs: Any):
        self.args = args

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _stand_in(name: str) -> type[Unread]:
    return type(f"Unread[{name}]", (Unread,), {"name": name})


def _pickled_globals(path: Path, zipped: bool) -> list[str]:
    """The classes and functions the file's pickle names ("module.name")."""
    if zipped:
        return torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    # torch < 1.6's format: three small pickles (magic number, protocol, system info) before the
    # object's; torch offers no scan of it, so read the opcodes (pickletools runs nothing)
    with open(path, "rb") as f:
        for _ in range(3):
            for _ in pickletools.genops(f):
                pass
        return sorted({arg.replace(" ", ".") for op, arg, _ in pickletools.genops(f) if op.name == "GLOBAL"})


def load_torch_file(path: str | Path) -> Any:
    """A ``torch.save`` file read on CPU with ``weights_only=True``: torch's restricted unpickler,
    which builds tensors and plain containers only.

    fairseq pickles more than that: its configuration as an ``argparse.Namespace`` in older files
    (allowed here: it only sets attributes) and, in meter and optimizer state that is never read,
    numpy scalars and whatever else was logged. ``weights_only=True`` alone refuses such a file,
    and ``weights_only=False`` would run any code the pickle names; so when the plain read is
    refused, the file is read again with every other name its pickle holds mapped to an
    :class:`Unread` stand-in, which records its arguments and runs nothing (memory-mapped in the
    zip format, so the optimizer state it skips is never read from disk).
    """
    path = Path(path)
    try:  # a ds_w2v model file, or a fairseq one holding plain data only
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        pass
    zipped = zipfile.is_zipfile(path)
    # torch's own allowlist wins over these: a stand-in never replaces a tensor rebuild function
    stand_ins = [(_stand_in(name), name) for name in _pickled_globals(path, zipped) if name != "argparse.Namespace"]
    with torch.serialization.safe_globals([argparse.Namespace, *stand_ins]):
        return torch.load(path, map_location="cpu", weights_only=True, mmap=zipped)


def is_fairseq_checkpoint(payload: Any) -> bool:
    """A fairseq training checkpoint: a state dict under ``model`` and a ``cfg`` or ``args``."""
    return isinstance(payload, dict) and isinstance(payload.get("model"), dict) and ("cfg" in payload or "args" in payload)


# --- the configuration ---------------------------------------------------------------------------
# omegaconf's containers and value nodes as a pickle names them (omegaconf 2.0, fairseq's then):
# a DictConfig / ListConfig pickles its __dict__, whose "_content" is a dict / list of nodes (or
# None); a value node (AnyNode, StringNode, ...) pickles its "_val". fairseq made its cfg with
# OmegaConf.create(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)): plain values only,
# no interpolation or enum left; "???" is omegaconf's mark of a missing value.
_OMEGACONF = "omegaconf."
_OMEGACONF_MISSING = "???"


def _from_omegaconf(node: Unread) -> Any:
    """The plain value of a pickled omegaconf node (its stand-in): a dict, list or value; a node
    that is not one of omegaconf's containers or value nodes stays as it is."""
    state = getattr(node, "state", None)
    if not isinstance(state, dict):
        return node
    if "_content" in state:
        content = state["_content"]
        if isinstance(content, dict):
            items = {key: _plain(value) for key, value in content.items()}
            return {key: value for key, value in items.items() if value != _OMEGACONF_MISSING}
        return _plain(content)
    if "_val" in state:
        return _plain(state["_val"])
    return node


def _plain(value: Any) -> Any:
    """``value`` with every ``argparse.Namespace`` and pickled omegaconf container turned into a
    dict (a hydra-era cfg may still hold an old Namespace, as ``w2v_args`` of a model fine-tuned
    from an older checkpoint)."""
    if isinstance(value, Unread) and value.name.startswith(_OMEGACONF):
        value = _from_omegaconf(value)
    if isinstance(value, argparse.Namespace):
        value = vars(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def _sections(cfg: dict[str, Any]) -> tuple[dict, dict, dict]:
    """(model, task, criterion) options: sections of a hydra-era cfg, or one flat Namespace."""
    if isinstance(cfg.get("model"), dict):
        return cfg["model"], cfg.get("task") or {}, cfg.get("criterion") or {}
    return cfg, cfg, cfg


def _literal(text: str, source: str, key: str) -> Any:
    """fairseq writes some options as Python source ("[(512, 10, 5)] + [(512, 3, 2)] * 4 + ...",
    "(2,0.5,0.999995)") and eval()s them; this reads list and tuple literals of numbers joined by
    + and * only, so nothing in the file runs."""
    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [value(e) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return value(node.left) + value(node.right)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
            left, right = value(node.left), value(node.right)
            if isinstance(left, list) and type(right) is int and len(left) * right <= _MAX_CONV_LAYERS:
                return left * right
        raise ValueError(ast.dump(node)[:80])

    try:
        return value(ast.parse(text, mode="eval").body)
    except (SyntaxError, ValueError, TypeError):
        raise ValueError(f"{source}: fairseq {key}={text!r} is not a list of numbers") from None


def _option(section: dict, key: str, source: str, default: Any = None) -> Any:
    if key in section:
        value = section[key]
    elif default is not None:
        value = default
    else:
        raise ValueError(f"{source}: the checkpoint's model configuration lacks {key}")
    if value is None or isinstance(value, Unread):
        what = f"a pickled {value.name}" if isinstance(value, Unread) else "None"
        raise ValueError(f"{source}: fairseq {key} is {what}, not a plain value")
    return value


def _check_supported(section: dict, table: dict[str, tuple[Any, ...]], source: str) -> None:
    for key, allowed in table.items():
        if key in section and section[key] not in allowed:
            raise ValueError(f"{source}: fairseq {key}={section[key]!r} is not supported "
                             f"(ds_w2v implements {' or '.join(map(repr, allowed))})")


def _conv_layers(section: dict, source: str) -> tuple[tuple[int, int, int], ...]:
    spec = _option(section, "conv_feature_layers", source, FAIRSEQ_DEFAULTS["conv_feature_layers"])
    layers = _literal(spec, source, "conv_feature_layers") if isinstance(spec, str) else spec
    if not (isinstance(layers, (list, tuple)) and layers and all(
            isinstance(layer, (list, tuple)) and len(layer) == 3 and all(type(x) is int and x > 0 for x in layer)
            for layer in layers)):
        raise ValueError(f"{source}: fairseq conv_feature_layers={spec!r} is not a list of (dim, kernel, stride)")
    return tuple(tuple(layer) for layer in layers)


def config_from_fairseq(cfg: Any, source: str) -> tuple[str, Wav2Vec2Config, str]:
    """(our task, the model's :class:`Wav2Vec2Config`, fairseq's ``labels``: the ``dict.<labels>.txt``
    its CTC outputs are named by) from a checkpoint's ``cfg`` or ``args``."""
    cfg = _plain(cfg)
    if not isinstance(cfg, dict):
        what = f"a pickled {cfg.name}" if isinstance(cfg, Unread) else type(cfg).__name__
        raise ValueError(f"{source}: the checkpoint's configuration is {what}, "
                         "not a dict, argparse.Namespace or omegaconf DictConfig")
    model, task, criterion = _sections(cfg)
    name = model.get("_name") or model.get("arch")
    if name not in FAIRSEQ_MODELS:
        raise ValueError(f"{source}: fairseq model {name!r} is not wav2vec 2.0 "
                         f"(this reader knows {', '.join(map(repr, FAIRSEQ_MODELS))})")
    ours = FAIRSEQ_MODELS[name]
    finetune = None
    if ours == "ctc":
        finetune, w2v = model, _plain(model.get("w2v_args"))
        if not isinstance(w2v, dict):
            raise ValueError(f"{source}: fine-tuned checkpoint without w2v_args; its architecture is in "
                             f"{model.get('w2v_path')!r}, which this reader does not open")
        # the network and its pretraining objective are the pretraining run's
        model, _, criterion = _sections(w2v)
        if (model.get("_name") or model.get("arch")) != "wav2vec2":
            raise ValueError(f"{source}: fine-tuned from {model.get('_name') or model.get('arch')!r}, not wav2vec2")
        _check_supported(finetune, SUPPORTED_FINETUNE_OPTIONS, source)
    _check_supported(model, SUPPORTED_OPTIONS, source)
    if ours == "pretrain" and not _option(model, "quantize_targets", source, FAIRSEQ_DEFAULTS["quantize_targets"]):
        raise ValueError(f"{source}: fairseq quantize_targets=False is not supported (ds_w2v pretrains against a quantizer)")

    def opt(key: str) -> Any:
        return _option(model, key, source, FAIRSEQ_DEFAULTS.get(key))

    embed_dim = int(opt("encoder_embed_dim"))
    final_dim = int(opt("final_dim")) or embed_dim  # fairseq: final_dim <= 0 means encoder_embed_dim
    latent_temp = opt("latent_temp")
    fields: dict[str, Any] = dict(
        conv_layers=_conv_layers(model, source),
        extractor_mode={"default": "group", "layer_norm": "layer"}[opt("extractor_mode")],
        conv_bias=bool(opt("conv_bias")),
        feature_grad_mult=float(opt("feature_grad_mult")),
        # the waveform normalisation is a task option in fairseq (AudioPretrainingConfig.normalize)
        normalize_audio=bool(task.get("normalize", (finetune or {}).get("normalize", False))),
        normalize_audio_eps=FAIRSEQ_NORMALIZE_EPS,
        encoder_layers=int(opt("encoder_layers")),
        encoder_embed_dim=embed_dim,
        encoder_ffn_embed_dim=int(opt("encoder_ffn_embed_dim")),
        encoder_attention_heads=int(opt("encoder_attention_heads")),
        layer_norm_first=bool(opt("layer_norm_first")),
        conv_pos=int(opt("conv_pos")),
        conv_pos_groups=int(opt("conv_pos_groups")),
        dropout=float(opt("dropout")),
        attention_dropout=float(opt("attention_dropout")),
        activation_dropout=float(opt("activation_dropout")),
        dropout_input=float(opt("dropout_input")),
        dropout_features=float(opt("dropout_features")),
        encoder_layerdrop=float(opt("encoder_layerdrop")),
        mask_prob=float(opt("mask_prob")),
        mask_length=int(opt("mask_length")),
        mask_channel_prob=float(opt("mask_channel_prob")),
        mask_channel_length=int(opt("mask_channel_length")),
        latent_vars=int(opt("latent_vars")),
        latent_groups=int(opt("latent_groups")),
        latent_dim=int(opt("latent_dim")) or final_dim,  # fairseq: latent_dim <= 0 means final_dim
        final_dim=final_dim,
        latent_temp=_literal(latent_temp, source, "latent_temp") if isinstance(latent_temp, str) else latent_temp,
        num_negatives=int(opt("num_negatives")),
        logit_temp=float(opt("logit_temp")),
    )
    # the criterion's loss_weights are (diversity, feature penalty) weights; a run without them
    # keeps ours, which are fairseq's BASE recipe values
    weights = criterion.get("loss_weights")
    weights = _literal(weights, source, "loss_weights") if isinstance(weights, str) else weights
    if isinstance(weights, (list, tuple)) and len(weights) == 2:
        fields.update(diversity_weight=float(weights[0]), feature_pen_weight=float(weights[1]))
    if finetune is not None:
        def ft(key: str) -> Any:
            return _option(finetune, key, source, FAIRSEQ_FINETUNE_DEFAULTS[key])

        fields.update({field: (int if field.endswith("_length") else float)(ft(theirs))
                       for theirs, field in FINETUNE_OVERRIDES.items()})
        if not ft("apply_mask"):  # fairseq's default: no masking while fine-tuning
            fields.update(mask_prob=0.0, mask_channel_prob=0.0)
    try:
        config = Wav2Vec2Config(**fields)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{source}: {e}") from None
    labels = task.get("labels") or "ltr"
    return ours, config, str(labels)


# --- the dictionary ------------------------------------------------------------------------------
def read_dictionary(path: str | Path) -> list[str]:
    """fairseq's symbols for a ``dict.*.txt`` (lines ``SYMBOL COUNT``, optionally followed by
    ``#fairseq:overwrite``), by id: its four specials, then the file's symbols in file order."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    symbols = list(FAIRSEQ_SPECIALS)
    for number, line in enumerate(lines, 1):
        parts = line.rstrip().rsplit(" ", 1)
        overwrite = len(parts) == 2 and parts[1] == "#fairseq:overwrite"
        if overwrite:
            parts = parts[0].rsplit(" ", 1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit() or not parts[0]:
            raise ValueError(f"{path}:{number}: not a fairseq dictionary line ('SYMBOL COUNT'): {line!r}")
        symbol = parts[0]
        if symbol in symbols:
            if overwrite:  # a new count for a symbol already there: no new id
                continue
            raise ValueError(f"{path}:{number}: {symbol!r} appears twice")
        symbols.append(symbol)
    return symbols


def ctc_vocab(symbols: list[str], source: str) -> tuple[CharVocab, list[int]]:
    """Our vocabulary for fairseq's ``symbols``, and for each of our ids the fairseq id (row of the
    CTC projection) it takes.

    fairseq's CTC blank is id 0, its Dictionary's ``<s>``; ours is id 0 named ``<pad>``, so ids 0
    and 1 swap names and keep their rows, as transformers' conversion script does ("fairseq has
    the <pad> and <s> switched"). Our vocabulary keeps the word delimiter ``|`` at id 4: when the
    dictionary puts it elsewhere, its row moves with it."""
    names = [SPECIAL_TOKENS[0], SPECIAL_TOKENS[1], *symbols[2:]]  # <pad>, <s>, </s>, <unk>, the file's
    first = len(FAIRSEQ_SPECIALS)
    if "|" not in names[first:]:
        raise ValueError(f"{source}: no word delimiter '|' among the symbols (ds_w2v's CTC vocabulary needs one)")
    delimiter = names.index("|")
    order = [*range(first), delimiter, *(i for i in range(first, len(names)) if i != delimiter)]
    return CharVocab([names[i] for i in order]), order


# --- the weights ---------------------------------------------------------------------------------
def _fairseq_names(name: str, prefix: str, norm: str) -> list[str]:
    """The fairseq tensors that make our parameter ``name`` (three for a fused qkv_proj)."""
    for pattern, template in KEY_TABLE:
        if re.fullmatch(pattern, name):
            full = re.sub(pattern, template, name).replace("{w2v}", prefix).replace("{norm}", norm)
            return [full.replace("{qkv}", p) for p in "qkv"] if "{qkv}" in full else [full]
    raise KeyError(f"no fairseq name for parameter {name!r}")


def from_fairseq_state_dict(fs_state: dict[str, torch.Tensor], model: Wav2Vec2Task, source: str,
                            head_rows: list[int] | None = None) -> dict[str, torch.Tensor]:
    """Our state dict (for ``model``'s parameter names, ``num_updates`` aside) from fairseq's.
    ``head_rows``: the fairseq row of each of our CTC outputs. A missing tensor, one left over
    (a part of the network this reader does not know) or a shape the config does not predict is
    an error."""
    c = model.config
    prefix = _FINETUNED_PREFIX if model.task == "ctc" else ""
    norm = _CONV_NORM[c.extractor_mode]
    out: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    missing: list[str] = []
    for name, ref in model.state_dict().items():
        if name == "num_updates":
            continue
        if name.startswith("wav2vec2.feature_projection.projection.") and c.conv_dim == c.encoder_embed_dim:
            # fairseq builds no post_extract_proj when the conv features already have the
            # transformer's width; the identity is the same function
            out[name] = torch.eye(c.conv_dim) if name.endswith("weight") else torch.zeros(c.conv_dim)
            continue
        parts = _fairseq_names(name, prefix, norm)
        if not all(p in fs_state for p in parts):
            missing += [p for p in parts if p not in fs_state]
            continue
        used.update(parts)
        tensor = torch.cat([fs_state[p] for p in parts]) if len(parts) > 1 else fs_state[parts[0]]
        if name.startswith("lm_head.") and head_rows is not None:
            tensor = tensor[head_rows]
        expected = (1, c.latent_groups * c.latent_vars, ref.shape[-1]) if name == "quantizer.codevectors" else ref.shape
        if tuple(tensor.shape) != tuple(expected):
            raise ValueError(f"{source}: {parts[0]} has shape {tuple(tensor.shape)}, its config says {tuple(expected)}")
        out[name] = tensor.reshape(ref.shape)
    if missing:
        raise ValueError(f"{source}: {len(missing)} tensors missing for this configuration, e.g. {missing[:3]}")
    left = sorted(set(fs_state) - used)
    if left:
        raise ValueError(f"{source}: {len(left)} tensors ds_w2v has no place for, e.g. {left[:3]}")
    return out


def _num_updates(payload: dict) -> int:
    """fairseq's update count (the last ``optimizer_history`` entry): it sets the Gumbel
    temperature, as our ``num_updates`` does."""
    history = payload.get("optimizer_history") or [{}]
    last = history[-1] if isinstance(history[-1], dict) else {}
    return int(last.get("num_updates") or 0)


def load_fairseq_checkpoint(payload: dict, source: str | Path, dictionary: str | Path | None = None) -> Wav2Vec2Task:
    """A task model from a fairseq checkpoint's contents (:func:`load_torch_file` of ``source``).

    A CTC checkpoint needs fairseq's dictionary: ``dictionary``, else ``dict.<labels>.txt``
    (``dict.ltr.txt``) beside ``source``."""
    source = Path(source)
    task, config, labels = config_from_fairseq(payload.get("cfg") or payload.get("args"), str(source))
    cls = model_class(task)
    state = payload["model"]
    head_rows = None
    if task == "ctc":
        dict_path = Path(dictionary) if dictionary is not None else source.with_name(f"dict.{labels}.txt")
        if not dict_path.is_file():
            raise FileNotFoundError(f"{source}: a fine-tuned fairseq checkpoint needs its dictionary {dict_path} "
                                    f"(fairseq's dict.{labels}.txt from the fine-tuning data folder), which does not exist")
        symbols = read_dictionary(dict_path)
        rows = state.get(_CTC_HEAD + ".weight")
        if rows is not None and rows.shape[0] != len(symbols):
            raise ValueError(f"{dict_path}: {len(symbols)} symbols with fairseq's 4 specials, but {source}'s CTC head "
                             f"has {rows.shape[0]} outputs: not the dictionary it was fine-tuned with")
        vocab, head_rows = ctc_vocab(symbols, str(dict_path))
        model = cls.from_head_state(config, vocab=vocab)
    elif dictionary is not None:
        raise ValueError(f"{source}: a pretraining checkpoint has no CTC head; dictionary {dictionary} is not needed")
    else:
        model = cls.from_head_state(config)
    ours = from_fairseq_state_dict(state, model, str(source), head_rows)
    ours["num_updates"] = torch.tensor(_num_updates(payload), dtype=torch.long)
    model.load_state_dict(ours)
    return model
