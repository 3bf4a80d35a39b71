"""The typed configuration of a training run, loaded from YAML recipes.

Precedence: dataclass defaults < recipe file (and its ``parent`` chain) < ``key=value`` on the
command line (dotted keys: ``optim.lr=1e-4``, ``model.overrides.encoder_layers=6``).
Everything is validated before any process group starts; an error names the key.

Batch arithmetic (fairseq's ``max_tokens`` x ``update_freq`` x GPUs, in audio-seconds):

    global_batch_s = data.batch_s x world_size x gradient_accumulation
    # BASE pretraining: 87.5 s (1.4M samples) x 64 GPUs x 1 = 5,600 audio-s per update;
    # on 8 GPUs the same recipe accumulates 8 micro-batches per update.

``resolve_batch`` turns it into DeepSpeed's integers (one duration-filled batch counts as one
DeepSpeed micro-batch), so no ``"auto"`` ever reaches DeepSpeed.
"""
from __future__ import annotations

import dataclasses
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..data.augment_config import AugmentConfig
from ..lm.decoder import DecodingConfig
from .precision import PRECISIONS
from .tasks import DEFAULT_TARGET, TASK_CLASSES, select_task

DEVICES = ("auto", "cpu")
COMPILE_MODES = ("none", "blocks", "backbone")
RECIPE_DIR = Path(__file__).resolve().parent.parent / "recipes"


