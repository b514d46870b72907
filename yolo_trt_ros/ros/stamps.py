"""Image header stamps checked against the receive clock: the tracker's time line, and which
latencies are real.

A camera's stamps advance with the clock at which its frames arrive: the offset (receive time -
stamp) is the camera-to-node delay and stays nearly constant, whatever the clocks' epochs (a bag
replayed without sim time has a large but constant offset). A stamp is a glitch when it is zero,
has nanoseconds >= 1e9, does not advance past the previous good stamp (``backwards``), or when its
offset differs from the previous good frame's by more than ``tolerance_s`` (``jump``, e.g. one
stamp an hour off).

Tracker time (``StampCheck.time``): a good frame's stamp (shifted after a re-anchor, see below);
for a glitch, the previous frame's time plus the camera's typical frame interval (the median of the
recent good intervals; the receive interval while none is known), so one glitched stamp between
good ones costs the tracker nothing. When ``REANCHOR_FRAMES`` consecutive glitches agree with each
other (the driver's clock was set, a bag restarted), their time line is taken as the new one,
continuing the tracker time without a jump.

Latency (``plausible_latency_ms``) is reported only for good stamps, from 0 to ``MAX_LATENCY_S``.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass

REANCHOR_FRAMES = 2
"""Consecutive glitches on one consistent time line after which that time line is accepted."""
MAX_LATENCY_S = 10.0
"""Longest stamp-to-publish delay counted as latency; anything longer is a clock mismatch, not a
delay."""
_INTERVALS = 15
"""Good stamp intervals kept for the typical frame interval."""


@dataclass(frozen=True)
class StampCheck:
    """The verdict on one frame's stamp."""

    time: float
    """Tracker time of the frame, seconds (non-decreasing from frame to frame)."""
    glitch: str | None
    """None for a good stamp, else ``zero``, ``invalid``, ``backwards`` or ``jump``."""
    detail: str = ""
    """For a glitch: a sentence saying what was wrong."""


@dataclass
class _Anchor:
    stamp: float
    receive: float

    @property
    def offset(self) -> float:
        return self.receive - self.stamp


class StampGuard:
    """Checks each frame's header stamp (``sec``, ``nanosec``) against its receive time (seconds,
    any clock that runs at the stamps' rate: the node's ROS clock); see the module docstring."""

    def __init__(self, tolerance_s: float = 1.0) -> None:
        self.tolerance_s = tolerance_s
        self.reset()

    def reset(self) -> None:
        """Forget the time line (a new tracker)."""
        self._good: _Anchor | None = None  # the last good frame
        self._shift = 0.0  # tracker time - stamp on the current time line
        self._candidate: _Anchor | None = None  # the last glitch, a possible new time line
        self._candidate_count = 0
        self._intervals: deque[float] = deque(maxlen=_INTERVALS)
        self._last_time: float | None = None
        self._last_receive: float | None = None

    def check(self, sec: int, nanosec: int, receive: float) -> StampCheck:
        if nanosec >= 1_000_000_000:
            result = self._glitch("invalid", f"stamp nanosec {nanosec} is not below 1e9", receive)
        elif sec == 0 and nanosec == 0:
            result = self._glitch(
                "zero", "stamp is zero (the driver does not stamp its frames)", receive
            )
        else:
            result = self._stamped(sec + nanosec * 1e-9, receive)
        self._last_time, self._last_receive = result.time, receive
        return result

    def _stamped(self, stamp: float, receive: float) -> StampCheck:
        frame = _Anchor(stamp, receive)
        good = self._good
        if good is None:
            return self._anchor(frame)
        drift = frame.offset - good.offset
        if abs(drift) > self.tolerance_s:
            glitch, detail = (
                "jump",
                (
                    f"stamp {stamp:.9f} is {-drift:+.3f} s off the receive clock's progress since "
                    f"the last good stamp {good.stamp:.9f} (tolerance {self.tolerance_s:g} s)"
                ),
            )
        elif stamp <= good.stamp:
            glitch, detail = (
                "backwards",
                f"stamp {stamp:.9f} is not after the last good stamp {good.stamp:.9f}",
            )
        else:
            self._intervals.append(stamp - good.stamp)
            self._good, self._candidate, self._candidate_count = frame, None, 0
            return StampCheck(max(stamp + self._shift, self._last_time or -float("inf")), None)
        candidate = self._candidate
        if (
            candidate is not None
            and stamp > candidate.stamp
            and abs(frame.offset - candidate.offset) <= self.tolerance_s
        ):
            self._candidate_count += 1
        else:
            self._candidate_count = 1
        self._candidate = frame
        if self._candidate_count >= REANCHOR_FRAMES:
            return self._anchor(frame)
        return self._glitch(glitch, detail, receive)

    def _anchor(self, frame: _Anchor) -> StampCheck:
        """Start a time line at ``frame``, continuing the tracker time."""
        time = frame.stamp if self._last_time is None else self._next_time(frame.receive)
        self._shift = time - frame.stamp
        self._good, self._candidate, self._candidate_count = frame, None, 0
        self._intervals.clear()
        return StampCheck(time, None)

    def _glitch(self, glitch: str, detail: str, receive: float) -> StampCheck:
        time = receive if self._last_time is None else self._next_time(receive)
        return StampCheck(time, glitch, detail)

    def _next_time(self, receive: float) -> float:
        """The previous frame's time plus the typical frame interval (the receive interval while
        none is known)."""
        assert self._last_time is not None and self._last_receive is not None
        if self._intervals:
            return self._last_time + statistics.median(self._intervals)
        return self._last_time + max(receive - self._last_receive, 0.0)


def plausible_latency_ms(check: StampCheck, stamp: float, now: float) -> float | None:
    """Stamp-to-``now`` latency in ms for a good stamp within [0, ``MAX_LATENCY_S``]; None
    otherwise."""
    latency = now - stamp
    if check.glitch is not None or not 0.0 <= latency <= MAX_LATENCY_S:
        return None
    return latency * 1e3
