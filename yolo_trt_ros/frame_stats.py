"""Per-frame counters for the node's diagnostics: rates, latency percentiles, drops, rejects, stage timings.

Drops are counted from publication sequence numbers (rmw ``MessageInfo.publication_sequence_number``, which
rmw_fastrtps and rmw_cyclonedds fill in, one counter per publisher): a frame whose number was skipped between two
frames that reached the callback was published but never processed, either lost in transport or overwritten in the
depth-1 subscription queue while the previous frame was being processed. Frames published before the first one
seen from a publisher are not counted. Frames that reach the callback but are invalid are counted as rejected, not
dropped. Where the rmw gives no sequence numbers, ``drops_known`` stays False.

All methods take ``now`` (seconds, monotonic) from the caller and hold a lock, so a diagnostics timer may read
while the image callback writes.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field

import numpy as np

STAGES = ("convert", "preprocess", "infer", "postprocess", "track", "publish", "annotate")


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
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    stage_p50_ms: dict[str, float] = field(default_factory=dict)
    last_input_age_s: float | None = None


class _RateWindow:
    """Events per second over the last ``window_s`` seconds ((n-1)/span of the events inside the window)."""

    def __init__(self, window_s: float, max_events: int) -> None:
        self.window_s = window_s
        self.times: deque[float] = deque(maxlen=max_events)

    def add(self, now: float) -> None:
        self.times.append(now)

    def rate(self, now: float) -> float:
        while self.times and self.times[0] < now - self.window_s:
            self.times.popleft()
        if len(self.times) < 2 or self.times[-1] == self.times[0]:
            return 0.0
        return (len(self.times) - 1) / (self.times[-1] - self.times[0])


class FrameStats:
    """Counters for one node; ``max_samples`` bounds the latency and stage-time windows (last N frames)."""

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
            self._rejected: Counter[str] = Counter()
            self._last_input: float | None = None

    def restart_sequences(self) -> None:
        """Start drop counting afresh (a new subscription: frames published while inactive are not drops)."""
        with self._lock:
            self._last_sequence.clear()

    def received(self, now: float, publisher: Hashable = None, sequence: int | None = None) -> None:
        """A frame reached the callback; ``sequence`` is its publication sequence number from ``publisher``."""
        with self._lock:
            self._received += 1
            self._last_input = now
            self._input.add(now)
            if not sequence:  # None, or 0 where the rmw does not fill it in
                return
            self._drops_known = True
            last = self._last_sequence.get(publisher)
            if last is None or sequence > last:
                if last is not None:
                    self._dropped += sequence - last - 1
                self._last_sequence[publisher] = sequence

    def processed(self, now: float, latency_ms: float | None, stage_ms: Mapping[str, float]) -> None:
        """A frame was published; ``latency_ms``: image stamp -> publish (None: unstamped image), ``stage_ms``:
        per-stage durations."""
        with self._lock:
            self._processed += 1
            self._processed_rate.add(now)
            if latency_ms is not None:
                self._latency.append(latency_ms)
            for stage, ms in stage_ms.items():
                self._stages.setdefault(stage, deque(maxlen=self._max_samples)).append(ms)

    def rejected(self, reason: str) -> None:
        """A frame reached the callback but was unusable (``reason``: a short key such as ``zero_size``)."""
        with self._lock:
            self._rejected[reason] += 1

    def snapshot(self, now: float) -> StatsSnapshot:
        with self._lock:
            latency = np.percentile(np.fromiter(self._latency, float), (50, 99)) if self._latency else None
            return StatsSnapshot(
                input_hz=self._input.rate(now),
                processed_hz=self._processed_rate.rate(now),
                latency_p50_ms=float(latency[0]) if latency is not None else None,
                latency_p99_ms=float(latency[1]) if latency is not None else None,
                received=self._received,
                processed=self._processed,
                dropped=self._dropped,
                drops_known=self._drops_known,
                rejected=sum(self._rejected.values()),
                rejected_by_reason=dict(self._rejected),
                stage_p50_ms={s: float(np.median(np.fromiter(v, float))) for s, v in self._stages.items() if v},
                last_input_age_s=None if self._last_input is None else now - self._last_input,
            )
