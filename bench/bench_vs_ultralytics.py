"""Side by side, one run, same 48 MOT16-05 frames: Ultralytics predict and track vs our Detector
and FramePipeline vs our ROS node, on several models.

1. Alternating passes over the frames (after one warm-up pass each), each (side, model) in its own
   worker process, conf 0.25, IoU 0.7:
   - Ultralytics ``YOLO(model).predict(frame, imgsz=640, conf=0.25, iou=0.7)`` per frame, as
     yolo_ros calls it, on every ``--model`` (``.onnx`` through ONNX Runtime, ``.pt`` through
     torch on the CPU with its default rectangular letterbox);
   - Ultralytics ``YOLO(model).track(frame, persist=True, tracker="bytetrack.yaml", imgsz=640,
     iou=0.7)`` (track's default conf 0.1, the low-score detections ByteTrack needs);
   - our ``Detector(frame)`` and our ``FramePipeline(frame)`` with tracking (detector at
     ByteTrack's 0.1), on every ``.onnx`` model.
   Trackers are reset at the start of each pass. Each call is timed whole; the time inside
   ``onnxruntime.InferenceSession.run`` is measured by wrapping that method (both sides use ORT's
   default CPU session), so "outside" = whole call - ORT. Our Detector's detections are compared
   frame by frame with Ultralytics predict on the same model, and (for a dynamic-size ONNX model,
   rectangular input like Ultralytics' ``.pt``) on each ``.pt``.
2. Then, with nothing else of this benchmark running, end-to-end frames/s through ROS
   (bench/ros_throughput.py in the main venv: image_replay process -> yolo_tracker process ->
   receiver) for each ``.onnx`` model, runs alternating between the models.
3. The ratio: our best ROS frames/s (median of runs, best model) / Ultralytics' best frames/s
   (1000 / mean ms) of all its rows.

Ultralytics loads the models through symlinks in a temporary directory (it never writes beside
the data).

    .venv-ref/bin/python bench/bench_vs_ultralytics.py [--model A.onnx B.onnx C.pt] [--passes 5]
        [--ros-runs 3] [--duration 20] [--no-ros] [--json out.json]
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
from yolo_trt_ros.pipeline import FramePipeline

REPO = Path(__file__).resolve().parent.parent
GOAL = 1.3
"""Issue 12: frames/s through ROS >= 1.3x Ultralytics' best."""
SIDES = ("ultralytics predict", "ultralytics track", "our Detector", "our FramePipeline")


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
    """One (side, model) in its own process: load the model, then run a timed pass over the frames
    per request (trackers reset first)."""
    frames = [cv2.imread(str(p)) for p in sorted((Path(sequence) / "img1").glob("*.jpg"))]
    timer = OrtTimer()
    if side.startswith("ultralytics"):
        from ultralytics import YOLO

        yolo = YOLO(model, task="detect")
        common = {"imgsz": 640, "iou": 0.7, "max_det": 300, "device": "cpu", "verbose": False}

        def call(frame: np.ndarray) -> tuple:
            if side == "ultralytics track":
                r = yolo.track(frame, persist=True, tracker="bytetrack.yaml", **common)
            else:
                r = yolo.predict(frame, conf=0.25, **common)
            b = r[0].boxes
            return b.xyxy.numpy(), b.conf.numpy(), b.cls.numpy().astype(np.int64)

        def reset() -> None:
            for tracker in getattr(yolo.predictor, "trackers", ()):
                tracker.reset()
    elif side == "our Detector":
        detector = Detector.from_model(model)

        def call(frame: np.ndarray) -> tuple:
            d = detector(frame)
            return d.boxes, d.scores, d.class_ids

        def reset() -> None:
            pass
    else:
        pipeline = FramePipeline.from_model(model)

        def call(frame: np.ndarray) -> tuple:
            d = pipeline(frame, None).detections
            return d.boxes, d.scores, d.class_ids

        reset = pipeline.reset

    while conn.recv() == "pass":
        reset()
        timings, outputs = [], []
        for frame in frames:
            timer.take()
            t0 = time.perf_counter()
            outputs.append(call(frame))
            timings.append(((time.perf_counter() - t0) * 1e3, timer.take() * 1e3))
        conn.send((timings, outputs))


