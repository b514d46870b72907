"""Reference outputs of Ultralytics' BYTETracker, for the parity tests
(``test/tracking/test_bytetrack.py``, no Ultralytics).

Runs ``ultralytics.trackers.byte_tracker.BYTETracker`` with its ``bytetrack.yaml`` defaults,
detections fed as Ultralytics ``Boxes`` exactly as its ``model.track()`` does, on two inputs, and
writes every reported track per frame (``frame,id,x1,y1,x2,y2,score,cls,det``) under
``test/golden/``:
- ``bytetrack_mot16-05_ultralytics.csv.gz``: all frames of MOT16-05 ``det/det.txt`` (scores min-max
  normalised).
- ``bytetrack_synthetic_ultralytics.csv.gz``: a seeded synthetic sequence, whose detections are
  written to ``bytetrack_synthetic_input.csv.gz`` (``frame,x1,y1,x2,y2,score,cls``). It exercises
  what MOT16-05 does not: two classes, class flips, empty frames, and tracked/lost duplicates
  (encounters scripted below).

Needs the reference environment (``bash bench/setup_ref_env.sh``; ``lap`` for Ultralytics'
assignment):
    .venv-ref/bin/python bench/make_bytetrack_golden.py [--seq DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path
from typing import Any

import numpy as np
import ultralytics
from ultralytics.cfg import get_cfg
from ultralytics.engine.results import Boxes
from ultralytics.trackers.byte_tracker import BYTETracker
from ultralytics.utils import ROOT

import data_paths
from yolo_trt_ros.evaluation.mot import load_detections, read_seqinfo

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "test" / "golden"
TRACKS_HEADER = "frame,id,x1,y1,x2,y2,score,cls,det"
INPUT_HEADER = "frame,x1,y1,x2,y2,score,cls"
Frames = list[
    tuple[np.ndarray, np.ndarray, np.ndarray]
]  # per frame: boxes xyxy (N, 4), scores (N,), classes (N,)


def ultralytics_bytetrack_args() -> Any:
    """Ultralytics' own bytetrack.yaml, loaded the way its tracker callbacks load it."""
    return get_cfg(ROOT / "cfg" / "trackers" / "bytetrack.yaml")


def synthetic_sequence(
    seed: int = 0,
    frames: int = 300,
    walkers: int = 24,
    pairs: int = 8,
    width: int = 640,
    height: int = 480,
) -> Frames:
    """Random walkers with missed, low-score and class-flipped detections, clutter and empty
    frames, plus `pairs` scripted encounters: an object stands still, vanishes, and another of
    about its size walks onto its spot and stays there (a tracked and a lost track then coincide:
    ByteTrack's duplicate rule)."""
    rng = np.random.default_rng(seed)
    size = rng.uniform((20, 50), (70, 180), (walkers, 2))
    pos = rng.uniform(0, (width, height), (walkers, 2))
    vel = rng.normal(0, 2.5, (walkers, 2))
    first = rng.integers(1, frames - 20, walkers)
    last = first + rng.integers(20, frames, walkers)
    cls = rng.integers(0, 2, walkers)
    scripted = []
    for p in range(pairs):
        spot = rng.uniform((60, 100), (width - 60, height - 100))
        wh = rng.uniform((30, 80), (60, 160))
        vanish = int(rng.integers(40, frames - 40))
        arrive = vanish + int(rng.integers(2, 12))
        stand_from = vanish - (40 if p % 2 else 4)  # older or younger than the walker
        walk = rng.normal(0, 1, 2)
        walk *= 3 / np.linalg.norm(walk)
        walk_from = arrive - 15
        scripted.append(
            (
                spot,
                wh,
                stand_from,
                vanish,
                walk,
                walk_from,
                arrive,
                arrive + 25,
                int(rng.integers(0, 2)),
            )
        )
    out = []
    for f in range(1, frames + 1):
        objects = []  # (center, size, class)
        pos += vel
        vel += rng.normal(0, 0.3, vel.shape)
        for i in np.flatnonzero((first <= f) & (f <= last)):
            objects.append((pos[i], size[i], cls[i]))
        for spot, wh, stand_from, vanish, walk, walk_from, arrive, leave, c in scripted:
            if stand_from <= f < vanish:
                objects.append((spot, wh, c))
            if walk_from <= f <= leave:
                objects.append((spot - walk * max(arrive - f, 0), wh * 1.02, c))
        boxes, scores, classes = [], [], []
        for center, wh, c in objects:
            r = rng.random()
            if r < 0.1:
                continue  # missed
            score = rng.uniform(0.12, 0.25) if r < 0.25 else rng.uniform(0.3, 1.0)
            center = center + rng.normal(0, 1.0, 2)
            wh = wh * rng.normal(1, 0.02, 2)
            boxes.append([*(center - wh / 2), *(center + wh / 2)])
            scores.append(score)
            classes.append(c if rng.random() > 0.05 else 1 - c)
        for _ in range(rng.poisson(1.0)):  # clutter
            center, wh = rng.uniform(0, (width, height)), rng.uniform(20, 100, 2)
            boxes.append([*(center - wh / 2), *(center + wh / 2)])
            scores.append(rng.uniform(0.05, 0.6))
            classes.append(int(rng.integers(0, 2)))
        if f % 97 == 0:
            boxes, scores, classes = [], [], []
        out.append(
            (
                np.array(boxes, dtype=np.float32).reshape(-1, 4),
                np.array(scores, dtype=np.float32),
                np.array(classes, dtype=np.int64),
            )
        )
    return out


