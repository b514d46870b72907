r"""Per-frame time of each stage of the yolo_tracker frame path, on the 48 MOT16-05 640x480 frames.

Stages, in the order the node runs them, with the node's own objects:

    receive      rclpy deserialization of the sensor_msgs/Image, what a subscription does before
                 the callback (rclpy.serialization.deserialize_message); not in "overhead": the
                 executor does it outside the callback, but it is CPU the node spends per frame
    convert      \
    preprocess    |  pipeline.FramePipeline with the node's converter
    infer         }  (ros.image_conversion.image_frame) and defaults: FrameResult.times_ms
    postprocess   |  (--no-tracking: the node's tracking:=false)
    track        /
    publish      ros.detection_msgs.DetectionArrayBuilder + Publisher.publish of a
                 Detection2DArray via real rclpy
    annotate     Annotator + array_to_image + publish of annotated_image (the node draws only
                 while that topic has subscribers); reported, not in "overhead"

"overhead" = convert + preprocess + postprocess + track + publish: the node's time per frame beyond
inference.

    .venv/bin/python bench/bench_stages.py [--passes 5] [--subscriber process] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray

import data_paths
from yolo_trt_ros.demo.processes import ros_env, stop_process
from yolo_trt_ros.detection.annotate import Annotator
from yolo_trt_ros.pipeline import FramePipeline, PipelineConfig
from yolo_trt_ros.ros.detection_msgs import DetectionArrayBuilder
from yolo_trt_ros.ros.frame_stats import STAGES as NODE_STAGES
from yolo_trt_ros.ros.image_conversion import array_to_image, image_frame

SUBSCRIBER = """
import sys
import rclpy
from rclpy.executors import ExternalShutdownException
from sensor_msgs.msg import Image
from vision_msgs.msg import Detection2DArray
counts = {"detections": 0, "annotated_image": 0}
def counter(topic):
    def cb(_):
        counts[topic] += 1
    return cb
rclpy.init()
node = rclpy.create_node("bench_stages_subscriber")
node.create_subscription(Detection2DArray, "detections", counter("detections"), 10)
node.create_subscription(Image, "annotated_image", counter("annotated_image"), 10)
try:
    rclpy.spin(node)
except (KeyboardInterrupt, ExternalShutdownException, RuntimeError):
    pass  # RuntimeError: a take cut by shutdown
