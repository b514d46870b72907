"""``yolo-trt-ros``: detect on images, track a video/folder/MOT sequence offline, or run the ROS 2
demo."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yolo_trt_ros.cli import build_engine, doctor, eval_mot, export
from yolo_trt_ros.cli.options import (
    PROG,
    add_detector_options,
    add_tracker_options,
    load_pipeline,
    tracker_config,
)
from yolo_trt_ros.sources import SourceError

if TYPE_CHECKING:
    from yolo_trt_ros.detection.detections import Detections


class CliError(RuntimeError):
    """A problem to report in one line, without a traceback."""


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ok, 1 runtime error, 2 usage error, 130
    interrupted)."""
    args = build_parser().parse_args(argv)
    from yolo_trt_ros.demo.supervisor import DemoError
    from yolo_trt_ros.inference.base import ModelError

    try:
        return int(args.run(args))
    except (CliError, DemoError, ModelError, SourceError, OSError, ValueError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Detect on images, track a video/folder/MOT sequence offline, or run the ROS "
        "2 demo.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    detect = sub.add_parser(
        "detect",
        help="detect objects in images and print them",
        description="Run the detector on images; print a table, or JSON with --json.",
    )
    detect.add_argument("images", nargs="+", metavar="IMAGE", type=Path)
    add_detector_options(detect)
    detect.add_argument(
        "--json", action="store_true", help="print JSON: class name, score and xyxy box per object"
    )
    detect.set_defaults(run=run_detect)

    track = sub.add_parser(
        "track",
        help="detect and track over a video, image folder or MOT sequence offline",
        description="Run the detector and the ByteTrack tracker over every frame of SOURCE (video "
        "file, image "
        "folder, MOTChallenge sequence or its img1/) without ROS, frame i stamped i/fps (fps: the "
        "source's, also the tracker's frame rate). Writes OUT/annotated.mp4 (mp4v, labels "
        "'class #id score'), OUT/results.txt (MOTChallenge rows frame,id,x,y,w,h,conf,-1,-1,-1 of "
        "the "
        "tracked detections, the detector's own boxes; with --no-tracking every detection with id "
        "-1) "
        "and OUT/summary.json. While tracking, the detector runs at min(--conf, "
        "--track-low-thresh) "
        "for ByteTrack's low-score association.",
    )
    track.add_argument("source", metavar="SOURCE", type=Path)
    add_detector_options(track)
    track.add_argument(
        "--no-tracking",
        dest="tracking",
        action="store_false",
        help="detections only (track id -1), as without a tracker",
    )
    add_tracker_options(track, exclude=("frame_rate",))
    track.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="output folder (created)"
    )
    track.add_argument(
        "--fps", type=float, help="frame rate of the output video (default: the source's)"
    )
    track.add_argument(
        "--max-frames", type=_count, default=0, metavar="N", help="stop after N frames (0 = all)"
    )
    track.set_defaults(run=run_track)

    demo = sub.add_parser(
        "demo",
        help="replay a video through the ROS 2 node and record what it publishes",
        description="Start image_replay and yolo_tracker as separate processes talking over real "
        "ROS 2 topics, "
        "drive the tracker's lifecycle (configure, activate), record its detections and annotated "
        "images, and write OUT/annotated.mp4, OUT/detections.jsonl and OUT/summary.json. "
        "Several --source: one camera each (cam0, cam1, ... or --camera-name), each replayed by "
        "its own image_replay, one of them (--compressed-camera, default the last) as JPEG "
        "CompressedImage, all served by one yolo_tracker (batched with a dynamic-batch model); "
        "OUT/<camera>/annotated.mp4 and detections.jsonl per camera, OUT/summary.json with a "
        "section per camera. "
        "Children get FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA unless it is set: FastDDS's default "
        "transports drop most best-effort camera frames between processes.",
    )
    demo.add_argument(
        "--model", type=Path, required=True, help="ONNX model (YOLOv8 detection export)"
    )
    camera = demo.add_mutually_exclusive_group(required=True)
    camera.add_argument(
        "--source",
        type=Path,
        action="append",
        help="video, image folder or MOT sequence to replay; repeat it for several cameras",
    )
    camera.add_argument(
        "--topic",
        help="use this live camera topic (sensor_msgs/Image) instead of replaying --source",
    )
    demo.add_argument(
        "--out",
        type=Path,
        default=Path("demo_out"),
        metavar="DIR",
        help="output folder (%(default)s)",
    )
    demo.add_argument(
        "--max-frames",
        type=_count,
        default=0,
        metavar="N",
        help="replay only the first N frames; with --topic, stop after N frames (0 = all)",
    )
    demo.add_argument(
        "--rate", type=float, default=0.0, help="replay rate in Hz (default: the source's rate)"
    )
    demo.add_argument(
        "--duration",
        type=float,
        default=0.0,
        metavar="S",
        help="with --topic: stop after S seconds (default: at Ctrl-C or --max-frames)",
    )
    demo.add_argument(
        "--namespace",
        default="yolo_demo",
        help="namespace of the demo's nodes and topics (%(default)s), kept apart from a robot's",
    )
    demo.add_argument(
        "--conf", type=float, default=0.25, help="confidence threshold (%(default)s)"
    )
    demo.add_argument(
        "--camera-name",
        action="append",
        default=[],
        metavar="NAME",
        help="with several --source: the cameras' names, one per source in order "
        "(default cam0, cam1, ...)",
    )
    demo.add_argument(
        "--compressed-camera",
        metavar="NAME",
        help="with several --source: the camera published as JPEG CompressedImage (default: the "
        "last)",
    )
    demo.set_defaults(run=run_demo)
    build_engine.register(sub)
    export.register(sub)
    eval_mot.register(sub)
    doctor.register(sub)
    return parser


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _detection_records(detections: Detections, names: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "class_id": int(c),
            "class_name": names[int(c)],
            "score": round(float(s), 4),
            "box_xyxy": [round(float(v), 1) for v in box],
        }
        for box, s, c in zip(
            detections.boxes, detections.scores, detections.class_ids, strict=True
        )
    ]


