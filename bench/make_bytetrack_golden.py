"""Reference output of Ultralytics' BYTETracker on MOT16-05 public detections, for the parity test.

Runs ``ultralytics.trackers.byte_tracker.BYTETracker`` with its ``bytetrack.yaml`` defaults over all frames of
``det/det.txt`` (scores min-max normalised over the file, boxes fed as Ultralytics ``Boxes``, exactly as its
``model.track()`` does), and writes every reported track per frame to
``test/golden/bytetrack_mot16-05_ultralytics.csv.gz``: ``frame,id,x1,y1,x2,y2,score,det``.
``test/test_bytetrack.py`` checks ``ByteTracker`` against it without Ultralytics installed.

Needs the reference environment (``bash bench/setup_ref_env.sh``; ``lap`` for Ultralytics' assignment):
    .venv-ref/bin/python bench/make_bytetrack_golden.py [--seq DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import numpy as np
import ultralytics
from ultralytics.cfg import get_cfg
from ultralytics.engine.results import Boxes
from ultralytics.trackers.byte_tracker import BYTETracker
from ultralytics.utils import ROOT

from yolo_trt_ros import data_paths
from yolo_trt_ros.mot_eval import load_detections, read_seqinfo

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "test" / "golden" / "bytetrack_mot16-05_ultralytics.csv.gz"
HEADER = "frame,id,x1,y1,x2,y2,score,det"


def ultralytics_bytetrack_args():
    """Ultralytics' own bytetrack.yaml, loaded the way its tracker callbacks load it."""
    return get_cfg(ROOT / "cfg" / "trackers" / "bytetrack.yaml")


def run(seq_dir: Path) -> list[str]:
    info = read_seqinfo(seq_dir)
    tracker = BYTETracker(ultralytics_bytetrack_args())
    lines = []
    for frame, (boxes, scores) in enumerate(load_detections(seq_dir / "det" / "det.txt", info.length), 1):
        data = np.column_stack((boxes, scores, np.zeros_like(scores))).astype(np.float32)
        out = tracker.update(Boxes(data, (info.height, info.width)))
        for x1, y1, x2, y2, track_id, score, _cls, det in out.reshape(-1, 8).tolist():
            lines.append(f"{frame},{int(track_id)},{x1:.4f},{y1:.4f},{x2:.4f},{y2:.4f},{score:.6f},{int(det)}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seq", type=Path, default=data_paths.mot_sequence("MOT16-05"))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    lines = run(args.seq)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cfg = ultralytics_bytetrack_args()
    params = ", ".join(
        f"{k}={getattr(cfg, k)}"
        for k in ("track_high_thresh", "track_low_thresh", "new_track_thresh", "track_buffer", "match_thresh",
                  "fuse_score")
    )
    with gzip.open(args.out, "wt") as f:
        f.write(f"# ultralytics {ultralytics.__version__} BYTETracker on {args.seq.name} det.txt "
                f"(scores min-max normalised); {params}\n")
        f.write(HEADER + "\n")
        f.write("\n".join(lines) + "\n")
    print(f"wrote {len(lines)} rows to {args.out}")


if __name__ == "__main__":
    main()
