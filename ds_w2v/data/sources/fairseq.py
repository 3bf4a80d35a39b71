"""fairseq audio manifests (``examples/wav2vec/wav2vec_manifest.py``): ``{split}.tsv``.

The first line of a ``.tsv`` is the root folder, every other line ``relpath<TAB>num_samples``.
Optional transcripts beside it are line-aligned with the audio lines: ``{split}.wrd`` (words)
or, when there is no ``.wrd``, ``{split}.ltr`` (letters separated by spaces, ``|`` between
words). SRC is a folder of ``.tsv`` files (each one a split, named by its stem: ``train``,
``valid``, ``dev-clean`` ...) or one ``.tsv`` file. A relative root is taken from the current
folder as fairseq does, else from the manifest's folder.
"""
from __future__ import annotations

from pathlib import Path

from ds_w2v.data.sources.base import SourceReject, SourceScan, Utterance, clean_text, is_dir, safe_id


def scan(src: Path) -> SourceScan:
    if src.is_file():
        manifests = [src]
    elif is_dir(src):
        manifests = sorted(p for p in src.iterdir() if p.suffix == ".tsv" and p.is_file())
    else:
        raise FileNotFoundError(f"{src}: no such file or directory")
    if not manifests:
        raise ValueError(f"{src}: no fairseq manifest ({{split}}.tsv) in this folder")
    scan_ = SourceScan()
    for tsv in manifests:
        _scan_manifest(tsv, scan_)
    return scan_


def _scan_manifest(tsv: Path, scan_: SourceScan) -> None:
    split = safe_id(tsv.stem)
    lines = tsv.read_bytes().splitlines()
    if not lines or not lines[0].strip():
        raise ValueError(f"{tsv}: empty, or no root folder on its first line")
    root = _resolve_root(tsv, lines[0])
    entries = lines[1:]
    while entries and not entries[-1].strip():
        entries.pop()
    texts = _read_aligned_transcripts(tsv, len(entries))
    for n, raw in enumerate(entries, 2):
        where = f"{tsv}:{n}"
        fields = raw.split(b"\t")
        try:
            rel = fields[0].decode("utf-8")
            declared = int(fields[1]) if len(fields) > 1 else None
        except (UnicodeDecodeError, ValueError):
            scan_.reject(where, "bad_record", "not 'relpath<TAB>num_samples' in UTF-8", split)
            continue
        if not rel.strip():
            scan_.reject(where, "bad_record", "empty path", split)
            continue
        audio = root / rel
        text = None
        if texts is not None:
            try:
                text = clean_text(texts[n - 2])
            except SourceReject as e:
                scan_.reject(audio, e.reason, e.detail, split)
                continue
        scan_.utterances.append(
            Utterance(
                audio=str(audio),
                split=split,
                id=safe_id(rel.rsplit(".", 1)[0]),
                text=text,
                meta={"corpus": "fairseq", "manifest_num_samples": declared},
            )
        )


def _resolve_root(tsv: Path, first_line: bytes) -> Path:
    try:
        root = Path(first_line.decode("utf-8").strip())
    except UnicodeDecodeError:
        raise ValueError(f"{tsv}: the root folder on the first line is not UTF-8") from None
    for candidate in (root, tsv.parent / root):
        if is_dir(candidate):
            return candidate.absolute()
    raise ValueError(f"{tsv}: root folder {str(root)!r} (first line) does not exist")


def _read_aligned_transcripts(tsv: Path, num_entries: int) -> list[str | SourceReject] | None:
    """One transcript per audio line from ``.wrd`` (else ``.ltr``); None when there is neither."""
    for ext in (".wrd", ".ltr"):
        path = tsv.with_suffix(ext)
        if not path.is_file():
            continue
        lines = path.read_bytes().splitlines()
        while len(lines) > num_entries and not lines[-1].strip():
            lines.pop()
        if len(lines) != num_entries:
            raise ValueError(
                f"{path}: {len(lines)} lines for the {num_entries} audio lines of {tsv.name}; "
                "a transcript file must be line-aligned with its manifest"
            )
        out: list[str | SourceReject] = []
        for n, raw in enumerate(lines, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                out.append(SourceReject("bad_transcript_encoding", f"{path.name} line {n} is not UTF-8"))
                continue
            if ext == ".ltr":  # "H E Y | Y O U |" -> "HEY YOU"
                line = "".join(" " if tok == "|" else tok for tok in line.split())
            out.append(line)
        return out
    return None
