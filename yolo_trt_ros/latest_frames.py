"""The newest frame of each camera, waiting for the next inference: no queue of stale frames.

Camera callbacks ``put`` frames while the model runs; a frame replaces the one still waiting from
the same camera (that one is dropped and counted by the caller). The inference thread ``take``s up
to ``limit`` waiting frames at once, starting with the camera after the last one served, so with
more cameras than a batch holds every camera gets its turn (no camera starves).
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestFrames(Generic[T]):
    """One slot per camera (indices 0 .. ``cameras`` - 1); thread-safe."""

    def __init__(self, cameras: int) -> None:
        if cameras < 1:
            raise ValueError(f"need at least one camera, got {cameras}")
        self._slots: list[T | None] = [None] * cameras
        self._next = 0
        self._closed = False
        self._ready = threading.Condition()

    def put(self, camera: int, frame: T) -> T | None:
        """Make ``frame`` the camera's waiting frame; returns the frame it replaced (dropped)."""
        with self._ready:
            replaced, self._slots[camera] = self._slots[camera], frame
            self._ready.notify()
            return replaced

    def take(self, limit: int, timeout_s: float | None = None) -> list[tuple[int, T]]:
        """Wait (at most ``timeout_s``) for a frame, then take up to ``limit`` waiting frames as
        (camera, frame), in turn from the camera after the last served; [] on timeout or once
        closed."""
        with self._ready:
            self._ready.wait_for(
                lambda: self._closed or any(f is not None for f in self._slots), timeout_s
            )
            if self._closed:
                return []
            count = len(self._slots)
            taken: list[tuple[int, T]] = []
            for step in range(count):
                camera = (self._next + step) % count
                frame = self._slots[camera]
                if frame is None:
                    continue
                taken.append((camera, frame))
                self._slots[camera] = None
                if len(taken) == limit:
                    break
            if taken:
                self._next = (taken[-1][0] + 1) % count
            return taken

    def close(self) -> list[T]:
        """Wake every ``take`` (it returns []) and return the frames still waiting."""
        with self._ready:
            self._closed = True
            waiting = [f for f in self._slots if f is not None]
            self._slots = [None] * len(self._slots)
            self._ready.notify_all()
            return waiting
