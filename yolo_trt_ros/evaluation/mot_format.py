"""MOTChallenge result files: ``frame,id,x,y,w,h,conf,-1,-1,-1`` rows, frames counted from 1.

``x, y`` is the top-left corner, ``w, h`` the size, in pixels. Untracked detections carry id -1.
Given the image size, boxes are clipped to the image first (as MOTChallenge results and
Ultralytics' tracks are).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np

NO_ID = -1


@dataclass(frozen=True)
class MotRow:
    """One result row (a box in one frame)."""

    frame: int
    track_id: int
    x: float
    y: float
    w: float
    h: float
    conf: float

    def format(self) -> str:
        """The row as written in a result file (no newline)."""
        return (
            f"{self.frame},{self.track_id},{self.x:.2f},{self.y:.2f},{self.w:.2f},{self.h:.2f},"
            f"{self.conf:.4f},-1,-1,-1"
        )


def clip_boxes(boxes_xyxy: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """xyxy boxes clipped to an image of ``image_size = (width, height)`` pixels (new float64
    array)."""
    width, height = image_size
    boxes = np.array(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    np.clip(boxes[:, 0::2], 0, width, out=boxes[:, 0::2])
    np.clip(boxes[:, 1::2], 0, height, out=boxes[:, 1::2])
    return boxes


def rows_from_boxes(
    frame: int,
    boxes_xyxy: np.ndarray,
    scores: np.ndarray,
    track_ids: Iterable[int] | None = None,
    image_size: tuple[int, int] | None = None,
) -> list[MotRow]:
    """Rows for one frame from xyxy boxes and scores; ids default to -1 (no tracker).

    With ``image_size = (width, height)`` the boxes are clipped to the image.
    """
    if frame < 1:
        raise ValueError(f"MOTChallenge frames start at 1, got {frame}")
    boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    if image_size is not None:
        boxes = clip_boxes(boxes, image_size)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(scores) != len(boxes):
        raise ValueError(f"{len(boxes)} boxes but {len(scores)} scores")
    ids = [NO_ID] * len(boxes) if track_ids is None else [int(i) for i in track_ids]
    if len(ids) != len(boxes):
        raise ValueError(f"{len(boxes)} boxes but {len(ids)} track ids")
    return [
        MotRow(frame, tid, float(x1), float(y1), float(x2 - x1), float(y2 - y1), float(conf))
        for (x1, y1, x2, y2), conf, tid in zip(boxes, scores, ids, strict=True)
    ]


def write_rows(out: TextIO, rows: Iterable[MotRow]) -> int:
    """Write rows to an open text file; returns how many were written."""
    count = 0
    for row in rows:
        out.write(row.format() + "\n")
        count += 1
    return count


def parse_row(line: str) -> MotRow:
    """Parse one line (results, ``det.txt`` or ``gt.txt`` layout: at least 7 comma-separated
    numbers)."""
    fields = line.strip().split(",")
    if len(fields) < 7:
        raise ValueError(f"MOT row needs at least 7 fields, got {len(fields)}: {line.strip()!r}")
    try:
        frame, track_id = int(float(fields[0])), int(float(fields[1]))
        x, y, w, h, conf = (float(f) for f in fields[2:7])
    except ValueError as exc:
        raise ValueError(f"MOT row has a non-numeric field: {line.strip()!r}") from exc
    return MotRow(frame, track_id, x, y, w, h, conf)


def read_rows(path: str | Path) -> list[MotRow]:
    """All rows of a MOTChallenge file (blank lines skipped); ValueError names the file and
    line."""
    rows = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(parse_row(line))
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: {exc}") from exc
    return rows
