"""Inference on audio files: speech recognition with a CTC model, classification with a
classification model.

    from ds_w2v.inference import transcribe, classify
    for r in transcribe("ctc.pt", ["a.wav", "b.flac"], batch_s=60, device="cuda"):
        print(r.path, r.text if r.ok else r.error)
    classify("ser.pt", ["c.wav"], top_k=3)[0].top_k      # [("angry", 0.71), ("calm", 0.12), ...]

The path of a file, one way (CLI: ``ds-w2v transcribe`` / ``ds-w2v classify``):

1. decode with :func:`ds_w2v.data.audio.load_audio`, the decoder ``prepare`` writes shards with:
   any container libsndfile reads, any sample rate (soxr to 16 kHz), channel mean, int16 - so
   the model sees exactly what a training shard would have given it;
2. read ahead up to :data:`READ_AHEAD_S` of audio (bounded memory for any number of files),
   sort it by length and cut it into batches of at most ``batch_s`` padded audio-seconds in
   which no row is padded by more than ``max_padding`` (:func:`plan_batches`);
3. one forward pass a batch in eval mode, zero padding with ``lengths`` (as fine-tuning batches
   are built), then CTC decoding (greedy by default; ``decoding=DecodingConfig(decoder="beam",
   lm=...)`` for beam search with an n-gram LM, :mod:`ds_w2v.lm.decoder`) or a softmax over the
   model's ``labels``;
4. results come back in input order; a file that cannot be decoded gets a :class:`Result` with
   ``error`` = ``"reason: detail"`` (reasons of :data:`ds_w2v.data.audio.REASONS`, plus
   ``out_of_memory``) and never stops the others.

Padding and the group-norm encoder: the default ``extractor_mode="group"`` normalises the first
conv layer over time *including* padding, so a padded row's output moves slightly (it did in
fine-tuning too). Sorting plus the ``max_padding`` bound keep that small; the layer-norm encoder
(``extractor_mode="layer"``, LARGE) gives the same result batched or alone.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from .data.audio import AudioError, load_audio
from .data.shard_format import SAMPLE_RATE
from .lm.decoder import DecodingConfig, build_decoder
from .models.wav2vec2 import MODEL_TASKS, Wav2Vec2Task, load_model

DEFAULT_BATCH_S = 60.0  # padded audio-seconds per forward pass: ~1 GB peak for BASE on CPU (docs/inference.md)
# Longer files are refused from their header, before decoding: memory grows with duration
# (linearly in the conv encoder, quadratically in attention at 50 frames/s); None = no limit.
DEFAULT_MAX_DURATION_S = 600.0
# No row padded by more than 15 % of its batch's longest: the same bound as the training
# buckets (``batching.geometric_buckets``, ratio 1.15 -> at most 13 % padding).
MAX_PADDING = 0.15
READ_AHEAD_S = 1800.0  # audio-seconds decoded before sorting: 30 min of int16 = 58 MB


@dataclass
class Result:
    """What one input file gave. ``error`` is None on success."""

    path: str
    duration_s: float = 0.0
    """Of the decoded 16 kHz audio."""
    text: str | None = None
    """Transcription (CTC models)."""
    top_k: list[tuple[str, float]] = field(default_factory=list)
    """(label, probability), most probable first (classification models)."""
    error: str | None = None
    """``"reason: detail"`` when the file could not be processed."""

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def label(self) -> str | None:
        return self.top_k[0][0] if self.top_k else None

    @property
    def label_p(self) -> float | None:
        return self.top_k[0][1] if self.top_k else None

    def to_dict(self) -> dict[str, Any]:
        """The JSON line of ``--json``: path, duration_s and text or label/label_p/top_k."""
        out: dict[str, Any] = {"path": self.path, "duration_s": round(self.duration_s, 3)}
        if self.error is not None:
            out["error"] = self.error
        if self.text is not None:
            out["text"] = self.text
        if self.top_k:
            out.update(label=self.label, label_p=round(self.label_p, 6),
                       top_k=[[label, round(p, 6)] for label, p in self.top_k])
        return out


def load_task_model(model: Wav2Vec2Task | str | os.PathLike, task: str) -> Wav2Vec2Task:
    """``model`` (a model, a ds_w2v model file, an HF folder, a fairseq checkpoint or a run
    directory: its best checkpoint, else latest, as ``model.init`` reads it) if it is a ``task``
    model, else a ValueError naming the model, its task and the command that fits it."""
    name = "model" if isinstance(model, Wav2Vec2Task) else os.fspath(model)
    if not isinstance(model, Wav2Vec2Task):
        from .train.checkpoint_export import model_from_run  # DeepSpeed's consolidation, only for a run
        from .train.checkpoint_tags import is_run_dir

        model = model_from_run(Path(model)) if is_run_dir(Path(model)) else load_model(model)
    if model.task != task:
        from .train.tasks import inference_command  # the training tasks know their inference commands

        hint = inference_command(model.task)
        raise ValueError(
            f"{name} is a {model.description} model, not a {MODEL_TASKS[task].description} model"
            + (f"; use `ds-w2v {hint}` for it" if hint else "")
        )
    return model


def transcribe(
    model: Wav2Vec2Task | str | os.PathLike,
    paths: Iterable[str | os.PathLike],
    *,
    batch_s: float = DEFAULT_BATCH_S,
    device: str | torch.device | None = None,
    max_duration_s: float | None = DEFAULT_MAX_DURATION_S,
    max_padding: float = MAX_PADDING,
    decoding: DecodingConfig | None = None,
) -> list[Result]:
    """CTC transcription of every file, in input order (see :func:`iter_transcribe`)."""
    return list(iter_transcribe(model, paths, batch_s=batch_s, device=device, max_duration_s=max_duration_s,
                                max_padding=max_padding, decoding=decoding))


def classify(
    model: Wav2Vec2Task | str | os.PathLike,
    paths: Iterable[str | os.PathLike],
    *,
    top_k: int = 3,
    batch_s: float = DEFAULT_BATCH_S,
    device: str | torch.device | None = None,
    max_duration_s: float | None = DEFAULT_MAX_DURATION_S,
    max_padding: float = MAX_PADDING,
) -> list[Result]:
    """The ``top_k`` most probable labels of every file, in input order (see :func:`iter_classify`)."""
    return list(iter_classify(model, paths, top_k=top_k, batch_s=batch_s, device=device,
                              max_duration_s=max_duration_s, max_padding=max_padding))


def iter_transcribe(
    model: Wav2Vec2Task | str | os.PathLike,
    paths: Iterable[str | os.PathLike],
    *,
    batch_s: float = DEFAULT_BATCH_S,
    device: str | torch.device | None = None,
    max_duration_s: float | None = DEFAULT_MAX_DURATION_S,
    max_padding: float = MAX_PADDING,
    decoding: DecodingConfig | None = None,
) -> Iterator[Result]:
    """:func:`transcribe`, yielding each result as soon as it and every earlier one are known.

    ``model``: a CTC model, a ds_w2v model file or an HF folder; it is put in eval mode and moved
    to ``device`` (default: cuda when available). ``batch_s``: padded audio-seconds a forward pass
    (a longer file is a batch of its own). ``max_duration_s``: longer files are refused (None: no
    limit). ``max_padding``: the largest fraction of a row that may be padding. ``decoding``: how
    the CTC output becomes text (None: greedy); a beam decoder's LM is loaded before any file is read.
    """
    model = load_task_model(model, "ctc")
    decoder = build_decoder(decoding or DecodingConfig(), model.vocab)

    def head(logits: torch.Tensor, frame_lengths: torch.Tensor) -> list[dict]:
        return [{"text": text} for text in decoder.decode(logits, frame_lengths)]

    return _run(model, paths, head, batch_s, device, max_duration_s, max_padding)


def iter_classify(
    model: Wav2Vec2Task | str | os.PathLike,
    paths: Iterable[str | os.PathLike],
    *,
    top_k: int = 3,
    batch_s: float = DEFAULT_BATCH_S,
    device: str | torch.device | None = None,
    max_duration_s: float | None = DEFAULT_MAX_DURATION_S,
    max_padding: float = MAX_PADDING,
) -> Iterator[Result]:
    """:func:`classify`, yielding results in input order as they are known (arguments as
    :func:`iter_transcribe`; ``top_k`` is capped at the number of labels)."""
    model = load_task_model(model, "cls")
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    k = min(top_k, len(model.labels))

    def head(logits: torch.Tensor, frame_lengths: torch.Tensor) -> list[dict]:
        probs, ids = torch.softmax(logits.float(), dim=-1).topk(k, dim=-1)
        return [{"top_k": [(model.labels[i], p) for i, p in zip(row_ids, row_p)]}
                for row_ids, row_p in zip(ids.tolist(), probs.tolist())]

    return _run(model, paths, head, batch_s, device, max_duration_s, max_padding)


def plan_batches(num_samples: Sequence[int], batch_samples: int, max_padding: float = MAX_PADDING) -> list[list[int]]:
    """Group utterance indices into batches, longest first.

    A batch's padded size ``B x longest`` stays within ``batch_samples`` (an utterance longer than
    that is a batch of its own) and every row keeps at least ``1 - max_padding`` of the longest:
    in a sorted list that is a cut wherever the length drops by more than ``max_padding``.
    """
    if batch_samples <= 0:
        raise ValueError(f"batch size must be positive, got {batch_samples} samples")
    if not 0.0 <= max_padding <= 1.0:
        raise ValueError(f"max_padding must be in [0, 1], got {max_padding}")
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in sorted(range(len(num_samples)), key=lambda i: -num_samples[i]):  # stable: ties keep input order
        n = num_samples[i]
        if current and ((len(current) + 1) * longest > batch_samples or n < (1.0 - max_padding) * longest):
            batches.append(current)
            current = []
        if not current:
            longest = n
        current.append(i)
    if current:
        batches.append(current)
    return batches


def read_audio(path: str | os.PathLike, min_samples: int, max_duration_s: float | None) -> np.ndarray:
    """Mono 16 kHz int16 samples of ``path`` (:func:`load_audio`), at least ``min_samples`` long
    (the model's receptive field), or :class:`AudioError`."""
    pcm = load_audio(path, min_duration_s=min_samples / SAMPLE_RATE, max_duration_s=max_duration_s)
    if len(pcm) < min_samples:  # the header check ran at the file's own rate; resampling rounds
        raise AudioError("too_short", f"{len(pcm)} samples at 16 kHz < the model's receptive field of {min_samples}")
    return pcm


def resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError as e:
        raise ValueError(f"bad device {str(device)!r}: {e}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(device)!r} requested but CUDA is not available (torch {torch.__version__})")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be cpu or cuda[:N], got {str(device)!r}")
    return device


# --- the engine ---------------------------------------------------------------------------------

Head = Callable[[torch.Tensor, torch.Tensor], list[dict]]  # (logits, frame_lengths) -> fields per row


def _run(model: Wav2Vec2Task, paths: Iterable, head: Head, batch_s: float, device, max_duration_s: float | None,
         max_padding: float) -> Iterator[Result]:
    # Validate everything before the first file is read, so a bad option fails at once.
    if batch_s <= 0:
        raise ValueError(f"batch_s must be positive, got {batch_s}")
    if max_duration_s is not None and max_duration_s <= 0:
        raise ValueError(f"max_duration_s must be positive (or None for no limit), got {max_duration_s}")
    if not 0.0 <= max_padding <= 1.0:
        raise ValueError(f"max_padding must be in [0, 1], got {max_padding}")
    device = resolve_device(device)
    return _generate(model, paths, head, round(batch_s * SAMPLE_RATE), device, max_duration_s, max_padding)


def _generate(model, paths, head, batch_samples, device, max_duration_s, max_padding) -> Iterator[Result]:
    was_training = model.training
    model.eval().to(device)
    try:
        window: list[tuple[Result, np.ndarray | None]] = []
        window_samples = 0
        for path in paths:
            result = Result(os.fspath(path))
            try:
                pcm = read_audio(path, model.config.receptive_field, max_duration_s)
            except AudioError as e:
                result.error = f"{e.reason}: {e.detail}"
                pcm = None
            else:
                result.duration_s = len(pcm) / SAMPLE_RATE
                window_samples += len(pcm)
            window.append((result, pcm))
            if window_samples >= READ_AHEAD_S * SAMPLE_RATE:
                yield from _infer_window(model, window, head, batch_samples, device, max_padding)
                window, window_samples = [], 0
        yield from _infer_window(model, window, head, batch_samples, device, max_padding)
    finally:
        model.train(was_training)


def _infer_window(model, window, head, batch_samples, device, max_padding) -> Iterator[Result]:
    """Fill in the results of one read-ahead window, then yield them in input order."""
    todo = [i for i, (_, pcm) in enumerate(window) if pcm is not None]
    for batch in plan_batches([len(window[i][1]) for i in todo], batch_samples, max_padding):
        _infer_batch(model, [window[todo[j]] for j in batch], head, device)
    for result, _ in window:
        yield result


def _infer_batch(model, items: list[tuple[Result, np.ndarray]], head: Head, device: torch.device) -> None:
    try:
        fields = _forward(model, [pcm for _, pcm in items], head, device)
    except RuntimeError as e:  # torch.OutOfMemoryError is one
        if not _is_out_of_memory(e):
            raise
        if device.type == "cuda":
            torch.cuda.empty_cache()
        if len(items) > 1:  # retry one file at a time: only the files that alone do not fit fail
            for item in items:
                _infer_batch(model, [item], head, device)
            return
        result = items[0][0]
        result.error = (f"out_of_memory: {result.duration_s:.1f} s of audio do not fit on {device}; "
                        "lower --max-duration-s to skip such files, or cut them")
        return
    for (result, _), f in zip(items, fields):
        for key, value in f.items():
            setattr(result, key, value)


@torch.inference_mode()
def _forward(model: Wav2Vec2Task, pcms: list[np.ndarray], head: Head, device: torch.device) -> list[dict]:
    """One zero-padded batch of int16 rows through the model; the head's fields per row."""
    lengths = torch.tensor([len(p) for p in pcms], dtype=torch.long)
    audio = torch.zeros(len(pcms), int(lengths.max()), dtype=torch.float32)
    for row, pcm in zip(audio, pcms):
        row[: len(pcm)] = torch.from_numpy(pcm)
    audio.mul_(1.0 / 32768.0)  # int16 -> [-1, 1), as the training batches (data/batching.py)
    out = model(audio.to(device), lengths.to(device))
    return head(out.logits, out.frame_lengths)


def _is_out_of_memory(e: BaseException) -> bool:
    # CUDA raises torch.OutOfMemoryError; the CPU allocator a RuntimeError (when the kernel does
    # not kill the process first, which no Python code can catch)
    return isinstance(e, torch.OutOfMemoryError) or "can't allocate memory" in str(e) or "out of memory" in str(e)
