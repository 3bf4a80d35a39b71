"""A fairseq ``cfg`` pickled as omegaconf 2.0 pickles a ``DictConfig``, without omegaconf.

fairseq's save_state from 2020-10-20 to 2021-03-03 (commit f6d60e2f, "minor fixes and
improvements", made it ``OmegaConf.to_container(cfg)``) put the DictConfig itself in the
checkpoint; fairseq required omegaconf < 2.1 then. Its cfg was made by
``OmegaConf.create(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))`` (fairseq_cli/
hydra_train.py, fairseq/dataclass/utils.py convert_namespace_to_omegaconf), so every leaf is an
``AnyNode`` holding a plain value.

omegaconf 2.0's layout, as a pickle names it: ``omegaconf.dictconfig.DictConfig`` /
``omegaconf.listconfig.ListConfig`` pickle their ``__dict__``: ``_metadata`` (an
``omegaconf.base.ContainerMetadata``), ``_parent`` (the enclosing container, None at the top) and
``_content`` (a dict of key -> node, a list of nodes); ``omegaconf.nodes.AnyNode`` pickles
``_metadata`` (an ``omegaconf.base.Metadata``: ref_type ``typing.Any``, key, flags, a
``collections.defaultdict(dict)`` resolver cache), ``_parent`` and ``_val``.

Checked once against omegaconf 2.0.6 itself (fairseq_omegaconf_check.py, which says how): for
:func:`~.test_interop_fairseq.pretraining_sections` and ``finetuning_sections`` of the tiny
LARGE model, ``pickle.dumps(OmegaConf.create(cfg), protocol=2)`` and :func:`pickled` name the same
ten globals (omegaconf.dictconfig.DictConfig, omegaconf.listconfig.ListConfig,
omegaconf.nodes.AnyNode, omegaconf.base.ContainerMetadata, omegaconf.base.Metadata, typing.Any,
collections.defaultdict, builtins dict / list / int) in the same opcode sequence (every opcode and
argument; the memo's numbering aside), and ds_w2v's reader gives the same configuration from both
files written by torch.save.
"""
from __future__ import annotations

import collections
import sys
import types
import typing
from typing import Any

MODULES = ("omegaconf", "omegaconf.base", "omegaconf.nodes", "omegaconf.dictconfig", "omegaconf.listconfig")


class Metadata:
    def __init__(self, key: Any):
        self.ref_type = typing.Any
        self.object_type = None
        self.optional = True
        self.key = key
        self.flags: dict = {}
        self.resolver_cache = collections.defaultdict(dict)


class ContainerMetadata(Metadata):
    def __init__(self, key: Any, kind: type, top: bool):
        super().__init__(key)
        self.ref_type = kind if top else typing.Any  # a nested container's is Any
        self.object_type = None if kind is dict else list
        self.key_type = None if kind is dict else int
        self.element_type = None


class AnyNode:
    def __init__(self, value: Any, key: Any, parent: Any):
        self._metadata = Metadata(key)
        self._parent = parent
        self._val = value


class DictConfig:
    def __init__(self, content: dict, key: Any = None, parent: Any = None):
        self._metadata = ContainerMetadata(key, dict, parent is None)
        self._parent = parent
        self._content = {k: node(v, k, self) for k, v in content.items()}


class ListConfig:
    def __init__(self, content: list, key: Any = None, parent: Any = None):
        self._metadata = ContainerMetadata(key, list, parent is None)
        self._parent = parent
        self._content = [node(v, i, self) for i, v in enumerate(content)]


def node(value: Any, key: Any, parent: Any) -> Any:
    """omegaconf's node for a plain value (OmegaConf.create's choice: containers for dicts and
    lists, AnyNode for the rest)."""
    if isinstance(value, dict):
        return DictConfig(value, key, parent)
    if isinstance(value, (list, tuple)):
        return ListConfig(list(value), key, parent)
    return AnyNode(value, key, parent)


_HOMES = {Metadata: "omegaconf.base", ContainerMetadata: "omegaconf.base", AnyNode: "omegaconf.nodes",
          DictConfig: "omegaconf.dictconfig", ListConfig: "omegaconf.listconfig"}


class omegaconf_names:
    """While active, these classes are what a pickle names them by: omegaconf's modules, faked in
    ``sys.modules`` (restored after, so no test sees them and a real omegaconf is left alone)."""

    def __enter__(self):
        self.saved = {name: sys.modules.get(name) for name in MODULES}
        for name in MODULES:
            sys.modules[name] = types.ModuleType(name)
        for cls, home in _HOMES.items():
            cls.__module__ = home
            setattr(sys.modules[home], cls.__name__, cls)
        return self

    def __exit__(self, *exc):
        for cls in _HOMES:
            cls.__module__ = __name__
        for name, module in self.saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def save_with_dictconfig(payload: dict, path, torch_save) -> None:
    """``torch_save(payload, path)`` with ``payload["cfg"]`` (a plain dict) as omegaconf's DictConfig."""
    with omegaconf_names():
        torch_save({**payload, "cfg": DictConfig(payload["cfg"])}, path)
