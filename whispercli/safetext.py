"""Text from elsewhere (a request, a peer, a server) made safe to print: every character that
is not printable, ESC, BEL, NUL, a line break or a bidi override alike, is shown as its
Python escape (``\\x1b``), so it cannot drive a terminal or fake a line of a log."""

from __future__ import annotations


def escape_controls(text: str, *, keep: str = "") -> str:
    """``text`` with its unprintable characters escaped, except those in ``keep`` (e.g.
    ``"\\n"`` for a traceback's line breaks)."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in keep else repr(c)[1:-1] for c in text)
