"""Per-frame counters for the node's diagnostics: rates, latency percentiles, drops, rejects, stage
timings.

Drops are counted from publication sequence numbers (rmw
``MessageInfo.publication_sequence_number``, which rmw_fastrtps and rmw_cyclonedds fill in, one
counter per publisher): a frame whose number was skipped between two frames that reached the
callback was published but never processed, either lost in transport or overwritten in the depth-1
subscription queue while the previous frame was being processed. Frames published before the first
one seen from a publisher are not counted. Frames that reach the callback but are invalid are
counted as rejected, not dropped. Where the rmw gives no sequence numbers, ``drops_known`` stays
False. The input rate counts received and dropped frames, so it is the camera's rate as published,
not the rate the node keeps up with.

Besides bad input (``rejected``, per reason), frames lost to an internal error are counted per
pipeline stage (``failed``), glitched header stamps per kind (``stamp_glitches``) and frames whose
latency was not plausible (``latency_excluded``); ``problem_ages_s`` says how long ago each kind of
problem was last seen, for a status that warns while a problem recurs.

All methods take ``now`` (seconds, monotonic) from the caller and hold a lock, so a diagnostics
timer may read while the image callback writes.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field

import numpy as np

from yolo_trt_ros.pipeline import STAGES as PIPELINE_STAGES

STAGES = (*PIPELINE_STAGES, "publish", "annotate")
"""The frame pipeline's stages, then the node's own."""


@dataclass(frozen=True)
class StatsSnapshot:
    """What the diagnostics report, at one instant."""

    input_hz: float
    processed_hz: float
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    received: int
    processed: int
    dropped: int
    drops_known: bool
    rejected: int
    superseded: int = 0
    """Frames replaced by a newer one of their camera while waiting for inference."""
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    failed_by_stage: dict[str, int] = field(default_factory=dict)
    stamp_glitches: dict[str, int] = field(default_factory=dict)
    latency_excluded: int = 0
    stage_p50_ms: dict[str, float] = field(default_factory=dict)
    last_input_age_s: float | None = None
    problem_ages_s: dict[str, float] = field(default_factory=dict)
    """Seconds since each kind of problem (``rejected``, ``failed``, ``stamp``) was last seen."""


class _RateWindow:
    """Events per second over the last ``window_s`` seconds: the events after the window's first
    instant, divided by the span from it to the last one."""

    def __init__(self, window_s: float, max_events: int) -> None:
        self.window_s = window_s
        self.events: deque[tuple[float, int]] = deque(maxlen=max_events)

    def add(self, now: float, count: int = 1) -> None:
        self.events.append((now, count))

    def rate(self, now: float) -> float:
        while self.events and self.events[0][0] < now - self.window_s:
            self.events.popleft()
        if len(self.events) < 2 or self.events[-1][0] == self.events[0][0]:
            return 0.0
        count = sum(n for _, n in self.events) - self.events[0][1]
        return count / (self.events[-1][0] - self.events[0][0])


class FrameStats:
    """Counters for one node; ``max_samples`` bounds the latency and stage-time windows (last N
    frames)."""

    def __init__(self, window_s: float = 5.0, max_samples: int = 300) -> None:
        self._lock = threading.Lock()
        self._window_s = window_s
        self._max_samples = max_samples
        self.reset()

    def reset(self) -> None:
        """Forget everything (a new configuration)."""
        with self._lock:
            self._input = _RateWindow(self._window_s, 10_000)
            self._processed_rate = _RateWindow(self._window_s, 10_000)
            self._latency: deque[float] = deque(maxlen=self._max_samples)
            self._stages: dict[str, deque[float]] = {}
            self._last_sequence: dict[Hashable, int] = {}
            self._received = 0
            self._processed = 0
            self._dropped = 0
            self._drops_known = False
            self._superseded = 0
            self._rejected: Counter[str] = Counter()
            self._failed: Counter[str] = Counter()
            self._stamp_glitches: Counter[str] = Counter()
            self._latency_excluded = 0
            self._last_input: float | None = None
            self._last_problem: dict[str, float] = {}

    def restart_sequences(self) -> None:
        """Start drop counting afresh (a new subscription: frames published while inactive are not
        drops)."""
        with self._lock:
            self._last_sequence.clear()

    def received(
        self, now: float, publisher: Hashable = None, sequence: int | None = None
    ) -> None:
        """A frame reached the callback; ``sequence`` is its publication sequence number from
        ``publisher``."""
        with self._lock:
            self._received += 1
            self._last_input = now
            gap = 0
            if sequence:  # None, or 0 where the rmw does not fill it in
                self._drops_known = True
                last = self._last_sequence.get(publisher)
                if last is None or sequence > last:
                    if last is not None:
                        gap = sequence - last - 1
                    self._last_sequence[publisher] = sequence
            self._dropped += gap
            self._input.add(now, 1 + gap)

    def processed(
        self, now: float, latency_ms: float | None, stage_ms: Mapping[str, float]
    ) -> None:
        """A frame was published; ``latency_ms``: image stamp -> publish (None: not plausible,
        counted in ``latency_excluded``), ``stage_ms``: per-stage durations."""
        with self._lock:
            self._processed += 1
            self._processed_rate.add(now)
            if latency_ms is None:
                self._latency_excluded += 1
            else:
                self._latency.append(latency_ms)
            for stage, ms in stage_ms.items():
                self._stages.setdefault(stage, deque(maxlen=self._max_samples)).append(ms)

    def superseded(self) -> None:
        """A received frame was replaced by a newer one of its camera before inference took it
        (the node never queues stale frames)."""
        with self._lock:
            self._superseded += 1

    def rejected(self, now: float, reason: str) -> int:
        """A frame reached the callback but was unusable (``reason``: a short key such as
        ``zero_size``); returns the count for ``reason`` so far (as do ``failed`` and
        ``stamp_glitch`` for theirs)."""
        return self._problem(now, "rejected", self._rejected, reason)

    def failed(self, now: float, stage: str) -> int:
        """A frame was lost to an internal error in pipeline ``stage`` (``detect``, ``track``,
        ``annotate``...)."""
        return self._problem(now, "failed", self._failed, stage)

    def stamp_glitch(self, now: float, kind: str) -> int:
        """A frame's header stamp was a glitch of ``kind`` (see ``stamps``)."""
        return self._problem(now, "stamp", self._stamp_glitches, kind)

    def _problem(self, now: float, kind: str, counter: Counter[str], key: str) -> int:
        with self._lock:
            counter[key] += 1
            self._last_problem[kind] = now
            return counter[key]

    def snapshot(self, now: float) -> StatsSnapshot:
        with self._lock:
            latency = (
                np.percentile(np.fromiter(self._latency, float), (50, 99))
                if self._latency
                else None
            )
            return StatsSnapshot(
                input_hz=self._input.rate(now),
                processed_hz=self._processed_rate.rate(now),
                latency_p50_ms=float(latency[0]) if latency is not None else None,
                latency_p99_ms=float(latency[1]) if latency is not None else None,
                received=self._received,
                processed=self._processed,
                dropped=self._dropped,
                drops_known=self._drops_known,
                superseded=self._superseded,
                rejected=sum(self._rejected.values()),
                rejected_by_reason=dict(self._rejected),
                failed_by_stage=dict(self._failed),
                stamp_glitches=dict(self._stamp_glitches),
                latency_excluded=self._latency_excluded,
                stage_p50_ms={
                    s: float(np.median(np.fromiter(v, float)))
                    for s, v in self._stages.items()
                    if v
                },
                last_input_age_s=None if self._last_input is None else now - self._last_input,
                problem_ages_s={kind: now - t for kind, t in self._last_problem.items()},
            )
