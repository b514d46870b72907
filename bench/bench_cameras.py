"""Several cameras: one yolo_tracker for N cameras vs N single-camera yolo_trackers, side by side.

For N in ``--cameras`` (default 1 2 4), N image_replay processes loop the MOT16-05 frames (640x480,
best effort) at ``--rate`` Hz each, on ``cam<i>/image_raw``; then, one after the other:

- ``one node``: one yolo_tracker with ``input_topics`` = the N topics and the dynamic-batch model
  (``--dynamic-model``), its defaults: on ONNX Runtime two runs at once (``ort_parallel_runs``),
  each one frame on half the cores;
- ``one node, batches``: the same with ``max_batch`` N (each run a batch of up to N/2 frames);
- ``one node, one run``: the same with ``ort_parallel_runs`` 1 (one batch of all N frames at a
  time on every core);
- ``one node, static model``: the static batch-1 model (``--static-model``, 640x640), one frame
  after the other (``ort_parallel_runs`` 1);
- ``N nodes``: N single-camera yolo_trackers with the dynamic model (the same per-frame input
  size, 640x480), one per topic.

This process subscribes to every camera's ``cam<i>/detections`` and measures over ``--duration``
s after ``--warmup`` s: images/s processed (all cameras), per-camera rate (min and mean), latency
p50/p99 per camera (receive time - image stamp, one clock), the trackers' total resident memory
(RSS, and peak: VmHWM) and CPU (100 % = one core). Prints a table; ``--json`` keeps everything.

    .venv/bin/python bench/bench_cameras.py [--cameras 1 2 4] [--rate 10] [--duration 15]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from vision_msgs.msg import Detection2DArray

import data_paths
from ros_throughput import bring_up, cpu_seconds, replay_args
from yolo_trt_ros.demo.processes import ros_env, start_node, stop_process

NAMESPACE = "/bench_cams"
SETUPS = (
    "one node",
    "one node, batches",
    "one node, one run",
    "one node, static model",
    "N nodes",
)


class Receiver(Node):
    """Per camera: (monotonic receive time, latency ms) of each detections message."""

    def __init__(self, cameras: int, **kwargs: Any) -> None:
        super().__init__("bench_cameras_receiver", namespace=NAMESPACE, **kwargs)
        self.arrivals: list[list[tuple[float, float]]] = [[] for _ in range(cameras)]
        for i in range(cameras):
            self.create_subscription(
                Detection2DArray, f"cam{i}/detections", self._on_detections(i), 10
            )

    def _on_detections(self, camera: int) -> Any:
        def received(msg: Detection2DArray) -> None:
            stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            self.arrivals[camera].append((time.monotonic(), (time.time_ns() - stamp_ns) / 1e6))

        return received


def memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def tracker_args(
    model: Path, topics: list[str], camera: int | None, max_batch: int = 0, parallel_runs: int = 0
) -> list[str]:
    """ROS args of one tracker: all ``topics`` in one node (``camera`` None) or the one of
    ``camera``."""
    args = ["-r", f"__ns:={NAMESPACE}", "-p", f"model_path:={model}", "-p", "backend:=onnxruntime"]
    args += ["-p", "publish_annotated:=false", "-p", f"max_batch:={max_batch}"]
    args += ["-p", f"ort_parallel_runs:={parallel_runs}"]
    if camera is None and len(topics) > 1:
        quoted = ", ".join(f"'{t}'" for t in topics)
        return [*args, "-p", f"input_topics:=[{quoted}]"]
    index = 0 if camera is None else camera
    name = "yolo_tracker" if camera is None else f"yolo_tracker_{camera}"
    return [
        *args,
        "-r",
        f"__node:={name}",
        "-p",
        f"input_topic:={topics[index]}",
        "-r",
        f"detections:=cam{index}/detections",
    ]


def start_replay(
    index: int,
    topic: str,
    args: argparse.Namespace,
    env: dict[str, str],
    logs: Path,
    receiver: Receiver,
    executor: SingleThreadedExecutor,
) -> Any:
    """Start camera ``index``'s image_replay and wait until its detections arrive.

    Processes that start together on one host can miss each other in Fast DDS discovery (a
    camera that never reaches its tracker): a replay whose detections do not arrive within 15 s
    is started again.
    """
    args_ = ["-r", f"__ns:={NAMESPACE}", "-r", f"__node:=replay_{index}"]
    args_ += ["-r", f"image_raw:={topic}", *replay_args(args.sequence, args.rate)]
    for attempt in range(3):
        log = logs / f"replay_{index}.{attempt}.log"
        proc = start_node("yolo_trt_ros.ros.replay_node", args_, env, log)
        deadline = time.monotonic() + 15.0
        while time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
            if receiver.arrivals[index]:
                return proc
        stop_process(proc)
    raise SystemExit(f"replay {index} never appeared on {topic}; see {logs}")


def run(setup: str, cameras: int, args: argparse.Namespace, env: dict[str, str]) -> dict:
    topics = [f"cam{i}/image_raw" for i in range(cameras)]
    model = args.static_model if setup == "one node, static model" else args.dynamic_model
    max_batch = cameras if setup in ("one node, batches", "one node, one run") else 0
    parallel_runs = 1 if setup in ("one node, one run", "one node, static model") else 0
    separate = setup == "N nodes"
    logs = args.log_dir / f"{cameras}-{setup.replace(' ', '_').replace(',', '')}"
    logs.mkdir(parents=True, exist_ok=True)
    trackers: dict[str, Any] = {}
    for camera in range(cameras) if separate else [None]:
        name = "yolo_tracker" if camera is None else f"yolo_tracker_{camera}"
        trackers[name] = start_node(
            "yolo_trt_ros.ros.tracker_node",
            tracker_args(model, topics, camera, max_batch, parallel_runs),
            env,
            logs / f"{name}.log",
        )
    replays: list[Any] = []
    receiver = Receiver(cameras)
    executor = SingleThreadedExecutor()
    executor.add_node(receiver)
    try:
        for name in trackers:
            bring_up(f"{NAMESPACE}/{name}", logs / f"{name}.log")
        for i, topic in enumerate(topics):
            replays.append(start_replay(i, topic, args, env, logs, receiver, executor))
        start = time.monotonic()
        cpu_start: dict[str, float] = {}
        while time.monotonic() - start < args.warmup + args.duration:
            executor.spin_once(timeout_sec=0.05)
            if not cpu_start and time.monotonic() - start >= args.warmup:
                cpu_start = {n: cpu_seconds(p.pid) for n, p in trackers.items()}
        cpu = sum(cpu_seconds(p.pid) - cpu_start[n] for n, p in trackers.items())
        memory = [memory_kib(p.pid) for p in trackers.values()]
    finally:
        for proc in replays + list(trackers.values()):
            stop_process(proc)
        executor.shutdown()
        receiver.destroy_node()
    t0 = start + args.warmup
    per_camera = []
    for arrivals in receiver.arrivals:
        window = [lat for t, lat in arrivals if t0 <= t < t0 + args.duration]
        lat = np.asarray(window) if window else np.full(1, np.nan)
        per_camera.append(
            {
                "rate_hz": len(window) / args.duration,
                "latency_p50_ms": float(np.percentile(lat, 50)),
                "latency_p99_ms": float(np.percentile(lat, 99)),
            }
        )
    rates = [c["rate_hz"] for c in per_camera]
    return {
        "setup": setup,
        "cameras": cameras,
        "model": str(model),
        "images_per_s": sum(rates),
        "camera_rate_min": min(rates),
        "camera_rate_mean": float(np.mean(rates)),
        "per_camera": per_camera,
        "rss_mib": sum(m[0] for m in memory) / 1024,
        "peak_rss_mib": sum(m[1] for m in memory) / 1024,
        "cpu_percent": 100.0 * cpu / args.duration,
        "loadavg": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    data = data_paths.data_dir()
    parser.add_argument("--cameras", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--rate", type=float, default=10.0, help="replay rate per camera (Hz)")
    parser.add_argument("--duration", type=float, default=15.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=6.0, help="seconds ignored at the start")
    parser.add_argument("--sequence", type=Path, default=data_paths.mot_sequence() / "img1")
    parser.add_argument(
        "--dynamic-model",
        type=Path,
        default=data / "models" / "yolov8n-coco-dynamic.onnx",
    )
    parser.add_argument("--static-model", type=Path, default=data_paths.default_model())
    parser.add_argument("--domain-id", type=int, default=140 + os.getpid() % 30)
    parser.add_argument("--log-dir", type=Path, default=Path("/tmp/yolo_trt_ros_bench_cameras"))
    parser.add_argument(
        "--setups",
        nargs="+",
        default=list(SETUPS),
        choices=SETUPS,
        help="which setups to run (default: all)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    env = ros_env(domain_id=args.domain_id)
    os.environ.update({k: env[k] for k in ("ROS_DOMAIN_ID", "FASTDDS_BUILTIN_TRANSPORTS")})
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; Python "
        f"{platform.python_version()}, onnxruntime {onnxruntime.__version__}; replay "
        f"{args.rate:g} Hz per camera, {args.duration:g} s measured after {args.warmup:g} s"
    )
    rclpy.init()
    results = []
    try:
        for cameras in args.cameras:
            for setup in args.setups:
                result = run(setup, cameras, args, env)
                results.append(result)
                lat = ", ".join(
                    f"{c['latency_p50_ms']:.0f}/{c['latency_p99_ms']:.0f}"
                    for c in result["per_camera"]
                )
                print(
                    f"{cameras} cameras, {setup:24s}: {result['images_per_s']:5.2f} images/s, "
                    f"camera min/mean {result['camera_rate_min']:.2f}/"
                    f"{result['camera_rate_mean']:.2f} Hz, latency p50/p99 per camera {lat} "
                    f"ms, RSS {result['rss_mib']:.0f} MiB (peak {result['peak_rss_mib']:.0f}), "
                    f"CPU {result['cpu_percent']:.0f} %, load {result['loadavg'][0]:.2f}",
                    flush=True,
                )
    finally:
        rclpy.shutdown()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
