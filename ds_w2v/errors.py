"""The reason an exception gives, as one line for a user: its type and first line, whole.

Messages used to be cut at 200-300 characters, mid-sentence. A first line is kept whole up to
``MAX_CHARS`` (a pickle or tar error's first line is a sentence or two); past that it is cut at a
word boundary and the cut is marked, so no reason ends silently mid-word.
"""
from __future__ import annotations

MAX_CHARS = 1000


def reason(e: BaseException | str, max_chars: int = MAX_CHARS) -> str:
    """``"TypeName: first line of the message"`` (a str is taken as the message itself)."""
    text = e if isinstance(e, str) else str(e)
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if len(first) > max_chars:
        first = first[:max_chars].rsplit(" ", 1)[0] + " [... cut]"
    if isinstance(e, str):
        return first
    return f"{type(e).__name__}: {first}" if first else type(e).__name__