print(f"subscriber received {counts}", file=sys.stderr)
"""
STAGES = ("receive", *NODE_STAGES)
OVERHEAD = ("convert", "preprocess", "postprocess", "track", "publish")


def load_frames(seq: Path) -> list[np.ndarray]:
    frames = [cv2.imread(str(p)) for p in sorted((seq / "img1").glob("*.jpg"))]
    if not frames or any(f is None for f in frames):
        raise SystemExit(f"no readable frames in {seq / 'img1'}")
    return frames


def start_subscriber(node: Node) -> subprocess.Popen[bytes]:
    """A process subscribing to (and spinning on) both topics; returns once both publishers see
    it."""
    proc = subprocess.Popen([sys.executable, "-c", SUBSCRIBER], env=ros_env())
    deadline = time.monotonic() + 30.0
    while (
        node.count_subscribers("detections") < 1 or node.count_subscribers("annotated_image") < 1
    ):
        if time.monotonic() > deadline or proc.poll() is not None:
            stop_process(proc)
            raise SystemExit("the subscriber process did not come up")
        time.sleep(0.1)
    return proc


def summarize(samples: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """p50/p99/mean/max in ms per stage."""
    out = {}
    for name, values in samples.items():
        v = np.asarray(values)
        out[name] = {
            "p50": float(np.percentile(v, 50)),
            "p99": float(np.percentile(v, 99)),
            "mean": float(v.mean()),
            "max": float(v.max()),
            "n": int(v.size),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sequence", type=Path, default=data_paths.mot_sequence())
    parser.add_argument("--model", type=Path, default=data_paths.default_model())
    parser.add_argument(
        "--passes", type=int, default=5, help="passes over the 48 frames (after one warm-up pass)"
    )
    parser.add_argument(
        "--subscriber",
        choices=("none", "process"),
        default="none",
        help="'process': a subscriber process on both topics (as rviz or a planner would be)",
    )
    parser.add_argument(
        "--no-tracking", action="store_true", help="detection only (the node's tracking:=false)"
    )
    parser.add_argument("--domain-id", type=int, default=140 + os.getpid() % 30)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    os.environ.update(
        ros_env(domain_id=args.domain_id)
    )  # LARGE_DATA transports, as the node is run

    frames = load_frames(args.sequence)
    wire = []
    for i, frame in enumerate(frames):
        msg = array_to_image(frame, "bgr8", Image())
        msg.header.frame_id = "camera"
        msg.header.stamp.sec, msg.header.stamp.nanosec = i, 0
        wire.append(serialize_message(msg))

    pipeline = FramePipeline.from_model(
        args.model,
        PipelineConfig(tracking=not args.no_tracking),
        backend="onnxruntime",
        convert=image_frame,
    )
    annotator = Annotator()
    build_detections = DetectionArrayBuilder()
    rclpy.init()
    node = rclpy.create_node("bench_stages")
    det_pub = node.create_publisher(Detection2DArray, "detections", 10)
    img_pub = node.create_publisher(Image, "annotated_image", 10)
    subscriber = start_subscriber(node) if args.subscriber == "process" else None

    samples: dict[str, list[float]] = {s: [] for s in (*STAGES, "overhead", "total")}
    counts = []
    for p in range(args.passes + 1):
        pipeline.reset()  # each pass from a fresh tracker
        for data in wire:
            t0 = time.perf_counter()
            msg = deserialize_message(data, Image)
            t1 = time.perf_counter()
            result = pipeline(msg, msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)
            t2 = time.perf_counter()
            det_pub.publish(
                build_detections(msg.header, result.detections, pipeline.names, result.track_ids)
            )
            t3 = time.perf_counter()
            canvas = annotator(
                result.image, result.encoding, result.detections, pipeline.names, result.track_ids
            )
            img_pub.publish(array_to_image(canvas, "bgr8", Image(header=msg.header)))
            t4 = time.perf_counter()
            if p == 0:
                continue  # warm-up pass
            row = {
                "receive": (t1 - t0) * 1e3,
                "publish": (t3 - t2) * 1e3,
                "annotate": (t4 - t3) * 1e3,
                "track": 0.0,
                **result.times_ms,
            }
            row["overhead"] = sum(row[k] for k in OVERHEAD)
            row["total"] = row["overhead"] + row["infer"]
            for k, v in row.items():
                samples[k].append(v)
            counts.append(len(result.detections))
    if subscriber is not None:
        stop_process(subscriber)
    node.destroy_node()
    rclpy.shutdown()
    detector = pipeline.detector
    pipeline.close()

    stats = summarize(samples)
    load = os.getloadavg()
    print(
        f"\nstages per frame (ms), {len(frames)} MOT16-05 frames x {args.passes} passes, "
        f"{np.mean(counts):.1f} detections/frame published, tracking={not args.no_tracking} "
        "(detector conf "
        f"{detector.config.conf_threshold}), subscriber={args.subscriber}, "
        f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(f"{'stage':12s}{'p50':>9s}{'p99':>9s}{'mean':>9s}{'max':>9s}")
    for name in (*STAGES, "overhead", "total"):
        s = stats[name]
        print(f"{name:12s}{s['p50']:9.3f}{s['p99']:9.3f}{s['mean']:9.3f}{s['max']:9.3f}")
    print(
        f"node overhead beyond inference ({'+'.join(OVERHEAD)}): p50 "
        f"{stats['overhead']['p50']:.2f} ms, p99 {stats['overhead']['p99']:.2f} ms (target < 2 ms)"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "stages": stats,
                    "detections_per_frame": float(np.mean(counts)),
                    "passes": args.passes,
                    "frames": len(frames),
                    "subscriber": args.subscriber,
                    "tracking": not args.no_tracking,
                    "loadavg": load,
                    "python": platform.python_version(),
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
