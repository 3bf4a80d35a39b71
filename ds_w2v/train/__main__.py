"""``python -m ds_w2v.train COMMAND ...``, ``deepspeed --module ds_w2v.train COMMAND ...``,
``torchrun -m ds_w2v.train COMMAND ...``: the one command table of ds_w2v/cli.py."""
import sys

from ..cli import main

sys.exit(main())
