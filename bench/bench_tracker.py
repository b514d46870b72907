"""Time per tracker update: ours vs Ultralytics' BYTETracker vs supervision's ByteTrack, one run.

All trackers get every frame of MOT16-05 ``det/det.txt`` (837 frames, ~5 detections a frame, scores
min-max normalised), at their defaults, in the form each one takes (ours: arrays; Ultralytics:
``Boxes``; supervision: ``Detections``, built before timing). Only the update call is timed
(``time.perf_counter_ns``). The sequence is run ``--rounds`` times with a fresh tracker state each
round, the trackers taking turns round by round so that they share the machine's load; the first
round of each is warm-up and not counted. Prints mean, median, p99 and max per update, the ratio to
ours, the load average before and after, and versions.

``--objects N ...`` also runs denser synthetic scenes: N objects moving at constant velocity with
jitter through a 1920x1080 frame for 120 frames, each detected with probability 0.9 at a uniform
random score (seeded).

``--parts`` also times the numpy building blocks one frame of ours calls (Kalman predict and
update, two IoU matrices, three box conversions) at MOT16-05 density, next to 5x Ultralytics'
time: the floor of this design at a few objects.

``--baseline-ref REV`` adds ours as of git revision REV (``HEAD``: uncommitted changes against the
last commit, in the same run): that revision's ``yolo_trt_ros`` package, taken with ``git archive``
into a temporary directory under another package name, runs beside the working tree's.

Needs the reference environment (``bash bench/setup_ref_env.sh``, plus ``supervision==0.30.*``):
    .venv-ref/bin/python bench/bench_tracker.py [--rounds 6] [--seq DIR] [--objects 20 50 200]
        [--baseline-ref HEAD] [--parts]
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import timeit
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

import data_paths
from yolo_trt_ros.detection.boxes import iou, xyah_to_xyxy, xyxy_to_xyah
from yolo_trt_ros.evaluation.mot import Frames, load_detections, read_seqinfo
from yolo_trt_ros.tracking import kalman_filter as kf
from yolo_trt_ros.tracking.bytetrack import ByteTracker

# runs the whole sequence once from a fresh state, returns ns per update
Runner = Callable[[], list[int]]


def timed_runner(
    reset: Callable[[], object], update: Callable[..., object], inputs: list[tuple]
) -> Runner:
    """A Runner that resets the tracker, then times ``update(*args)`` for each prepared argument
    tuple."""

    def run() -> list[int]:
        reset()
        times = []
        for args in inputs:
            t0 = time.perf_counter_ns()
            update(*args)
            times.append(time.perf_counter_ns() - t0)
        return times

    return run


def ours(frames: Frames, tracker_class: type = ByteTracker) -> Runner:
    tracker = tracker_class()
    return timed_runner(
        tracker.reset,
        tracker.update,
        [(b, s, np.zeros(len(s), dtype=np.int64)) for b, s in frames],
    )


def tracker_at_revision(rev: str) -> type:
    """``ByteTracker`` as of git revision ``rev``: its ``yolo_trt_ros`` package, extracted into a
    temporary directory (removed at exit) as package ``yolo_trt_ros_<commit>``, imports renamed.
    Works for revisions before and after the move into subpackages."""
    git = ["git", "-C", str(data_paths.REPO_ROOT)]
    commit = subprocess.run(
        [*git, "rev-parse", "--short", rev], check=True, capture_output=True, text=True
    ).stdout.strip()
    archive = subprocess.run(
        [*git, "archive", "--format=tar", commit, "yolo_trt_ros"], check=True, capture_output=True
    ).stdout
    package = f"yolo_trt_ros_{commit}"
    root = Path(tempfile.mkdtemp(prefix="bench_tracker_"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    (root / "yolo_trt_ros").rename(root / package)
    imports = re.compile(r"\b(from|import) yolo_trt_ros\b")
    for path in (root / package).rglob("*.py"):
        path.write_text(imports.sub(rf"\1 {package}", path.read_text()))
    sys.path.insert(0, str(root))
    # yolo_trt_ros/tracking/bytetrack.py, or yolo_trt_ros/bytetrack.py before the subpackages
    module = "tracking.bytetrack" if (root / package / "tracking").is_dir() else "bytetrack"
    return importlib.import_module(f"{package}.{module}").ByteTracker


def ultralytics_bytetrack(frames: Frames, image_hw: tuple[int, int]) -> Runner:
    from ultralytics.cfg import get_cfg
    from ultralytics.engine.results import Boxes
    from ultralytics.trackers.byte_tracker import BYTETracker
    from ultralytics.utils import ROOT

    tracker = BYTETracker(get_cfg(ROOT / "cfg" / "trackers" / "bytetrack.yaml"))
    inputs = [
        (Boxes(np.column_stack((b, s, np.zeros_like(s))).astype(np.float32), image_hw),)
        for b, s in frames
    ]
    return timed_runner(tracker.reset, tracker.update, inputs)


def supervision_bytetrack(frames: Frames) -> Runner:
    import supervision as sv

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ByteTrack is deprecated in 0.30 (removed in 0.31)
        tracker = sv.ByteTrack()
    inputs = [
        (
            sv.Detections(
                xyxy=b.astype(np.float64), confidence=s, class_id=np.zeros(len(s), dtype=int)
            ),
        )
        for b, s in frames
    ]
    return timed_runner(tracker.reset, tracker.update_with_detections, inputs)


def synthetic_frames(n: int, length: int = 120, seed: int = 0) -> Frames:
    """``length`` frames of ``n`` objects moving at constant velocity (the module docstring)."""
    rng = np.random.default_rng(seed)
    start = rng.uniform(0, (1800, 960), (n, 2))
    velocity = rng.normal(0, 2, (n, 2))
    size = rng.uniform((20, 40), (60, 120), (n, 2))
    frames = []
    for f in range(length):
        xy = start + velocity * f + rng.normal(0, 1, (n, 2))
        seen = rng.random(n) < 0.9
        boxes = np.column_stack((xy, xy + size))[seen].astype(np.float32)
        frames.append((boxes, rng.uniform(0.05, 1.0, len(boxes)).astype(np.float32)))
    return frames


def run_round_robin(runners: dict[str, Runner], rounds: int) -> dict[str, list[int]]:
    """Every runner ``rounds`` times, taking turns; the first round of each is warm-up, dropped."""
    times: dict[str, list[int]] = {name: [] for name in runners}
    for round_ in range(rounds):
        for name, run in runners.items():
            t = run()
            if round_:
                times[name] += t
    return times


def print_table(times: dict[str, list[int]]) -> None:
    ref_mean = np.mean(times[OURS])
    print("| tracker | mean ms | median ms | p99 ms | max ms | mean vs ours |")
    print("|---|---|---|---|---|---|")
    for name, t in times.items():
        ms = np.array(t) / 1e6
        print(
            f"| {name} | {ms.mean():.3f} | {np.median(ms):.3f} | {np.percentile(ms, 99):.3f} "
            f"| {ms.max():.2f} | "
            f"{ms.mean() / (ref_mean / 1e6):.1f}x |"
        )


OURS = "yolo_trt_ros ByteTracker"


def all_runners(
    frames: Frames, image_hw: tuple[int, int], baselines: dict[str, type]
) -> dict[str, Runner]:
    return {
        OURS: ours(frames),
        **{name: ours(frames, tracker_class) for name, tracker_class in baselines.items()},
        "Ultralytics BYTETracker": ultralytics_bytetrack(frames, image_hw),
        "supervision ByteTrack": supervision_bytetrack(frames),
    }


def building_blocks(n_tracks: int = 6, n_dets: int = 5) -> dict[str, float]:
    """Microseconds per call of the numpy building blocks every ``ByteTracker.update`` calls once
    (or twice, as named), at ``n_tracks`` tracks and ``n_dets`` detections (MOT16-05's density),
    on contiguous arrays: best of 3 x 20000 calls. Their sum is a floor for a frame of this
    design, before detection filtering, assignment and bookkeeping."""
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 400, (n_tracks, 2))
    boxes = np.concatenate((corners, corners + rng.uniform(5, 80, (n_tracks, 2))), axis=1)
    xyah = xyxy_to_xyah(boxes)
    mean, covariance = np.empty((n_tracks, 8)), np.empty((n_tracks, 8, 8))

    def best_us(call: Callable[[], object]) -> float:
        return min(timeit.repeat(call, number=20000, repeat=3)) / 20000 * 1e6

    def initiate() -> None:
        kf.initiate(xyah, mean, covariance)

    initiate()
    blocks = {
        "Kalman predict, all tracks": best_us(lambda: kf.predict(mean, covariance, 1)),
        "Kalman update, all tracks": best_us(
            lambda: (initiate(), kf.update(mean, covariance, xyah))
        )
        - best_us(initiate),
        "IoU tracks x detections": best_us(lambda: iou(boxes, boxes[:n_dets])),
        "IoU tracks x lost tracks (duplicates)": best_us(lambda: iou(boxes, boxes[:2])),
        "xyxy -> xyah, detections": best_us(lambda: xyxy_to_xyah(boxes[:n_dets])),
        "xyah -> xyxy, after predict and after update (2 calls)": 2
        * best_us(lambda: xyah_to_xyxy(xyah)),
    }
    return blocks


def versions() -> str:
    import supervision
    import ultralytics

    return (
        f"Python {platform.python_version()}, numpy {np.__version__}, "
        f"ultralytics {ultralytics.__version__}, supervision {supervision.__version__}, "
        f"CPU {cpu_model()} ({os.cpu_count()} logical cores)"
    )


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seq", type=Path, default=data_paths.mot_sequence("MOT16-05"))
    parser.add_argument(
        "--rounds", type=int, default=6, help="runs of the sequence per tracker (first is warm-up)"
    )
    parser.add_argument(
        "--objects", type=int, nargs="*", default=[], help="also run synthetic scenes of N objects"
    )
    parser.add_argument(
        "--baseline-ref",
        metavar="REV",
        action="append",
        default=[],
        help="also time ours as of git revision REV, e.g. HEAD (repeatable)",
    )
    parser.add_argument(
        "--parts",
        action="store_true",
        help="also time the numpy building blocks a frame of ours calls (Kalman, IoU, box "
        "conversions) at MOT16-05 density, against 5x Ultralytics' time",
    )
    args = parser.parse_args()
    baselines = {f"{OURS} @{rev}": tracker_at_revision(rev) for rev in args.baseline_ref}
    info = read_seqinfo(args.seq)
    frames = load_detections(args.seq / "det" / "det.txt", info.length)
    load_before = os.getloadavg()
    times = run_round_robin(all_runners(frames, (info.height, info.width), baselines), args.rounds)
    load_after = os.getloadavg()

    dets = sum(len(s) for _, s in frames) / len(frames)
    print(
        f"{info.name}: {len(frames)} frames, {dets:.2f} detections/frame, "
        f"{args.rounds - 1} timed rounds each"
    )
    print(versions())
    print(
        "load average (1/5/15 min) before {:.2f}/{:.2f}/{:.2f}, after {:.2f}/{:.2f}/{:.2f}".format(
            *load_before, *load_after
        )
    )
    print_table(times)
    if args.parts:
        blocks = building_blocks()
        budget = np.mean(times["Ultralytics BYTETracker"]) / 1e3 / 5
        print("\n| building block (6 tracks, 5 detections) | us per frame |\n|---|---|")
        for name, us in blocks.items():
            print(f"| {name} | {us:.1f} |")
        print(f"| **sum** | **{sum(blocks.values()):.1f}** |")
        print(f"5x Ultralytics' mean above needs {budget:.1f} us per update in all")
    for n in args.objects:
        synthetic = synthetic_frames(n)
        dets = sum(len(s) for _, s in synthetic) / len(synthetic)
        print(f"\nsynthetic, {n} objects: {len(synthetic)} frames, {dets:.1f} detections/frame")
        print_table(run_round_robin(all_runners(synthetic, (1080, 1920), baselines), args.rounds))


if __name__ == "__main__":
    main()
