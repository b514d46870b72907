"""End-to-end frames/s through ROS: image_replay process -> yolo_tracker process -> receiver (this
process).

image_replay loops the 48 MOT16-05 frames (bgr8 640x480, best effort, depth 1) at ``--rate`` Hz,
faster than the node can detect, so the node is never idle and drops what it cannot take (queue
depth 1). yolo_tracker is configured and activated through its lifecycle services. This process
counts the Detection2DArray messages on ``detections`` over ``--duration`` s after ``--warmup`` s,
measures their latency (receive time - image stamp, same clock), reads the node's own counters from
/diagnostics and the CPU use of each process (100% = one core). Prints one JSON object (also to
``--json``).

    .venv/bin/python bench/ros_throughput.py [--rate 30] [--duration 20] [--warmup 5]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from vision_msgs.msg import Detection2DArray

import data_paths
from yolo_trt_ros.demo.processes import ros_env, start_node, stop_process
from yolo_trt_ros.ros.lifecycle_client import LifecycleClient

NAMESPACE = "/bench_ros"


class Receiver(Node):
    """Counts detections messages (with latency) and keeps the tracker's latest diagnostics
    values."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__("bench_receiver", namespace=NAMESPACE, **kwargs)
        self.arrivals: list[tuple[float, float]] = []  # (monotonic receive time, latency ms)
        self.diagnostics: dict[str, str] = {}
        self.create_subscription(Detection2DArray, "detections", self._on_detections, 10)
        self.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)

    def _on_detections(self, msg: Detection2DArray) -> None:
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        self.arrivals.append((time.monotonic(), (time.time_ns() - stamp_ns) / 1e6))

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.hardware_id == f"{NAMESPACE}/yolo_tracker":
                self.diagnostics = {kv.key: kv.value for kv in status.values}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def replay_args(source: Path, rate: float) -> list[str]:
    """ROS parameters of an image_replay looping ``source`` at ``rate`` Hz once a subscriber
    matched."""
    return [
        *("-p", f"source:={source}", "-p", f"rate:={rate}"),
        *("-p", "loop:=true", "-p", "wait_for_subscribers:=1"),
    ]


def bring_up(node: str, log: Path) -> None:
    """Configure and activate the lifecycle node ``node`` (fully qualified name); SystemExit naming
    its ``log`` when that fails."""
    client = LifecycleClient(
        node, node_name=f"bench_lifecycle_{node.strip('/').replace('/', '_')}"
    )
    try:
        if not client.wait_for_services(60.0):
            raise SystemExit(f"{node}: lifecycle services did not appear; see {log}")
        for transition in ("configure", "activate"):
            if not client.change_state(transition, 120.0):
                raise SystemExit(f"{node}: {transition} failed; see {log}")
    finally:
        client.destroy_node()


def run(args: argparse.Namespace) -> dict[str, object]:
    env = ros_env(domain_id=args.domain_id)
    os.environ.update({k: env[k] for k in ("ROS_DOMAIN_ID", "FASTDDS_BUILTIN_TRANSPORTS")})
    logs = args.log_dir
    logs.mkdir(parents=True, exist_ok=True)
    ns = ["-r", f"__ns:={NAMESPACE}"]
    children = {
        "yolo_tracker": start_node(
            "yolo_trt_ros.ros.tracker_node",
            [
                *ns,
                "-p",
                f"model_path:={args.model}",
                "-p",
                "backend:=onnxruntime",
                "-p",
                "input_topic:=image_raw",
            ],
            env,
            logs / "yolo_tracker.log",
        )
    }
    rclpy.init()
    try:
        receiver = Receiver()
        executor = SingleThreadedExecutor()
        executor.add_node(receiver)
        bring_up(f"{NAMESPACE}/yolo_tracker", logs / "yolo_tracker.log")
        children["image_replay"] = start_node(
            "yolo_trt_ros.ros.replay_node",
            [*ns, *replay_args(args.sequence, args.rate)],
            env,
            logs / "image_replay.log",
        )
        start = time.monotonic()
        cpu_start: dict[str, float] = {}
        while time.monotonic() - start < args.warmup + args.duration:
            executor.spin_once(timeout_sec=0.05)
            for name, proc in children.items():
                if proc.poll() is not None:
                    raise SystemExit(
                        f"{name} exited with {proc.returncode}; see {logs / (name + '.log')}"
                    )
            if not cpu_start and time.monotonic() - start >= args.warmup:
                cpu_start = {name: cpu_seconds(proc.pid) for name, proc in children.items()}
                cpu_start["receiver"] = time.process_time()
        cpu = {name: cpu_seconds(proc.pid) - cpu_start[name] for name, proc in children.items()}
        cpu["receiver"] = time.process_time() - cpu_start["receiver"]
        t0, t1 = start + args.warmup, start + args.warmup + args.duration
        window = [lat for t, lat in receiver.arrivals if t0 <= t < t1]
        diagnostics = receiver.diagnostics
        receiver.destroy_node()
    finally:
        for proc in reversed(list(children.values())):
            stop_process(proc)
        rclpy.shutdown()
    lat = np.asarray(window) if window else np.zeros(1)
    return {
        "replay_rate_hz": args.rate,
        "duration_s": args.duration,
        "frames_out": len(window),
        "fps": len(window) / args.duration,
        "latency_ms": {
            "p50": float(np.percentile(lat, 50)),
            "p99": float(np.percentile(lat, 99)),
            "mean": float(lat.mean()),
        },
        "cpu_percent": {name: 100.0 * seconds / args.duration for name, seconds in cpu.items()},
        "node_diagnostics": diagnostics,
        "loadavg": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sequence", type=Path, default=data_paths.mot_sequence())
    parser.add_argument("--model", type=Path, default=data_paths.default_model())
    parser.add_argument(
        "--rate", type=float, default=30.0, help="replay rate (Hz), above what the node can take"
    )
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds")
    parser.add_argument(
        "--warmup", type=float, default=5.0, help="seconds ignored after the replay starts"
    )
    parser.add_argument("--domain-id", type=int, default=170 + os.getpid() % 30)
    parser.add_argument("--log-dir", type=Path, default=Path("/tmp/yolo_trt_ros_bench_logs"))
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    result = run(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
