"""The one exception type for bad input frames; any other exception in the frame path is an
internal error."""

from __future__ import annotations


class ImageRejected(ValueError):
    """An input frame that cannot be used: ``reason`` is a short stable key for counters
    (``zero_size``, ``unsupported_encoding``, ...), ``str()`` a loggable sentence."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
