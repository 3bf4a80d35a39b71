"""The corpora of a mix as the config names them (``data.train``): parsed, their indexes read,
their targets checked against each other. :mod:`ds_w2v.data.mix` streams them.

An entry is ``DIR`` or ``DIR:SPLIT`` (the task's default split), with ``@WEIGHT`` after it (:func:`parse_mix`), or a
mapping ``{shards: DIR, split: ..., weight: ..., url_prefix: ...}``; every refusal names the
entry and the config key.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ds_w2v.data.index import SPLIT_NAME, SplitIndex, read_split

CONFIG_KEY = "data.train"  # the config key the entries come from, named in every refusal
_DICT_KEYS = ("shards", "split", "weight", "url_prefix")
_DIR_HINT = ("the index (dataset.json) must be in a local directory; shards elsewhere: "
             "data.shard_url_prefix, or url_prefix in a {shards: DIR, url_prefix: ...} entry")


@dataclass(frozen=True)
class MixSource:
    """One corpus of a mix: ``split`` of the prepared directory ``dir``, drawn with ``weight``."""

    dir: str
    split: str
    weight: float = 1.0
    """Multiplies the corpus's hours before the temperature: 2 draws it as if it held twice its audio."""
    url_prefix: str | None = None
    """Where this corpus's shards are read from (:func:`~ds_w2v.data.index.read_split`); None: the
    ``url_prefix`` given to :func:`read_mix`, else next to ``dataset.json``."""
    entry: str = dataclasses.field(default="", compare=False)
    """The entry as written in the config, for messages."""

    @property
    def name(self) -> str:
        return f"{self.dir}:{self.split}"


# -- parsing -------------------------------------------------------------------------------------
def parse_mix(entries: Sequence[str | Mapping[str, Any]] | str, default_split: str = "train") -> list[MixSource]:
    """The sources of ``data.train``; raises ``ValueError`` naming the entry that is wrong.

    A string entry is ``DIR``, ``DIR:SPLIT``, ``DIR@WEIGHT`` or ``DIR:SPLIT@WEIGHT``, read so
    that a path is never cut by mistake (Windows drives, URLs, ``@`` or ``:`` in directory names):

    1. an entry that is an existing path is a directory, whole (split ``default_split``, weight 1);
    2. the weight is what follows the last ``@``, if that holds no ``:``, ``/`` or ``\\``
       (``data/x@2:train`` has none); it must be a finite number > 0;
    3. what is left is a directory if it exists; else the split is what follows its last ``:``,
       if that is a split name (letters, digits, ``_``, ``-``: :data:`~ds_w2v.data.index.SPLIT_NAME`),
       so ``C:\\data``, ``C:/data`` and ``https://host/x`` are never cut (a separator follows the ``:``);
    4. the directory must exist (the index stays on a local disk; a URL is refused here).

    A mapping entry (YAML) is ``{shards: DIR, split: S, weight: W, url_prefix: P}``, only
    ``shards`` required. The same directory and split twice (however spelled) is refused. The
    splits, vocabularies and label sets are checked by :func:`read_mix`, which reads the indexes.
    """
    if isinstance(entries, (str, Mapping)):
        entries = [entries]
    if not entries:
        raise ValueError(f"{CONFIG_KEY}: no corpus given")
    out: list[MixSource] = []
    seen: dict[tuple[Path, str], MixSource] = {}
    for entry in entries:
        source = _parse_dict(entry, default_split) if isinstance(entry, Mapping) else _parse_str(entry, default_split)
        key = (Path(source.dir).resolve(), source.split)
        if key in seen:
            raise ValueError(f"{CONFIG_KEY}: entries {seen[key].entry!r} and {source.entry!r} name the same split "
                             f"({key[0]}:{key[1]}); give each corpus once, with a weight to draw it more")
        seen[key] = source
        out.append(source)
    return out


def _parse_str(entry: Any, default_split: str) -> MixSource:
    if not isinstance(entry, str) or not entry.strip():
        raise ValueError(f"{CONFIG_KEY} entry {entry!r}: not a DIR[:SPLIT][@WEIGHT] string or a {{shards: DIR}} mapping")
    text = entry.strip()
    if Path(text).exists():
        return _checked(MixSource(text, default_split, 1.0, None, entry))
    body, weight = text, 1.0
    head, at, tail = text.rpartition("@")
    if at and not any(c in tail for c in ":/\\"):
        body, weight = head, _weight(tail, entry, f"{tail!r} after the last '@' is not a weight, and "
                                                  f"{text!r} is not a directory")
    directory, split = body, default_split
    if not Path(body).exists():
        head, colon, tail = body.rpartition(":")
        if colon and head and SPLIT_NAME.fullmatch(tail):
            directory, split = head, tail
    return _checked(MixSource(directory, split, weight, None, entry))


