"""Text from outside (message fields, graph names, exception messages) made safe for one log line."""

from __future__ import annotations

MAX_LOGGED_CHARS = 200
"""Longest piece of outside text put into a log line."""

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(value: object, limit: int = MAX_LOGGED_CHARS) -> str:
    """``str(value)`` cut to ``limit`` characters, with control and other non-printable characters escaped
    (``\\n``, ``\\x1b``, ``\\u2028``), so it can neither flood a log nor forge a line of its own."""
    text = str(value)
    shown = "".join(c if c.isprintable() else _escape(c) for c in text[:limit])
    if len(text) > limit:
        shown += f"...[{len(text) - limit} more characters]"
    return shown


def _escape(char: str) -> str:
    code = ord(char)
    return _ESCAPES.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000
                                  else f"\\U{code:08x}")
