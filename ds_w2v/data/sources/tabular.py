"""Your own list of files: CSV (header row) or JSON Lines (one object per line).

Columns / keys (names lower case): ``path`` (required; relative to the list file's folder, or
absolute), ``text`` and/or ``label`` (at least one), and optionally ``split``, ``speaker``,
``id``; any other column is kept in ``meta``. A column that the file has is required on every
row: a row without its text is ``missing_transcript``/``empty_transcript``, without its label
``bad_label``. SRC is one list file (split ``train`` unless a ``split`` column says otherwise)
or a folder of them, each named by its split (``train.csv``, ``dev.csv``, ``test.csv``).
``labels`` (a list or ``"a,b,c"``) fixes the class set; labels outside it are rejected.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Iterator

from ds_w2v.data.sources.base import SourceReject, SourceScan, Utterance, clean_text, is_dir, safe_id

RESERVED = ("path", "text", "label", "split", "speaker", "id")


def scan_csv(src: Path, labels: str | list[str] | None = None) -> SourceScan:
    return _scan(src, ".csv", _read_csv, labels)


def scan_jsonl(src: Path, labels: str | list[str] | None = None) -> SourceScan:
    return _scan(src, ".jsonl", _read_jsonl, labels)


def _scan(src: Path, ext: str, read, labels) -> SourceScan:
    if src.is_file():
        lists = [(src, "train")]
    elif is_dir(src):
        lists = [(p, safe_id(p.stem)) for p in sorted(src.iterdir()) if p.suffix.lower() == ext and p.is_file()]
        if not lists:
            raise ValueError(f"{src}: no *{ext} file in this folder")
    else:
        raise FileNotFoundError(f"{src}: no such file or directory")
    label_set = None
    if labels is not None:
        label_set = {s.strip() for s in (labels.split(",") if isinstance(labels, str) else labels) if s.strip()}
    scan_ = SourceScan()
    seen_labels: set[str] = set()
    has_label_column = False
    for list_path, default_split in lists:
        rows = list(read(list_path, scan_))
        columns = {k for _, row in rows for k in row}
        if "path" not in columns or not columns & {"text", "label"}:
            raise ValueError(
                f"{list_path}: needs a 'path' column and a 'text' and/or 'label' column "
                f"(has {sorted(columns)}); for audio without labels use --format dir"
            )
        has_label_column |= "label" in columns
        for where, row in rows:
            utt = _utterance(row, columns, list_path, default_split, label_set, where, scan_)
            if utt is not None:
                scan_.utterances.append(utt)
                if utt.label is not None:
                    seen_labels.add(utt.label)
    if has_label_column:
        scan_.labels = sorted(label_set if label_set is not None else seen_labels)
    return scan_


def _utterance(row, columns, list_path: Path, default_split, label_set, where, scan_: SourceScan) -> Utterance | None:
    def value(key: str) -> str | None:
        v = row.get(key)
        return None if v is None or str(v).strip() == "" else str(v).strip()

    split = safe_id(value("split") or default_split)
    rel = value("path")
    if rel is None:
        scan_.reject(where, "bad_record", "no path", split)
        return None
    audio = Path(rel) if Path(rel).is_absolute() else list_path.parent / rel
    try:
        raw_text = row.get("text")
        text = clean_text(None if raw_text is None else str(raw_text)) if "text" in columns else None
        label = value("label")
        if "label" in columns and label is None:
            raise SourceReject("bad_label", "no label")
        if label is not None and label_set is not None and label not in label_set:
            raise SourceReject("bad_label", f"label {label!r} is not one of {sorted(label_set)}")
    except SourceReject as e:
        scan_.reject(audio, e.reason, e.detail, split)
        return None
    utt_id = value("id")
    if utt_id is None:  # the path, relative to the list's folder where it lies below it
        try:
            utt_id = audio.relative_to(list_path.parent).with_suffix("").as_posix()
        except ValueError:
            utt_id = audio.with_suffix("").as_posix()
    meta = {k: v for k, v in row.items() if k not in RESERVED}
    return Utterance(
        audio=str(audio),
        split=split,
        id=safe_id(utt_id),
        speaker=value("speaker"),
        text=text,
        label=label,
        meta={"corpus": list_path.suffix.lstrip(".").lower(), **meta},
    )


def _read_csv(path: Path, scan_: SourceScan) -> Iterator[tuple[str, dict[str, Any]]]:
    # surrogateescape keeps a row with bad bytes parseable; the row is then rejected on its own
    text = path.read_bytes().decode("utf-8-sig", "surrogateescape")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise ValueError(f"{path}: empty CSV (no header row)") from None
    for row in reader:
        where = f"{path}:{reader.line_num}"
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            scan_.reject(where, "bad_record", f"{len(row)} cells for {len(header)} columns")
            continue
        if any(_has_surrogates(cell) for cell in row):
            scan_.reject(where, "bad_transcript_encoding", "the row is not valid UTF-8")
            continue
        yield where, dict(zip(header, row, strict=True))


def _read_jsonl(path: Path, scan_: SourceScan) -> Iterator[tuple[str, dict[str, Any]]]:
    for n, raw in enumerate(path.read_bytes().splitlines(), 1):
        where = f"{path}:{n}"
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8-sig" if n == 1 else "utf-8"))
        except UnicodeDecodeError:
            scan_.reject(where, "bad_transcript_encoding", "the line is not valid UTF-8")
            continue
        except ValueError as e:
            scan_.reject(where, "bad_record", f"not JSON ({e})")
            continue
        if not isinstance(record, dict):
            scan_.reject(where, "bad_record", "not a JSON object")
            continue
        yield where, {str(k).lower(): v for k, v in record.items()}


def _has_surrogates(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False