def mot_frames(seq_dir: Path) -> tuple[Frames, tuple[int, int]]:
    info = read_seqinfo(seq_dir)
    frames = [
        (b, s, np.zeros(len(s)))
        for b, s in load_detections(seq_dir / "det" / "det.txt", info.length)
    ]
    return frames, (info.height, info.width)


def write_input(path: Path, frames: Frames) -> Frames:
    """Write detections rounded to 4 decimals and return them as read back (what the test feeds its
    tracker)."""
    lines = [
        f"{f},{x1:.4f},{y1:.4f},{x2:.4f},{y2:.4f},{s:.4f},{int(c)}"
        for f, (boxes, scores, classes) in enumerate(frames, 1)
        for (x1, y1, x2, y2), s, c in zip(
            boxes.tolist(), scores.tolist(), classes.tolist(), strict=True
        )
    ]
    with gzip.open(path, "wt") as f:
        f.write(INPUT_HEADER + "\n" + "\n".join(lines) + "\n")
    rows = np.array([line.split(",") for line in lines], dtype=np.float64).reshape(-1, 7)
    return [
        (
            rows[rows[:, 0] == f, 1:5].astype(np.float32),
            rows[rows[:, 0] == f, 5].astype(np.float32),
            rows[rows[:, 0] == f, 6],
        )
        for f in range(1, len(frames) + 1)
    ]


def track(frames: Frames, image_hw: tuple[int, int]) -> list[str]:
    tracker = BYTETracker(ultralytics_bytetrack_args())
    lines = []
    for frame, (boxes, scores, classes) in enumerate(frames, 1):
        data = np.column_stack((boxes, scores, classes)).astype(np.float32)
        out = tracker.update(Boxes(data, image_hw))
        for x1, y1, x2, y2, track_id, score, cls, det in out.reshape(-1, 8).tolist():
            lines.append(
                f"{frame},{int(track_id)},{x1:.4f},{y1:.4f},{x2:.4f},{y2:.4f},"
                f"{score:.6f},{int(cls)},{int(det)}"
            )
    return lines


def write_tracks(path: Path, lines: list[str], source: str) -> None:
    cfg = ultralytics_bytetrack_args()
    params = ", ".join(
        f"{k}={getattr(cfg, k)}"
        for k in (
            "track_high_thresh",
            "track_low_thresh",
            "new_track_thresh",
            "track_buffer",
            "match_thresh",
            "fuse_score",
        )
    )
    with gzip.open(path, "wt") as f:
        f.write(f"# ultralytics {ultralytics.__version__} BYTETracker on {source}; {params}\n")
        f.write(TRACKS_HEADER + "\n" + "\n".join(lines) + "\n")
    print(f"wrote {len(lines)} rows to {path}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seq", type=Path, default=data_paths.mot_sequence("MOT16-05"))
    parser.add_argument("--out-dir", type=Path, default=GOLDEN)
    args = parser.parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    frames, image_hw = mot_frames(args.seq)
    write_tracks(
        args.out_dir / "bytetrack_mot16-05_ultralytics.csv.gz",
        track(frames, image_hw),
        f"{args.seq.name} det.txt (scores min-max normalised)",
    )
    frames = write_input(args.out_dir / "bytetrack_synthetic_input.csv.gz", synthetic_sequence())
    write_tracks(
        args.out_dir / "bytetrack_synthetic_ultralytics.csv.gz",
        track(frames, (480, 640)),
        "bytetrack_synthetic_input.csv.gz (synthetic_sequence(seed=0))",
    )


if __name__ == "__main__":
    main()
