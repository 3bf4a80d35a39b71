"""Machine-readable results on stdout, everything else on stderr.

``ds-w2v pretrain ... > result.json`` used to fail to parse: DeepSpeed prints "Processing zero
checkpoint ..." and its op builds print "... built successfully" to stdout before the result.
Inside :func:`only_results_on_stdout` file descriptor 1 points at stderr, so whatever writes to
stdout there (Python, DeepSpeed, a compiler run as a subprocess) lands on stderr; the command
prints its JSON after the block, on the real stdout.
"""
from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator


@contextlib.contextmanager
def only_results_on_stdout() -> Iterator[None]:
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no file descriptor 1 (an embedding host): leave stdout as it is
        yield
        return
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
