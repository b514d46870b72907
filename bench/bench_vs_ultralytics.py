"""Side by side, one run, same 48 MOT16-05 frames, same ONNX model: Ultralytics predict vs our
Detector vs ROS.

1. Alternating passes over the frames (after one warm-up pass each), each side in its own worker
   process:
   - Ultralytics ``YOLO(model).predict(frame, conf=0.25, iou=0.7)`` per frame, as yolo_ros calls
     it;
   - our ``Detector(frame)`` (conf 0.25, IoU 0.7).
   Each call is timed whole; the time inside ``onnxruntime.InferenceSession.run`` is measured by
   wrapping that method (both sides use ORT's default CPU session: graph optimizations all,
   intra-op threads = cores), so "outside" = whole call - ORT. Both sides' detections are compared
   frame by frame as a sanity check.
2. Then, with nothing else of this benchmark running, end-to-end frames/s through ROS
   (bench/ros_throughput.py in the main venv: image_replay process -> yolo_tracker process ->
   receiver), compared with Ultralytics predict frames/s (1000 / mean predict ms) from step 1.

    .venv-ref/bin/python bench/bench_vs_ultralytics.py [--passes 5] [--no-ros] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

import data_paths
from yolo_trt_ros.detection.detector import Detector

REPO = Path(__file__).resolve().parent.parent


class OrtTimer:
    """Wraps ``InferenceSession.run`` (class-wide) and accumulates the seconds spent in it."""

    def __init__(self) -> None:
        self.seconds = 0.0
        original = ort.InferenceSession.run

        def timed_run(session, *args, **kwargs):  # type: ignore[no-untyped-def]
            t0 = time.perf_counter()
            try:
                return original(session, *args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t0

        ort.InferenceSession.run = timed_run  # type: ignore[method-assign]

    def take(self) -> float:
        """Seconds since the last take."""
        s, self.seconds = self.seconds, 0.0
        return s


def stats(values: list[float]) -> dict[str, float]:
    v = np.asarray(values)
    return {
        "p50": float(np.percentile(v, 50)),
        "p99": float(np.percentile(v, 99)),
        "mean": float(v.mean()),
    }


def compare(ours: list[tuple], theirs: list[tuple]) -> dict[str, float]:
    """Frames with equal detection counts and classes, and the largest box / score difference among
    those."""
    same, box_diff, score_diff = 0, 0.0, 0.0
    for (b1, s1, c1), (b2, s2, c2) in zip(ours, theirs, strict=True):
        o1, o2 = np.argsort(-s1, kind="stable"), np.argsort(-s2, kind="stable")
        if len(c1) == len(c2) and (c1[o1] == c2[o2]).all():
            same += 1
            if len(c1):
                box_diff = max(box_diff, float(np.abs(b1[o1] - b2[o2]).max()))
                score_diff = max(score_diff, float(np.abs(s1[o1] - s2[o2]).max()))
    return {
        "frames_identical_classes": same,
        "frames": len(ours),
        "max_box_diff_px": box_diff,
        "max_score_diff": score_diff,
    }


def _worker(side: str, model: str, sequence: str, conn: Connection) -> None:
    """One side in its own process: load the model, then run a timed pass over the frames per
    request."""
    frames = [cv2.imread(str(p)) for p in sorted((Path(sequence) / "img1").glob("*.jpg"))]
    timer = OrtTimer()
    if side == "ultralytics":
        from ultralytics import YOLO

        yolo = YOLO(model, task="detect")

        def call(frame: np.ndarray) -> tuple:
            r = yolo.predict(
                frame, imgsz=640, conf=0.25, iou=0.7, max_det=300, device="cpu", verbose=False
            )
            b = r[0].boxes
            return b.xyxy.numpy(), b.conf.numpy(), b.cls.numpy().astype(np.int64)
    else:
        detector = Detector.from_model(model)

        def call(frame: np.ndarray) -> tuple:
            d = detector(frame)
            return d.boxes, d.scores, d.class_ids

    while conn.recv() == "pass":
        timings, outputs = [], []
        for frame in frames:
            timer.take()
            t0 = time.perf_counter()
            outputs.append(call(frame))
            timings.append(((time.perf_counter() - t0) * 1e3, timer.take() * 1e3))
        conn.send((timings, outputs))


def measure(model: Path, sequence: Path, passes: int) -> dict[str, object]:
    """Alternating passes (who goes first alternates too) of the two sides, each in its own
    idle-waiting process (so neither's ORT/torch threads spin while the other runs); the first pass
    of each is a warm-up."""
    ctx = mp.get_context("spawn")
    sides = ("ultralytics", "ours")
    conns, procs = {}, []
    for side in sides:
        parent, child = ctx.Pipe()
        proc = ctx.Process(
            target=_worker, args=(side, str(model), str(sequence), child), daemon=True
        )
        proc.start()
        conns[side] = parent
        procs.append(proc)
    times: dict[str, dict[str, list[float]]] = {
        k: {"total": [], "ort": [], "outside": []} for k in sides
    }
    outputs: dict[str, list[tuple]] = {}
    for p in range(passes + 1):
        for side in sides if p % 2 == 0 else reversed(sides):
            conns[side].send("pass")
            timings, outs = conns[side].recv()
            if p == 0:
                outputs[side] = outs
                continue
            for total, ort_ms in timings:
                times[side]["total"].append(total)
                times[side]["ort"].append(ort_ms)
                times[side]["outside"].append(total - ort_ms)
    for side in sides:
        conns[side].send("stop")
    for proc in procs:
        proc.join(30)
    result: dict[str, object] = {
        name: {k: stats(v) for k, v in t.items()} for name, t in times.items()
    }
    for name in sides:
        result[name]["fps"] = 1000.0 / result[name]["total"]["mean"]  # type: ignore[index]
    result["agreement"] = compare(outputs["ours"], outputs["ultralytics"])
    return result


def ros_throughput(args: argparse.Namespace) -> dict[str, object]:
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        cmd = [
            str(args.ros_python),
            str(REPO / "bench" / "ros_throughput.py"),
            "--rate",
            str(args.rate),
            "--duration",
            str(args.duration),
            "--model",
            str(args.model),
            "--json",
            f.name,
        ]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, timeout=args.duration + 300)
        return json.loads(Path(f.name).read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sequence", type=Path, default=data_paths.mot_sequence())
    parser.add_argument("--model", type=Path, default=data_paths.default_model())
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--no-ros", action="store_true", help="skip the end-to-end ROS part")
    parser.add_argument(
        "--ros-python",
        type=Path,
        default=REPO / ".venv" / "bin" / "python",
        help="Python of the venv with rclpy (the main .venv)",
    )
    parser.add_argument(
        "--rate", type=float, default=30.0, help="replay rate for the ROS part (Hz)"
    )
    parser.add_argument(
        "--duration", type=float, default=20.0, help="measured seconds of each ROS run"
    )
    parser.add_argument(
        "--ros-runs", type=int, default=3, help="ROS runs (the median is reported)"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()
    result = measure(args.model, args.sequence, args.passes)
    if not args.no_ros:
        runs = [ros_throughput(args) for _ in range(args.ros_runs)]
        fps = sorted(r["fps"] for r in runs)
        result["ros"] = {
            "runs": runs,
            "fps_median": float(np.median(fps)),
            "fps_min": fps[0],
            "fps_max": fps[-1],
        }
    result["loadavg_before"] = load_before
    result["loadavg_after"] = os.getloadavg()

    u, o = result["ultralytics"], result["ours"]
    n_frames = result["agreement"]["frames"]
    print(
        f"\n{n_frames} MOT16-05 frames x {args.passes} passes ({n_frames * args.passes} calls "
        "each), "
        f"model {args.model.name}, "
        f"conf 0.25, IoU 0.7; load before {load_before[0]:.2f}, after "
        f"{result['loadavg_after'][0]:.2f}"
    )
    print(f"{'per frame (ms)':32s}{'p50':>9s}{'p99':>9s}{'mean':>9s}")
    for name, r in (("Ultralytics predict", u), ("our Detector", o)):
        for part in ("total", "ort", "outside"):
            s = r[part]
            print(f"{name + ' ' + part:32s}{s['p50']:9.2f}{s['p99']:9.2f}{s['mean']:9.2f}")
    print(
        f"outside ORT, p50: Ultralytics {u['outside']['p50']:.2f} ms vs ours "
        f"{o['outside']['p50']:.2f} ms "
        f"(x{u['outside']['p50'] / o['outside']['p50']:.1f}); total p50 ratio Ultralytics/ours "
        f"{u['total']['p50'] / o['total']['p50']:.3f}"
    )
    a = result["agreement"]
    print(
        f"agreement: {a['frames_identical_classes']}/{a['frames']} frames with identical classes; "
        "max box diff "
        f"{a['max_box_diff_px']:.3f} px, max score diff {a['max_score_diff']:.4f}"
    )
    print(
        f"frames/s (1000 / mean per-frame ms): Ultralytics predict {u['fps']:.2f}, our Detector "
        f"{o['fps']:.2f}"
    )
    if "ros" in result:
        ros, first = result["ros"], result["ros"]["runs"][0]
        lat = [r["latency_ms"]["p50"] for r in ros["runs"]]
        infer = [r["node_diagnostics"].get("stage_p50_ms.infer", "?") for r in ros["runs"]]
        print(
            f"frames/s through ROS (replay {first['replay_rate_hz']:.0f} Hz -> yolo_tracker -> "
            "receiver, "
            f"{len(ros['runs'])} runs of {first['duration_s']:.0f} s): median "
            f"{ros['fps_median']:.2f} "
            f"(min {ros['fps_min']:.2f}, max {ros['fps_max']:.2f}); latency p50 per run "
            f"{', '.join(f'{v:.0f}' for v in lat)} ms; node infer p50 per run {', '.join(infer)} "
            "ms"
        )
        print(
            "CPU % per process (100 = one core), per run: "
            + "; ".join(
                ", ".join(f"{k} {v:.0f}" for k, v in r["cpu_percent"].items()) for r in ros["runs"]
            )
        )
        print(
            f"ROS end to end / Ultralytics predict frames/s = {ros['fps_median'] / u['fps']:.3f}"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
