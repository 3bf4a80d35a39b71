"""``python -m ds_w2v.train COMMAND ...`` / ``deepspeed --module ds_w2v.train COMMAND ...``."""
import sys

from .cli import COMMAND_TASKS, build_parser, run


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMAND_TASKS:
        print(f"usage: python -m ds_w2v.train {{{','.join(COMMAND_TASKS)}}} --recipe R [key=value ...]", file=sys.stderr)
        return 2
    command = argv.pop(0)
    try:
        return run(command, build_parser(f"ds_w2v.train {command}").parse_args(argv))
    except (ValueError, FileNotFoundError) as e:
        print(f"ds_w2v.train {command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
