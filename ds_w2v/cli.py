"""``ds-w2v``: one command, a sub-command per job.

Each sub-command lives in its own module with ``build_parser(prog)`` and ``main(args)``; it is
imported only when named, so ``ds-w2v --help`` stays instant and a heavy import (torch,
deepspeed) is paid only by the command that needs it.
"""
from __future__ import annotations

import importlib
import sys

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("ds_w2v.commands.init", "write a freshly initialised model file (preset + task)"),
    "export-hf": ("ds_w2v.commands.export_hf", "convert a ds_w2v model file into a HF transformers folder"),
    "prepare": ("ds_w2v.commands.prepare", "read a corpus in its on-disk layout and write WebDataset shards"),
    "synth": ("ds_w2v.commands.synth", "synthesise the offline demo corpora (TIMIT / RAVDESS layouts)"),
    "pretrain": ("ds_w2v.commands.train:pretrain", "self-supervised pretraining under DeepSpeed (--recipe R)"),
    "finetune-ctc": ("ds_w2v.commands.train:finetune_ctc", "fine-tune with a CTC head (speech recognition)"),
    "finetune-cls": ("ds_w2v.commands.train:finetune_cls", "fine-tune with a classification head"),
    "evaluate": ("ds_w2v.commands.train:evaluate", "score a model or run on dev/test splits"),
    "export": ("ds_w2v.commands.export", "consolidate a run's checkpoint (any ZeRO stage) into a model file"),
    "transcribe": ("ds_w2v.commands.transcribe", "speech recognition with a CTC model: audio files -> text"),
    "classify": ("ds_w2v.commands.classify", "classify audio files with a classification model"),
    "bench": ("ds_w2v.commands.bench", "benchmarks: step (model update vs HF), train (DeepSpeed updates vs HF), data (streaming/prepare)"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: ds-w2v COMMAND [options]   (ds-w2v COMMAND --help for its options)", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"ds-w2v: unknown command {name!r}; known: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module_name, _, attr = COMMANDS[name][0].partition(":")
    module = importlib.import_module(module_name)
    if attr:
        module = getattr(module, attr)
    args = module.build_parser(f"ds-w2v {name}").parse_args(rest)
    try:
        return int(module.main(args) or 0)
    except (ValueError, FileNotFoundError) as e:  # bad input: one clear line, no traceback
        print(f"ds-w2v {name}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