def _parse_dict(entry: Mapping[str, Any], default_split: str) -> MixSource:
    shown = dict(entry)
    unknown = sorted(set(map(str, entry)) - set(_DICT_KEYS))
    if unknown:
        raise ValueError(f"{CONFIG_KEY} entry {shown!r}: unknown key(s) {unknown}; known: {', '.join(_DICT_KEYS)}")
    directory = entry.get("shards")
    if not isinstance(directory, str) or not directory:
        raise ValueError(f"{CONFIG_KEY} entry {shown!r}: 'shards' (the prepared directory) is required")
    split = entry.get("split", default_split)
    if not isinstance(split, str) or not SPLIT_NAME.fullmatch(split):
        raise ValueError(f"{CONFIG_KEY} entry {shown!r}: split {split!r} is not a split name (letters, digits, _ and -)")
    weight = _weight(entry.get("weight", 1.0), shown, f"weight {entry.get('weight')!r} is not a number")
    prefix = entry.get("url_prefix")
    if prefix is not None and not isinstance(prefix, str):
        raise ValueError(f"{CONFIG_KEY} entry {shown!r}: url_prefix must be a string")
    return _checked(MixSource(directory, split, weight, prefix or None, str(shown)))


def _weight(value: Any, entry: Any, not_a_number: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{CONFIG_KEY} entry {entry!r}: {not_a_number}")
    try:
        weight = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{CONFIG_KEY} entry {entry!r}: {not_a_number}") from None
    if not math.isfinite(weight) or weight <= 0:
        raise ValueError(f"{CONFIG_KEY} entry {entry!r}: the weight must be a finite number > 0, got {value!r}")
    return weight


def _checked(source: MixSource) -> MixSource:
    if not Path(source.dir).is_dir():
        what = "not a directory" if Path(source.dir).exists() else "no such directory"
        hint = f"; {_DIR_HINT}" if "://" in source.dir or source.dir.startswith("pipe:") else ""
        raise ValueError(f"{CONFIG_KEY} entry {source.entry!r}: {source.dir!r}: {what}{hint}")
    return source


# -- the indexes ---------------------------------------------------------------------------------
def read_mix(
    sources: Sequence[MixSource], url_prefix: str | None = None, *, check_targets: bool | Sequence[str] = True,
) -> list[tuple[SplitIndex, float]]:
    """``[(SplitIndex, weight)]`` of the sources, in order: what :class:`MixedLoader` takes.

    Raises ``ValueError`` naming the entry for a missing index or split (with the known splits),
    for two sources that share a shard URL (one ``url_prefix`` over several directories whose
    shards have the same names), and, with ``check_targets``, for vocabularies or label sets that
    differ between sources (naming both). Pretraining reads neither: pass ``check_targets=False``.
    """
    out: list[tuple[SplitIndex, float]] = []
    owner: dict[str, MixSource] = {}
    for source in sources:
        try:
            index = read_split(source.dir, source.split, source.url_prefix or url_prefix)
        except (FileNotFoundError, ValueError) as e:
            raise ValueError(f"{CONFIG_KEY} entry {source.entry!r}: {e}") from None
        for url in index.urls:
            if url in owner:
                raise ValueError(f"{CONFIG_KEY}: entries {owner[url].entry!r} and {source.entry!r} both read {url}; "
                                 "give each directory its own url_prefix")
            owner[url] = source
        out.append((index, source.weight))
    if check_targets:
        what = TARGETS if check_targets is True else tuple(check_targets)
        check_same_targets([(s.entry, index) for s, (index, _) in zip(sources, out)], what)
    return out


TARGETS = ("vocabulary", "label set")


def check_same_targets(named: Sequence[tuple[str, SplitIndex]], what: Sequence[str] = TARGETS) -> None:
    """Refuse splits whose CTC vocabularies or class label sets (``what``: the ones the task trains
    on) differ (``ValueError`` naming the first entry and the one that differs): one head cannot be
    trained on both. Also for the dev split against the mix: ``check_same_targets([("data.shards",
    dev), *named])``."""
    if not named:
        return
    first, ref = named[0]
    for name, index in named[1:]:
        for kind, mine, theirs in (("vocabulary", index.vocab, ref.vocab), ("label set", index.labels, ref.labels)):
            if kind not in what or mine == theirs:
                continue
            if mine is None or theirs is None:  # one corpus has no targets at all: say that, not "different"
                lacking, having = (name, first) if mine is None else (first, name)
                raise ValueError(f"{CONFIG_KEY}: {lacking!r} has no {kind}, where {having!r} has one: an unlabelled "
                                 f"corpus cannot train this head (pretraining takes it)")
            raise ValueError(f"{CONFIG_KEY}: {name!r} has a different {kind} from {first!r} "
                             f"({_difference(mine, theirs)}); a mix must share one")


def _difference(mine: Any, theirs: Any) -> str:
    if mine is None or theirs is None:
        return "one has none"
    if isinstance(mine, dict):
        only = sorted(set(mine) ^ set(theirs))
        if only:
            return f"tokens in one only: {only[:5]}{' ...' if len(only) > 5 else ''}"
        token = next(t for t in sorted(mine) if mine[t] != theirs[t])
        return f"same tokens, other ids: {token!r} is {mine[token]} vs {theirs[token]}"
    return f"{list(mine)} vs {list(theirs)}"


def mix_labels(sources: Sequence[MixSource]) -> list[str]:
    """Short unique names for logs and the saved state: the split name where it is unique in the
    mix, else ``<directory name>.<split>``, else that with ``#k`` (the source's position)."""
    splits = [s.split for s in sources]
    labels = [s.split if splits.count(s.split) == 1 else f"{Path(s.dir).resolve().name}.{s.split}" for s in sources]
    return [f"{lab}#{k}" if labels.count(lab) > 1 else lab for k, lab in enumerate(labels)]