def _jobs(models: list[Path], links: dict[Path, Path]) -> list[tuple[str, Path, Path]]:
    """(side, model as reported, path the worker loads) for every row of the table."""
    jobs = []
    for model in models:
        for side in SIDES:
            if side.startswith("ultralytics"):
                jobs.append((side, model, links[model]))
            elif model.suffix == ".onnx":
                jobs.append((side, model, model))
    return jobs


def _dynamic_hw(model: Path) -> bool:
    """Whether an ONNX model's input height and width are dynamic (our Detector then letterboxes
    to a rectangle, as Ultralytics does for ``.pt`` models)."""
    shape = ort.InferenceSession(str(model)).get_inputs()[0].shape
    return not all(isinstance(d, int) for d in shape[2:])


def measure(models: list[Path], sequence: Path, passes: int) -> dict[str, object]:
    """Alternating passes (the order reverses every pass) of every (side, model), each in its own
    idle-waiting process (so none's ORT/torch threads spin while another runs); the first pass of
    each is a warm-up whose detections are compared."""
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="bench_vs_ultralytics_") as tmp:
        links = {}
        for i, model in enumerate(models):
            links[model] = Path(tmp) / str(i) / model.name
            links[model].parent.mkdir()
            links[model].symlink_to(model.resolve())
        jobs = _jobs(models, links)
        conns, procs = [], []
        for side, _, path in jobs:
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=_worker, args=(side, str(path), str(sequence), child), daemon=True
            )
            proc.start()
            conns.append(parent)
            procs.append(proc)
        times: list[dict[str, list[float]]] = [
            {"total": [], "ort": [], "outside": []} for _ in jobs
        ]
        outputs: list[list[tuple]] = [[] for _ in jobs]
        for p in range(passes + 1):
            order = range(len(jobs)) if p % 2 == 0 else reversed(range(len(jobs)))
            for i in order:
                conns[i].send("pass")
                timings, outs = conns[i].recv()
                if p == 0:
                    outputs[i] = outs
                    continue
                for total, ort_ms in timings:
                    times[i]["total"].append(total)
                    times[i]["ort"].append(ort_ms)
                    times[i]["outside"].append(total - ort_ms)
        for conn in conns:
            conn.send("stop")
        for proc in procs:
            proc.join(30)
    rows = []
    for (side, model, _), t in zip(jobs, times, strict=True):
        row: dict[str, object] = {"side": side, "model": model.name}
        row.update({k: stats(v) for k, v in t.items()})
        row["fps"] = 1000.0 / row["total"]["mean"]  # type: ignore[index]
        rows.append(row)
    index = {(side, model): i for i, (side, model, _) in enumerate(jobs)}
    agreement = []
    for model in models:
        if ("our Detector", model) not in index:
            continue
        for reference in models:
            if reference == model or (reference.suffix == ".pt" and _dynamic_hw(model)):
                a = compare(
                    outputs[index[("our Detector", model)]],
                    outputs[index[("ultralytics predict", reference)]],
                )
                agreement.append({"ours": model.name, "ultralytics_predict": reference.name, **a})
    return {"rows": rows, "agreement": agreement}


def ros_throughput(args: argparse.Namespace, model: Path) -> dict[str, object]:
    with tempfile.NamedTemporaryFile(suffix=".json") as f:
        cmd = [
            str(args.ros_python),
            str(REPO / "bench" / "ros_throughput.py"),
            "--rate",
            str(args.rate),
            "--duration",
            str(args.duration),
            "--model",
            str(model),
            "--json",
            f.name,
        ]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, timeout=args.duration + 300)
        return json.loads(Path(f.name).read_text())


def ros_part(args: argparse.Namespace, models: list[Path]) -> dict[str, dict[str, object]]:
    """``--ros-runs`` runs per model, alternating between the models; median frames/s per model."""
    runs: dict[str, list[dict[str, object]]] = {m.name: [] for m in models}
    for _ in range(args.ros_runs):
        for model in models:
            runs[model.name].append(ros_throughput(args, model))
    result = {}
    for name, model_runs in runs.items():
        fps = sorted(float(r["fps"]) for r in model_runs)
        result[name] = {
            "runs": model_runs,
            "fps_median": float(np.median(fps)),
            "fps_min": fps[0],
            "fps_max": fps[-1],
        }
    return result


def _ms(row: dict, part: str, key: str) -> str:
    return f"{row[part][key]:.2f}"


