"""``python -m ds_w2v COMMAND ...`` (and ``deepspeed --module ds_w2v COMMAND ...``): see ds_w2v/cli.py."""
import sys

from .cli import main

sys.exit(main())
