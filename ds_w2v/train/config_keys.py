"""Every training config key with its type, default and docstring: ``ds-w2v pretrain --help-config``.

The docstrings are the string literals written under each dataclass field (the convention of
this package's configs); Python keeps no such attribute docstrings at run time, so they are read
from the source with ``ast``. Nested config classes (``optim``, ``data.augment``, ...) are walked
as the override parser walks them, so each key listed is one ``key=value`` the command takes.
"""
from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
import typing
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ConfigKey:
    key: str
    type: str
    default: Any
    doc: str


def field_docs(cls: type) -> dict[str, str]:
    """``{field: docstring}`` of a dataclass, from the string literal under each field."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs = {}
    for node, after in zip(body, body[1:]):
        if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)):
            docs[node.target.id] = " ".join(after.value.value.split())
    return docs


def _type_name(hint: Any) -> str:
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")


def config_keys(cls: type, prefix: str = "") -> list[ConfigKey]:
    """Every leaf key of the dataclass ``cls`` (a nested config class is walked, not listed)."""
    hints = typing.get_type_hints(cls)
    docs = field_docs(cls)
    defaults = cls()
    out = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            out += config_keys(hint, f"{prefix}{f.name}.")
            continue
        out.append(ConfigKey(prefix + f.name, _type_name(hint), getattr(defaults, f.name), docs.get(f.name, "")))
    return out


def format_keys(keys: list[ConfigKey], width: int = 100) -> str:
    lines = []
    for k in keys:
        default = "null" if k.default is None else repr(k.default) if isinstance(k.default, str) else k.default
        lines.append(f"{k.key} ({k.type}, default {default})")
        if k.doc:
            lines += textwrap.wrap(k.doc, width, initial_indent="    ", subsequent_indent="    ")
    return "\n".join(lines)
