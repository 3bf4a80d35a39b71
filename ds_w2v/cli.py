"""``ds-w2v``: one command table, a sub-command per job, behind every door a user takes.

    ds-w2v COMMAND ...                                   the console script
    python -m ds_w2v COMMAND ...                         the same table
    deepspeed [--num_gpus N | --hostfile H] --module ds_w2v.train COMMAND ...
    torchrun --nproc_per_node N -m ds_w2v.train COMMAND ...
    (``ds_w2v.train`` and ``ds_w2v`` are the same entry: ``python -m ds_w2v.train`` is kept
    because launch lines in the wild name it)

The ``deepspeed`` launcher puts ``--local_rank=N`` *before* the command (unless
``--no_local_rank``); it is taken out wherever it stands and checked against ``LOCAL_RANK``,
so no sub-command sees it. Each sub-command lives in its own module with ``build_parser(prog)``
and ``main(args)``; it is imported only when named, so a heavy import (torch, deepspeed) is paid
only by the command that needs it.

The training commands are not in the table below: each task names its own (``Task.command``:
``pretrain``, ``finetune-ctc``, ``finetune-cls``) and may add more (``Task.commands``: a plugin
task's inference command), read from the task registry when one is named (and by ``--help``).
Plugins (``ds_w2v.plugins``: ``DS_W2V_PLUGINS``, entry points) are imported first, so a task
registered in a file of one's own gets its commands here and behind every launcher.
"""
from __future__ import annotations

import importlib
import os
import sys

# name -> (module[:attribute], one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("ds_w2v.commands.init", "write a freshly initialised model file (preset + task)"),
    "export-hf": ("ds_w2v.commands.export_hf", "convert a ds_w2v model file into a HF transformers folder"),
    "prepare": ("ds_w2v.commands.prepare", "read a corpus in its on-disk layout and write WebDataset shards"),
    "synth": ("ds_w2v.commands.synth", "synthesise the offline demo corpora (TIMIT / RAVDESS layouts)"),
    "evaluate": ("ds_w2v.commands.evaluate", "score a model file or run on dev/test splits (writes no run directory)"),
    "export": ("ds_w2v.commands.export", "consolidate a run's checkpoint (any ZeRO stage) into a model file"),
    "average": ("ds_w2v.commands.average", "mean of a run's last / best N checkpoints (any ZeRO stage) as a model file"),
    "transcribe": ("ds_w2v.commands.transcribe", "speech recognition with a CTC model: audio files -> text"),
    "build-lm": ("ds_w2v.commands.build_lm", "build an n-gram LM (ARPA) from text or transcripts, for beam search decoding"),
    "classify": ("ds_w2v.commands.classify", "classify audio files with a classification model"),
    "probe": ("ds_w2v.commands.probe", "probe a frozen model's layers: CPC linear phone probe, SUPERB PR and ER"),
    "env": ("ds_w2v.commands.env", "this machine (CPU ISA, cores, GPUs, versions) and what a run here would use"),
    "bench": ("ds_w2v.commands.bench", "benchmarks: step (model update vs HF), train (DeepSpeed updates vs HF), data (streaming/prepare)"),
}
LOCAL_RANK_FLAGS = ("--local_rank", "--local-rank")


class UsageError(ValueError):
    """A malformed command line (exit 2, one line)."""


def take_local_rank(argv: list[str]) -> tuple[list[str], int | None]:
    """``argv`` without the launcher's ``--local_rank`` (``=N`` or `` N``, anywhere), and its value."""
    rest: list[str] = []
    found: list[str] = []
    i = 0
    while i < len(argv):
        name, eq, value = argv[i].partition("=")
        if name in LOCAL_RANK_FLAGS:
            if not eq:
                if i + 1 >= len(argv):
                    raise UsageError(f"{name} needs a value (a non-negative integer)")
                i += 1
                value = argv[i]
            if not value.isdigit():
                raise UsageError(f"{name}={value!r}: not a non-negative integer")
            found.append(value)
        else:
            rest.append(argv[i])
        i += 1
    if len(found) > 1:
        raise UsageError(f"--local_rank given {len(found)} times ({', '.join(found)}): the launcher sets it, "
                         "do not pass it yourself")
    return rest, int(found[0]) if found else None