def run_detect(args: argparse.Namespace) -> int:
    from yolo_trt_ros.sources import read_image

    pipeline = load_pipeline(args)
    results: list[dict[str, Any]] = []
    failed = 0
    try:
        for path in args.images:
            try:
                image = read_image(path)
            except SourceError as exc:
                print(f"{PROG}: error: {exc}", file=sys.stderr)
                failed += 1
                continue
            result = pipeline(image, None)
            record = {
                "image": str(path),
                "width": image.shape[1],
                "height": image.shape[0],
                "detections": _detection_records(result.detections, pipeline.names),
                "times_ms": {
                    stage: round(result.times_ms[stage], 2)
                    for stage in ("preprocess", "infer", "postprocess")
                },
            }
            results.append(record)
            if not args.json:
                _print_table(record)
    finally:
        pipeline.close()
    if args.json:
        print(
            json.dumps(
                {
                    "model": str(args.model),
                    "backend": pipeline.detector.backend.name,
                    "images": results,
                },
                indent=2,
            )
        )
    return 1 if failed else 0


def _print_table(record: dict[str, Any]) -> None:
    dets, t = record["detections"], record["times_ms"]
    print(
        f"{record['image']} ({record['width']}x{record['height']}): {len(dets)} detections, "
        f"{t['preprocess'] + t['infer'] + t['postprocess']:.1f} ms "
        f"(preprocess {t['preprocess']:.1f}, infer {t['infer']:.1f}, postprocess "
        f"{t['postprocess']:.1f})"
    )
    if dets:
        width = max(len("class"), *(len(d["class_name"]) for d in dets))
        print(f"  {'class':<{width}}  score      x1      y1      x2      y2")
        for d in dets:
            x1, y1, x2, y2 = d["box_xyxy"]
            print(
                f"  {d['class_name']:<{width}}  {d['score']:.3f}  {x1:6.1f}  {y1:6.1f}  {x2:6.1f} "
                f" {y2:6.1f}"
            )