class _YamlLoader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-4`` / ``1e3`` as floats (YAML 1.1 wants ``1.0e-4``),
    so ``optim.lr=1e-4`` on the command line is a number, not the string ``'1e-4'``."""


_YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_YamlLoader)



def _bad(key: str, msg: str) -> None:
    raise ValueError(f"config key {key}: {msg}")


@dataclass
class ModelConfig:
    preset: str = "tiny"
    """Size preset (tiny, small, medium, original, large) for a fresh model."""
    init: str | None = None
    """Start from this model instead: a ds_w2v model file, an HF wav2vec2 folder, or a run
    directory (its best checkpoint, else its latest). Fine-tuning from pretraining does this."""
    overrides: dict[str, Any] = field(default_factory=dict)
    """Wav2Vec2Config fields to change (dropouts, masking, LayerDrop, ...)."""


@dataclass
class DataConfig:
    shards: str = ""
    """Prepared directory (holds dataset.json) made by ``ds-w2v prepare``."""
    shard_url_prefix: str | None = None
    """Where the shards are read from, when not next to ``dataset.json`` (which, with the
    vocabulary, stays in ``shards``): a template naming ``{shard}``, replaced by each shard's name
    in dataset.json, or a plain prefix ending in ``/`` to which the name is appended. Anything
    WebDataset opens (``docs/data_stream.md``, *Shards in object storage*)::

        https://host/ls960/                                 # + train-000000.tar (curl -f)
        pipe:aws s3 cp s3://bucket/ls960/{shard} -          # S3 through the AWS CLI
        pipe:gsutil cat gs://bucket/ls960/{shard}           # GCS (gs://bucket/ls960/ also works)
        pipe:curl -sfL https://host/ls960/{shard}           # HTTP with your own curl options
        /mnt/fast/ls960/                                    # another local directory

    A ``pipe:`` command must be a template; schemes WebDataset cannot open (``s3://``) are refused.
    Entries of dataset.json that are URLs or absolute paths are used as they are. An unreachable
    shard is a warning and a ``data/skipped/unreachable_shard`` count; training goes on. None:
    next to ``dataset.json``."""
    target: str = DEFAULT_TARGET
    """What a CTC run learns to write: ``chars``, the corpus's characters (its transcripts, scored
    by WER and CER), or ``phones``, TIMIT's 39 folded phones (each record's ``phones``, scored by the
    phone error rate ``per``; task ``phone_ctc``, ``train/tasks/phone_ctc.py``). It chooses the task
    (``tasks.select_task``); a ``best_metric`` the chosen task lacks (finetune_ctc_tiny's ``cer``)
    becomes that task's own (``per``)."""
    train_split: str = "train"
    """The split of ``data.shards`` that trains (unless ``data.train`` names several corpora)."""
    train: list[str | dict[str, Any]] | None = None
    """Several corpora in one run, in place of ``shards:train_split`` (dev and test still come
    from ``shards``): entries ``DIR``, ``DIR:SPLIT``, ``DIR:SPLIT@WEIGHT`` or ``{shards, split,
    weight, url_prefix}`` (docs/data_stream.md, *Several corpora*). LibriSpeech 960 h:
    ``[ls:train-clean-100, ls:train-clean-360, ls:train-other-500]``. Each batch comes from one
    corpus, drawn with p ∝ (weight x hours)^mix_alpha; each corpus runs its own epochs."""
    mix_alpha: float = 1.0
    """Sampling temperature of ``train``: 1 in proportion to the audio, 0.5 as XLS-R (towards the
    small corpora), 0 uniform over corpora."""
    dev_split: str | None = "dev"
    """The split evaluated every ``eval_every`` updates; it chooses the best checkpoint."""
    test_split: str | list[str] | None = "test"
    """The split(s) scored once, at the end, with the best checkpoint: one name or a list
    (LibriSpeech ``[test-clean, test-other]``; TIMIT ``[test, test_noncore]``: the 24-speaker
    core test set and the other 144 test speakers). Each is reported by name; the first is the
    headline ``test`` of results.json. The default ``test`` may be absent from the corpus
    (pretraining audio); a split named explicitly must exist."""
    batch_s: float = 87.5
    """Audio-seconds per device micro-batch, padded size (fairseq max_tokens 1.4M / 16 kHz)."""
    max_sample_size: int = 250_000
    """Pretraining crop cap in samples (15.6 s, fairseq)."""
    min_duration_s: float = 0.0
    """Training utterances shorter than this (seconds) are skipped and counted (fairseq min_sample_size
    / 16 kHz); dev and test keep every utterance."""
    max_duration_s: float | None = None
    """Training utterances longer than this (seconds) are skipped and counted; None: only what a batch
    cannot hold alone (pretraining crops to ``max_sample_size`` instead)."""
    num_workers: int | str = "auto"
    """DataLoader worker processes per rank (each decodes its own shards). ``auto``: none on a CPU
    (the compute threads take every core: decoding in the training process costs less than workers
    taking cores from them) and min(6, the rank's cores - 1) on a GPU (fairseq BASE: 6); see
    ``ds_w2v.hardware.data_workers``. The batch order depends on it; a resume with another count
    regroups the stream (exact for the samples, see ``data/loader.py``)."""
    shuffle_buffer: int = 256
    """Utterances held per worker and drawn from at random (WebDataset's shuffle): larger mixes shards
    more, costs memory; 0 keeps shard order."""
    read_timeout_s: float | None = 180.0
    """A shard read through a command (https via curl, ``pipe:``) that sends nothing for this many
    seconds is skipped (warning, counted as ``unreachable_shard``; the rest go on). None: no limit."""
    fill: float = 0.85
    """Expected batch fill, used to count batches per epoch from the index."""
    prefetch: bool = False
    """Keep the next training batch on the device before it is needed: pinned host memory and a
    non-blocking copy on a side CUDA stream, overlapping the current batch's compute (see
    ``ds_w2v/data/prefetch.py``). On CPU the batches pass through unchanged. The position saved in
    checkpoints is that of the batches training consumed, so a resume stays exact."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    """Augmentation of the training stream, off by default (``ds_w2v/data/augment.py``):
    ``data.augment.speeds=[0.9,1.0,1.1]``, ``data.augment.noise=DIR`` (audio folder or prepared
    shards) at ``data.augment.snr_db=[5,20]`` with ``noise_prob``, ``data.augment.rir=DIR`` with
    ``rir_prob``. Seeded by ``seed``, exact on resume; dev and test are never augmented."""

    def stream_config(self, kind: str, seed: int, device_type: str = "cpu", **fields: Any):
        """The training stream's :class:`~ds_w2v.data.stream.StreamConfig` from this section: the one
        place the data keys become a stream (the trainer and the study's HF reference loop use it);
        ``data.num_workers=auto`` resolved for ``device_type``; ``fields`` override (``loop=False``)."""
        from ..data.stream import StreamConfig
        from ..hardware import data_workers

        values = dict(kind=kind, batch_s=self.batch_s, fill=self.fill, max_sample_size=self.max_sample_size,
                      min_duration_s=self.min_duration_s, max_duration_s=self.max_duration_s,
                      shuffle_buffer=self.shuffle_buffer, read_timeout_s=self.read_timeout_s, seed=seed,
                      num_workers=data_workers(self.num_workers, device_type), pin_memory=device_type == "cuda",
                      augment=self.augment if self.augment.active else None)
        return StreamConfig(**{**values, **fields})

    def eval_stream_config(self, kind: str, seed: int):
        """The evaluation stream: one pass in index order (no loop, no shuffling), the training
        stream's batch size, length cap (``max_sample_size``: longer utterances are cropped) and
        read timeout; never augmented, and no utterance left out for its duration (a metric is never
        computed on a subset: ``min_duration_s`` / ``max_duration_s`` are the training stream's)."""
        return self.stream_config(kind, seed, num_workers=0, pin_memory=False, augment=None, loop=False,
                                  shard_shuffle=False, shuffle_buffer=0, min_duration_s=0.0, max_duration_s=None)

    @property
    def test_splits(self) -> list[str]:
        if not self.test_split:
            return []
        return [self.test_split] if isinstance(self.test_split, str) else list(self.test_split)

    def validate(self) -> None:
        """This section's keys (ValueError naming the key)."""
        if len(set(self.test_splits)) != len(self.test_splits):
            _bad("data.test_split", f"names a split twice: {self.test_splits}")
        if not self.shards:
            _bad("data.shards", "is required (a directory made by `ds-w2v prepare`)")
        if self.train is not None and len(self.train) == 0:
            _bad("data.train", "is an empty list: name the corpora to train on, or leave it out (null) to train on "
                               f"data.shards' {self.train_split!r} split")
        if self.shard_url_prefix:
            from ..data.index import url_prefix_problem

            problem = url_prefix_problem(self.shard_url_prefix)
            if problem:
                _bad("data.shard_url_prefix", f"{self.shard_url_prefix!r}: {problem}")
        if self.read_timeout_s is not None and not self.read_timeout_s > 0:
            _bad("data.read_timeout_s", f"must be > 0 seconds (or null: no limit), got {self.read_timeout_s}")
        nw = self.num_workers
        if nw != "auto" and not (isinstance(nw, int) and nw >= 0):
            _bad("data.num_workers", f"must be auto or an integer >= 0, got {nw!r}")
        if self.batch_s <= 0:
            _bad("data.batch_s", "must be > 0")


@dataclass
class OptimConfig:
    lr: float = 5e-4
    """Peak learning rate of Adam(W), reached after the warm-up (BASE pretraining 5e-4; the tiny
    recipes' values come from the study's dev choices)."""
    betas: tuple[float, float] = (0.9, 0.98)
    """Adam's moment decays (wav2vec 2.0: 0.9, 0.98)."""
    eps: float = 1e-6
    """Adam's epsilon (wav2vec 2.0: 1e-6; fine-tuning 1e-8)."""
    weight_decay: float = 0.01
    """Decoupled weight decay (AdamW) on every trainable parameter (BASE pretraining 0.01; fine-tuning
    0)."""
    clip_norm: float = 10.0
    """Gradient clipping (global L2 norm), written into the DeepSpeed config; 0 disables it."""

    def validate(self) -> None:
        """This section's keys: finite and >= 0 (torch refuses a negative lr only after the process
        group started, without naming the key), lr > 0, betas in [0, 1)."""
        for key in ("lr", "eps", "weight_decay", "clip_norm"):
            value = getattr(self, key)
            if not math.isfinite(value) or value < 0:
                _bad(f"optim.{key}", f"must be a finite number >= 0, got {value}")
        if self.lr == 0:
            _bad("optim.lr", "must be > 0 (0 trains nothing)")
        if not all(0 <= b < 1 for b in self.betas):
            _bad("optim.betas", f"must be two numbers in [0, 1), got {list(self.betas)}")


@dataclass
class ScheduleConfig:
    kind: str = "polynomial"
    """``polynomial``: linear warm-up then linear decay to ``end_lr`` (fairseq polynomial_decay,
    power 1); ``tri_stage``: warm-up / hold / exponential decay (fairseq tri_stage, fine-tuning)."""
    warmup_updates: int = 32_000
    """polynomial: updates of linear warm-up from 0 to ``optim.lr`` (BASE: 32,000 of 400k)."""
    phase_ratio: tuple[float, float, float] = (0.1, 0.4, 0.5)
    """tri_stage: fractions of max_updates for warm-up, hold, decay."""
    init_lr_scale: float = 0.01
    """tri_stage: the warm-up starts at ``optim.lr`` x this."""
    final_lr_scale: float = 0.05
    """tri_stage: the exponential decay ends at ``optim.lr`` x this."""
    end_lr: float = 0.0
    """polynomial: the learning rate the linear decay ends at, after ``max_updates``."""

    def validate(self) -> None:
        """This section's keys (a negative end_lr used to train on)."""
        if self.kind not in ("polynomial", "tri_stage"):
            _bad("schedule.kind", f"{self.kind!r} is not polynomial or tri_stage")
        if self.kind == "tri_stage" and abs(sum(self.phase_ratio) - 1.0) > 1e-6:
            _bad("schedule.phase_ratio", f"must sum to 1, got {self.phase_ratio}")
        for key in ("end_lr", "init_lr_scale", "final_lr_scale"):
            value = getattr(self, key)
            if not math.isfinite(value) or value < 0:
                _bad(f"schedule.{key}", f"must be a finite number >= 0, got {value}")
        if self.warmup_updates < 0:
            _bad("schedule.warmup_updates", f"must be >= 0, got {self.warmup_updates}")
        if any(not math.isfinite(r) or r < 0 for r in self.phase_ratio):
            _bad("schedule.phase_ratio", f"must be three fractions >= 0, got {list(self.phase_ratio)}")
        # the exponential decay works in log(final_lr / lr): both must be > 0
        if self.kind == "tri_stage" and self.final_lr_scale <= 0:
            _bad("schedule.final_lr_scale", f"must be > 0 (exponential decay), got {self.final_lr_scale}")


@dataclass
class ProbeConfig:
    """The linear phone probe run during training every ``probe_every`` updates (CPC's protocol,
    :func:`ds_w2v.probe.linear_phone_probe`): is the pretraining learning phonetic features?"""

    data: str = ""
    """A prepared directory with phone timings (``prepare --format timit``); "": ``data.shards``."""
    train_split: str = "train"
    """The probe's classifiers train on the frames of the first ``max_utterances`` of this split..."""
    eval_split: str = "dev"
    """...and are scored on those of this one (a fixed subset: the curve compares like with like)."""
    max_utterances: int = 60
    """Per split: ~6 s per probe of tiny on 2 CPU cores at 60 (features + six classifiers)."""
    epochs: int = 20
    """Epochs of each layer's linear classifier over the probe's train frames (CPC's protocol; 20
    converge at tiny's sizes)."""

    def validate(self) -> None:
        if self.max_utterances < 1 or self.epochs < 1:
            _bad("probe", f"max_utterances and epochs must be >= 1, got {self.max_utterances}, {self.epochs}")


@dataclass
class TrainConfig:
    task: str = "pretrain"
    """pretrain, ctc, cls (phone_ctc: ``ctc`` with ``data.target=phones``); the training commands set
    it."""
    run_dir: str = ""
    """Where checkpoints, metrics, TensorBoard logs and results go. "": ``runs/<recipe>`` (the
    recipe's file name without .yaml), else ``runs/<task>``: never one directory shared by every
    task, where a second command would resume another task's checkpoint."""
    seed: int = 1
    """Seeds the model's initial weights, the shard order, shuffling, masking and augmentation draws;
    two runs with one seed on one machine are the same run."""
    device: str = "auto"
    """``auto``: this rank's GPU when torch sees one, else the CPU; ``cpu``: the CPU even with a
    GPU visible (gloo; tests and debugging)."""
    precision: str = "auto"
    """``auto``: from the hardware (``ds_w2v/train/precision.py``): bf16 on a GPU that has it, else
    fp16; on a CPU bf16 only where it is native (AVX-512 BF16, AMX), else fp32; a DeepSpeed JSON
    that enables fp16 or bf16 decides first. Or fp32, bf16 (bf16 weights and activations, fp32
    master weights) or fp16 (dynamic loss scaling; GPU only). The objective, norms and quantizer
    always run in fp32. The choice and its reason are logged at start and kept in results.json."""
    deepspeed_config: str = "ds_configs/zero2.json"
    """A DeepSpeed JSON (path, or the name of a shipped one in ``ds_configs/``): ZeRO stage, offload,
    optimizer implementation. Batch sizes, precision, clipping and optimizer hyper-parameters come
    from this config, never from the JSON."""
    max_updates: int = 400_000
    """Optimizer updates of the run (BASE pretraining: 400k); the lr schedule is laid over them."""
    max_train_s: float | None = None
    """Stop cleanly (checkpoint, dev, test, results.json) once this many seconds were spent in
    updates, before ``max_updates`` (a cluster job's wall-clock limit; time-boxed benchmarks). All
    ranks stop at the same update: rank 0's clock decides."""
    global_batch_s: float = 5_600.0
    """Audio-seconds per optimizer update over all ranks (see the module docstring)."""
    log_every: int = 10
    """Updates between two rows of metrics.jsonl / TensorBoard (and a progress line when the output is
    not a terminal)."""
    eval_every: int = 1_000
    """Updates between two dev evaluations (each may save a best checkpoint); also after the last
    update."""
    save_every: int = 1_000
    """Updates between two checkpoints (``checkpoints/update_N``, ``latest`` names the newest); also
    after the last update."""
    keep_last: int = 3
    """Periodic checkpoints kept on disk (the oldest are removed); ``best`` ones are kept apart
    (``keep_best``)."""
    keep_best: int = 1
    """Best-on-dev checkpoints kept (``best_update_*`` tags; ``checkpoints/best`` names the best):
    a dev value among the ``keep_best`` best so far is saved too, for ``ds-w2v average --best N``
    (fairseq's ``--keep-best-checkpoints``). Each costs a full checkpoint (weights + Adam state)."""
    max_bad_updates: int = 5
    """Consecutive non-finite updates after which the run stops (the last checkpoint stays)."""
    freeze_transformer_updates: int = 0
    """Fine-tuning: only the head trains for this many updates (fairseq base_10h: 10,000)."""
    activation_checkpointing: list[int] | str | None = None
    """Encoder blocks whose activations are recomputed in backward: a list of indices or "all"."""
    compile: str = "none"
    """``torch.compile`` (inductor, dynamic shapes), applied in place before ``deepspeed.initialize``
    (state-dict keys unchanged): ``none``; ``blocks``, each transformer block (one compilation that
    every block reuses: quick to compile); ``backbone``, the feature encoder, projection, masking and
    transformer (``model.wav2vec2``; graph breaks where masking and LayerDrop read values on the
    host). Not the whole task model: its Gumbel temperature reads the Python update counter, which
    dynamo guards as a constant, so it would recompile at every update. The first updates are slow
    (compilation); on CPU it needs a C++ compiler. Refused with ZeRO-3, whose per-module parameter
    gathers break every graph (see ``Trainer``)."""
    eval_max_batches: int | None = None
    """Cap on dev batches per evaluation (None: the whole split)."""
    probe_every: int = 0
    """Run the linear phone probe (``probe``) on the frozen current model every this many updates,
    before the first and after the last; 0: never. Logs ``dev/probe_phone_acc`` (the best layer's
    frame accuracy), ``dev/probe_best_layer`` and ``dev/probe/<layer>``."""
    best_metric: str = ""
    """Dev metric that chooses the best checkpoint ("": the task's own: pretrain loss, ctc wer,
    phone_ctc per, cls acc). CER is the useful one while a short CTC run's WER is still ~100 %."""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    decoding: DecodingConfig = field(default_factory=DecodingConfig)
    """How a CTC task's dev and test hypotheses are decoded (``ds_w2v/lm/decoder.py``): greedy by
    default; ``decoding.decoder=beam decoding.lm=lm.arpa`` for beam search with an n-gram LM."""

    def __post_init__(self) -> None:
        if self.precision is None:  # a config.yaml written before ``auto`` (null: as the DeepSpeed JSON says)
            self.precision = "auto"
        # data.target chooses among the tasks of one task model (the one place: tasks.select_task);
        # an unknown task is left for validate to name
        if self.task in TASK_CLASSES:
            chosen = select_task(self.task, self.data.target)
            if chosen.name != self.task:
                # a best_metric the recipe chose for the task it replaces (cer) that this one lacks
                # means this one's own (per)
                replaced = TASK_CLASSES[self.task].best_metrics
                if self.best_metric in replaced and self.best_metric not in chosen.best_metrics:
                    self.best_metric = chosen.best_metric
                self.task = chosen.name

    def validate(self) -> None:
        """Checks that need no process group; raises ValueError naming the key. Each section checks
        its own keys (``DataConfig.validate`` ...); here what spans sections or is top-level."""
        if self.task not in TASK_CLASSES:
            _bad("task", f"{self.task!r} is not one of {', '.join(TASK_CLASSES)}")
        best_metrics = TASK_CLASSES[self.task].best_metrics
        if self.best_metric and self.best_metric not in best_metrics:
            _bad("best_metric", f"{self.best_metric!r} is not a dev metric of task {self.task}: "
                                f"{', '.join(best_metrics)}")
        if self.device not in DEVICES:
            _bad("device", f"{self.device!r} is not one of {', '.join(DEVICES)}")
        if self.precision not in PRECISIONS:
            _bad("precision", f"{self.precision!r} is not one of {', '.join(PRECISIONS)}")
        self.data.validate()
        if self.probe_every < 0:
            _bad("probe_every", f"must be >= 0, got {self.probe_every}")
        self.probe.validate()
        if self.global_batch_s <= 0:
            _bad("global_batch_s", "must be > 0")
        if self.max_updates < 1:
            _bad("max_updates", "must be >= 1")
        if self.max_train_s is not None and self.max_train_s <= 0:
            _bad("max_train_s", f"must be > 0 seconds, got {self.max_train_s}")
        for key in ("log_every", "eval_every", "save_every", "keep_last", "keep_best", "max_bad_updates"):
            if getattr(self, key) < 1:
                _bad(key, "must be >= 1")
        self.schedule.validate()
        self.optim.validate()
        self.decoding.validate()
        if self.compile not in COMPILE_MODES:
            _bad("compile", f"{self.compile!r} is not one of {', '.join(COMPILE_MODES)}")
        ac = self.activation_checkpointing
        if ac is not None and ac != "all" and not (isinstance(ac, list) and all(isinstance(i, int) for i in ac)):
            _bad("activation_checkpointing", f"must be a list of block indices or 'all', got {ac!r}")


def resolve_batch(config: TrainConfig, world_size: int) -> int:
    """Gradient accumulation steps for ``world_size`` ranks; refuses a batch that does not divide."""
    per_update = config.data.batch_s * world_size
    accum = config.global_batch_s / per_update
    if accum < 1 - 1e-9 or abs(accum - round(accum)) > 1e-6:
        raise ValueError(
            f"config key global_batch_s: {config.global_batch_s:g} audio-s is not a whole multiple of "
            f"data.batch_s x world_size = {config.data.batch_s:g} x {world_size} = {per_update:g}"
        )
    return int(round(accum))


# --- loading ----------------------------------------------------------------------------------
def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    """Check (and gently convert) ``value`` against a type hint; errors name ``key``."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ValueError as e:
                errors.append(str(e))
        raise ValueError(errors[0] if errors else f"config key {key}: bad value {value!r}")
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ValueError(f"config key {key}: expected a mapping, got {type(value).__name__}")
        return _build(hint, value, key + ".")
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:  # tuple[float, ...]: any length
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"config key {key}: expected a list, got {value!r}")
        return tuple(_coerce(v, args[0], key) for v in value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ValueError(f"config key {key}: expected a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, key) for v, a in zip(value, args))
    if origin is list:
        if not isinstance(value, list):
            raise ValueError(f"config key {key}: expected a list, got {value!r}")
        return [_coerce(v, args[0], key) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"config key {key}: expected a mapping, got {value!r}")
        return dict(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"config key {key}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise ValueError(f"config key {key}: expected an integer, got {value!r}")
        return int(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"config key {key}: expected true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"config key {key}: expected a string, got {value!r}")
        return value
    return value


def _build(cls, data: dict[str, Any], prefix: str = ""):
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"config key {prefix}{unknown[0]}: unknown (known: {', '.join(sorted(names))})")
    kwargs = {name: _coerce(value, hints[name], prefix + name) for name, value in data.items()}
    return cls(**kwargs)


def _merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "overrides":
            out[k] = _merge(out[k], v)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = {**out[k], **v}
        else:
            out[k] = v
    return out


def find_recipe(name_or_path: str) -> Path:
    """A recipe path as given, or a shipped recipe by name (``pretrain_tiny``)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    shipped = RECIPE_DIR / (name_or_path if name_or_path.endswith(".yaml") else name_or_path + ".yaml")
    if shipped.is_file():
        return shipped
    known = ", ".join(sorted(x.stem for x in RECIPE_DIR.glob("*.yaml")))
    raise FileNotFoundError(f"{name_or_path}: no such recipe file (shipped recipes: {known})")


def read_recipe(path: str | Path, _seen: tuple = ()) -> dict:
    """The recipe as a dict, with its ``parent`` chain merged in (parent first)."""
    path = find_recipe(str(path))
    if path.resolve() in _seen:
        raise ValueError(f"{path}: recipe parent cycle")
    try:
        data = _yaml_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a recipe must be a mapping")
    parent = data.pop("parent", None)
    if parent:
        ppath = Path(parent) if Path(parent).is_absolute() else path.parent / parent
        data = _merge(read_recipe(ppath if ppath.is_file() else parent, _seen + (path.resolve(),)), data)
    return data


def parse_override(item: str) -> tuple[list[str], Any]:
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise ValueError(f"override {item!r}: expected key=value")
    try:
        value = _yaml_load(raw) if raw != "" else ""
    except yaml.YAMLError as e:
        raise ValueError(f"config key {key}: value {raw!r} is not valid YAML ({str(e).splitlines()[0]})") from None
    return key.split("."), value


def section_config(cls, section: str, overrides: list[str], base: dict[str, Any] | None = None):
    """A config section (``cls``, e.g. ``DecodingConfig`` for ``decoding``) from ``section.KEY=value``
    items over ``base``: the trainer's parser and typing, for commands that take one section
    (``ds-w2v transcribe ... decoding.beam=100``). An item of another section is refused naming it.
    Returns ``(config, keys)``: ``keys`` are those the items set (a command names them as typed)."""
    data, keys = dict(base or {}), set()
    for item in overrides:
        path, value = parse_override(item)
        if len(path) != 2 or path[0] != section:
            raise ValueError(f"override {item!r}: this command takes {section}.KEY=value")
        data[path[1]] = value
        keys.add(path[1])
    return _build(cls, data, section + "."), keys


def load_config(recipe: str | Path | None = None, overrides: list[str] = (), **fields: Any) -> TrainConfig:
    """Defaults < recipe < ``overrides`` (``key=value`` strings) < ``fields`` (a dict merge)."""
    data = read_recipe(recipe) if recipe else {}
    for item in overrides:
        path, value = parse_override(item)
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {item!r}: {part} is not a section")
        node[path[-1]] = value
    data = _merge(data, fields)
    config = _build(TrainConfig, data)
    if not config.run_dir:  # runs/<recipe>, else runs/<task> (see TrainConfig.run_dir)
        config.run_dir = str(Path("runs") / (Path(str(recipe)).stem if recipe else config.task))
    config.validate()
    return config


def config_to_dict(config: TrainConfig) -> dict:
    return dataclasses.asdict(config)
