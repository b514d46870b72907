"""Log text: outside text (message fields, graph names, exception messages) made safe for one log
line, and recurring problems logged at a bounded rate."""

from __future__ import annotations

import time
from collections.abc import Callable

MAX_LOGGED_CHARS = 200
"""Longest piece of outside text put into a log line."""

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(value: object, limit: int = MAX_LOGGED_CHARS) -> str:
    """``str(value)`` cut to ``limit`` characters, with control and other non-printable characters
    escaped (``\\n``, ``\\x1b``, ``\\u2028``), so it can neither flood a log nor forge a line of
    its own."""
    text = str(value)
    shown = "".join(c if c.isprintable() else _escape(c) for c in text[:limit])
    if len(text) > limit:
        shown += f"...[{len(text) - limit} more characters]"
    return shown


def _escape(char: str) -> str:
    code = ord(char)
    return _ESCAPES.get(char) or (
        f"\\x{code:02x}"
        if code < 0x100
        else f"\\u{code:04x}"
        if code < 0x10000
        else f"\\U{code:08x}"
    )


class ProblemLog:
    """Logs a recurring problem at most once per ``period_s`` per key, with how often it occurred
    so far."""

    def __init__(
        self, error: Callable[[str], object], warning: Callable[[str], object], period_s: float
    ) -> None:
        self._error, self._warning, self.period_s = error, warning, period_s
        self._logged_at: dict[str, float] = {}

    def __call__(
        self, key: str, count: int, text: str, error: bool = True, details: str = ""
    ) -> None:
        """Log ``text`` (and ``details`` on the lines after it) unless ``key`` was logged within
        the period."""
        now = time.monotonic()
        last = self._logged_at.get(key)
        if last is not None and now - last < self.period_s:
            return
        self._logged_at[key] = now
        line = f"{text} [{key}: {count} so far; logged at most every {self.period_s:.0f} s]"
        (self._error if error else self._warning)(line + (f"\n{details}" if details else ""))