def run_track(args: argparse.Namespace) -> int:
    import itertools

    import cv2

    from yolo_trt_ros.detection.annotate import Annotator
    from yolo_trt_ros.evaluation.mot_format import rows_from_boxes, write_rows
    from yolo_trt_ros.sources import open_source

    source = open_source(args.source)
    fps = args.fps or source.fps
    config = tracker_config(args, frame_rate=source.fps) if args.tracking else None
    args.out.mkdir(parents=True, exist_ok=True)
    video_path, results_path = args.out / "annotated.mp4", args.out / "results.txt"
    pipeline = load_pipeline(args, config)
    annotate = Annotator()
    track_ids: set[int] = set()
    writer: cv2.VideoWriter | None = None
    size: tuple[int, int] = (0, 0)
    counts: Counter[str] = Counter()
    stage_ms: Counter[str] = Counter()
    frames = 0
    print(
        f"tracking {source.description} with {args.model} ({pipeline.detector.backend.name})",
        file=sys.stderr,
    )
    started = time.monotonic()
    try:
        with open(results_path, "w") as results:
            for index, frame in itertools.islice(source, args.max_frames or None):
                result = pipeline(frame, index / source.fps)
                detections, ids = result.detections, result.track_ids
                stage_ms.update(result.times_ms)
                if ids is not None:
                    track_ids.update(ids.tolist())
                counts.update(pipeline.names[int(c)] for c in detections.class_ids)
                write_rows(
                    results, rows_from_boxes(index + 1, detections.boxes, detections.scores, ids)
                )
                image = annotate(frame, "bgr8", detections, pipeline.names, ids)
                if writer is None:
                    size = (image.shape[1], image.shape[0])
                    writer = cv2.VideoWriter(
                        str(video_path), cv2.VideoWriter.fourcc(*"mp4v"), fps, size
                    )
                    if not writer.isOpened():
                        raise CliError(
                            f"cannot write video {video_path} (OpenCV mp4v writer unavailable)"
                        )
                if (
                    image.shape[1],
                    image.shape[0],
                ) != size:  # a folder of mixed sizes: the video needs one
                    image = cv2.resize(image, size)
                writer.write(image)
                frames += 1
    finally:
        pipeline.close()
        if writer is not None:
            writer.release()
    elapsed = time.monotonic() - started
    summary: dict[str, Any] = {
        "source": str(args.source),
        "model": str(args.model),
        "backend": pipeline.detector.backend.name,
        "frames": frames,
        "detections": sum(counts.values()),
        "per_class": dict(counts.most_common()),
        "mean_ms": {
            stage: round(stage_ms[stage] / max(frames, 1), 2)
            for stage in ("preprocess", "infer", "postprocess", "track")
        },
        "fps": round(frames / elapsed, 2) if elapsed > 0 else None,
        "video": str(video_path),
        "video_fps": fps,
        "results": str(results_path),
        "tracker": None if config is None else asdict(config),
        "distinct_track_ids": len(track_ids),
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    per_class = ", ".join(f"{n} {c}" for n, c in counts.most_common()) or "none"
    ms = summary["mean_ms"]
    tracked = f", {len(track_ids)} distinct track IDs" if config is not None else ""
    print(
        f"{frames} frames, {summary['detections']} {'tracked ' if tracked else ''}detections "
        f"({per_class})"
        f"{tracked}"
    )
    print(
        f"per frame: preprocess {ms['preprocess']:.1f} ms, infer {ms['infer']:.1f} ms, "
        f"postprocess {ms['postprocess']:.1f} ms, track {ms['track']:.2f} ms; {summary['fps']} "
        "fps overall"
    )
    print(f"wrote {video_path} ({frames} frames at {fps:g} fps)")
    print(
        f"wrote {results_path} (MOTChallenge rows; "
        f"{'track IDs' if tracked else 'track id -1: --no-tracking'})"
    )
    print(f"wrote {args.out / 'summary.json'}")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from yolo_trt_ros.demo.supervisor import DemoOptions, run

    return run(
        DemoOptions(
            model=args.model,
            sources=[] if args.topic else args.source,
            topic=args.topic,
            out=args.out,
            max_frames=args.max_frames,
            rate=args.rate,
            duration=args.duration,
            namespace=args.namespace,
            conf=args.conf,
            camera_names=args.camera_name,
            compressed_camera=args.compressed_camera,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