def report(result: dict, args: argparse.Namespace) -> None:
    """Print the results as Markdown tables and lines."""
    rows, n_frames = result["rows"], result["agreement"][0]["frames"] if result["agreement"] else 0
    before, after = result["loadavg_before"], result["loadavg_after"]
    print(
        f"\n{n_frames} MOT16-05 frames x {args.passes} passes per row, conf 0.25 (track: 0.1), "
        f"IoU 0.7; load average (1 min) before {before[0]:.2f}, after {after[0]:.2f}\n"
    )
    print(
        "| model | side | whole call p50 | p99 | mean | in ORT p50 | outside ORT p50 | frames/s |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        in_ort = r["ort"]["p50"] > 0
        print(
            f"| {r['model']} | {r['side']} | {_ms(r, 'total', 'p50')} | {_ms(r, 'total', 'p99')} "
            f"| {_ms(r, 'total', 'mean')} | {_ms(r, 'ort', 'p50') if in_ort else '-'} "
            f"| {_ms(r, 'outside', 'p50') if in_ort else '-'} | {r['fps']:.2f} |"
        )
    print()
    for a in result["agreement"]:
        print(
            f"our Detector on {a['ours']} vs Ultralytics predict on {a['ultralytics_predict']}: "
            f"{a['frames_identical_classes']}/{a['frames']} frames with identical classes; max "
            f"box diff {a['max_box_diff_px']:.3f} px, max score diff {a['max_score_diff']:.4f}"
        )
    best_u = max((r for r in rows if r["side"].startswith("ultralytics")), key=lambda r: r["fps"])
    if "ros" not in result:
        return
    print()
    print(
        "| model | ROS frames/s median (min-max) | latency p50 per run | node infer p50 per run "
        "| CPU % per run |"
    )
    print("|---|---:|---|---|---|")
    for name, ros in result["ros"].items():
        lat = ", ".join(f"{r['latency_ms']['p50']:.0f}" for r in ros["runs"])
        infer = ", ".join(
            str(r["node_diagnostics"].get("stage_p50_ms.infer", "?")) for r in ros["runs"]
        )
        cpu = "; ".join(
            ", ".join(f"{k} {v:.0f}" for k, v in r["cpu_percent"].items()) for r in ros["runs"]
        )
        print(
            f"| {name} | {ros['fps_median']:.2f} ({ros['fps_min']:.2f}-{ros['fps_max']:.2f}) "
            f"| {lat} ms | {infer} ms | {cpu} |"
        )
    best_name = max(result["ros"], key=lambda n: result["ros"][n]["fps_median"])
    s = result["summary"]
    print(
        f"\nours through ROS, best model ({best_name}): {s['ros_best_fps']:.2f} frames/s; "
        f"Ultralytics' best row ({best_u['side']}, {best_u['model']}): "
        f"{s['ultralytics_best_fps']:.2f} frames/s; ratio {s['ratio']:.3f} "
        f"(goal >= {GOAL}: {'met' if s['goal_met'] else 'not met'})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sequence", type=Path, default=data_paths.mot_sequence())
    parser.add_argument(
        "--model",
        type=Path,
        nargs="+",
        default=[data_paths.default_model()],
        help=".onnx (all sides, ROS) and .pt (Ultralytics only) models",
    )
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
        "--ros-runs", type=int, default=3, help="ROS runs per model (the median is reported)"
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    models = [m.resolve() for m in args.model]
    for model in models:
        if model.suffix not in (".onnx", ".pt"):
            parser.error(f"--model {model}: expected an .onnx or .pt file")
        if not model.is_file():
            parser.error(f"--model {model}: no such file")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")

    load_before = os.getloadavg()
    result = measure(models, args.sequence, args.passes)
    onnx_models = [m for m in models if m.suffix == ".onnx"]
    if not args.no_ros and onnx_models:
        result["ros"] = ros_part(args, onnx_models)
        best_ros = max(r["fps_median"] for r in result["ros"].values())
        best_u = max(r["fps"] for r in result["rows"] if r["side"].startswith("ultralytics"))
        result["summary"] = {
            "ros_best_fps": best_ros,
            "ultralytics_best_fps": best_u,
            "ratio": best_ros / best_u,
            "goal": GOAL,
            "goal_met": best_ros / best_u >= GOAL,
        }
    result["loadavg_before"] = load_before
    result["loadavg_after"] = os.getloadavg()
    report(result, args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