def _set_local_rank(value: int | None) -> None:
    """The trainer reads the local rank from ``LOCAL_RANK`` (torchrun and deepspeed both set it)."""
    if value is None:
        return
    env = os.environ.get("LOCAL_RANK")
    if env is not None and env != str(value):
        raise UsageError(f"--local_rank={value} disagrees with LOCAL_RANK={env} in the environment")
    os.environ["LOCAL_RANK"] = str(value)


def _usage() -> str:
    tasks = task_commands()
    width = max(map(len, [*COMMANDS, *tasks]))
    lines = ["usage: ds-w2v COMMAND [options]   (ds-w2v COMMAND --help for its options; ds-w2v --version)", "",
             "training (each task's command, from the task registry):"]
    lines += [f"  {name.ljust(width)}  {help_}" for name, (_, help_) in tasks.items()]
    lines += ["", "commands:"]
    lines += [f"  {name.ljust(width)}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def _target(target: str):
    """``module[:attribute]`` imported: the module-like object of a command."""
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr) if attr else module


def task_commands() -> dict[str, tuple[object, str]]:
    """name -> (command, one-line help) of each registered task's training command (``Task.command``)
    and of the commands tasks add (``Task.commands``), in registry order. A name that a command of
    the table above holds is refused, naming the task."""
    from .commands.train import TrainCommand
    from .train.tasks import TASK_CLASSES

    out: dict[str, tuple[object, str]] = {}
    for task in TASK_CLASSES.values():
        named = {**({task.command: (TrainCommand(task.command, task.name), task.command_help)} if task.command else {}),
                 **{n: (t, h) for n, (t, h) in task.commands.items()}}
        for name, entry in named.items():
            if name in COMMANDS:
                raise UsageError(f"task {task.name} ({task.__name__}) names a command {name!r} that ds-w2v has already")
            out[name] = entry
    return out


def load_command(name: str):
    """The module-like object of a command: ``build_parser(prog)`` and ``main(args)``; a KeyError for
    a name that neither the table nor a task holds."""
    if name in COMMANDS:
        return _target(COMMANDS[name][0])
    command = task_commands()[name][0]
    return _target(command) if isinstance(command, str) else command


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        argv, local_rank = take_local_rank(argv)
        _set_local_rank(local_rank)
    except UsageError as e:
        print(f"ds-w2v: error: {e}", file=sys.stderr)
        return 2
    if argv and argv[0] in ("-V", "--version"):
        from . import __version__

        print(f"ds-w2v {__version__}")
        return 0
    try:
        from .plugins import load_plugins

        load_plugins()
        if not argv or argv[0] in ("-h", "--help"):
            print(_usage())
            return 0
        name, rest = argv[0], argv[1:]
        try:
            command = load_command(name)
        except KeyError:
            known = [*task_commands(), *COMMANDS]
            print(f"ds-w2v: unknown command {name!r}; known: {', '.join(known)}", file=sys.stderr)
            return 2
    except (UsageError, ValueError) as e:  # a plugin that does not import, or names a held command
        print(f"ds-w2v: error: {e}", file=sys.stderr)
        return 2
    parser = command.build_parser(f"ds-w2v {name}")
    try:  # key=value overrides and --options in any order (`evaluate k=v --split dev k=v`)
        args = parser.parse_intermixed_args(rest)
    except TypeError:  # a parser with sub-commands (bench): argparse's plain order
        args = parser.parse_args(rest)
    try:
        return int(command.main(args) or 0)
    except (ValueError, FileNotFoundError) as e:  # bad input: one clear line, no traceback
        print(f"ds-w2v {name}: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `ds-w2v env | head -1`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 0


if __name__ == "__main__":
    sys.exit(main())
