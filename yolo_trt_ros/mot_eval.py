"""MOTChallenge evaluation glue: public detections in, tracker over a sequence, HOTA/MOTA/IDF1 out."""

from __future__ import annotations

import configparser
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class SequenceInfo:
    """``seqinfo.ini`` of a MOTChallenge sequence."""

    name: str
    frame_rate: float
    length: int
    width: int
    height: int


def read_seqinfo(seq_dir: str | Path) -> SequenceInfo:
    """Read ``<seq_dir>/seqinfo.ini``; ValueError names the file when it is missing or incomplete."""
    path = Path(seq_dir) / "seqinfo.ini"
    parser = configparser.ConfigParser()
    if not parser.read(path):
        raise ValueError(f"{path}: no such file")
    try:
        seq = parser["Sequence"]
        return SequenceInfo(
            seq["name"], float(seq["frameRate"]), int(seq["seqLength"]), int(seq["imWidth"]), int(seq["imHeight"])
        )
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{path}: missing or invalid [Sequence] entry: {exc}") from exc


def load_detections(path: str | Path, num_frames: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Public detections (``det.txt``) per frame: ``[(boxes xyxy float32 (N, 4), scores float32 (N,)), ...]``.

    Index 0 is frame 1; frames without detections get empty arrays, rows beyond ``num_frames`` are ignored.
    Scores are min-max normalised over the whole file, ``s' = (s - min) / (max - min)``, because DPM scores are
    not in [0, 1] and tracker thresholds expect them there (every tracker compared gets the same scores).
    """
    rows = np.loadtxt(path, delimiter=",", ndmin=2)
    if rows.shape[1] < 7:
        raise ValueError(f"{path}: MOTChallenge detections need at least 7 columns, got {rows.shape[1]}")
    scores = rows[:, 6]
    if len(scores):
        lo, hi = scores.min(), scores.max()
        scores = (scores - lo) / (hi - lo) if hi > lo else np.ones_like(scores)
    frames = rows[:, 0].astype(np.int64)
    boxes = np.column_stack((rows[:, 2], rows[:, 3], rows[:, 2] + rows[:, 4], rows[:, 3] + rows[:, 5]))
    result = []
    for frame in range(1, num_frames + 1):
        mask = frames == frame
        result.append((boxes[mask].astype(np.float32), scores[mask].astype(np.float32)))
    return result
