"""Decode time per output layout: median microseconds of our decode function on real model
outputs of the 48 MOT16-05 frames (conf 0.25, IoU 0.7, max 300 detections, as the node).

- one-to-many ``[1, 84, 8400]`` (``decode_yolov8``): the real YOLOv8n and the random-weight YOLO11n
  export;
- end-to-end ``[1, 300, 6]`` (``decode_end2end``): the random-weight YOLO26n and YOLOv10n exports,
  also with every row above the threshold (conf 0: the most work it can do);
- original YOLOv5 ``[1, 25200, 85]`` (``decode_yolov5``): no YOLOv5 model is shipped, so each
  fixture is built from the real YOLOv8n output of the same frame: every anchor three times (as
  YOLOv5's 3 anchors per cell), objectness = its best class score, class scores divided by it (so
  objectness x class score = YOLOv8n's scores), boxes of the copies 1 px apart.

Each frame is letterboxed to the model's 640x640 input and run through ONNX Runtime once; only the
decode of the stored outputs is timed (``--repeats`` rounds over the frames).

    .venv/bin/python bench/bench_decode.py [--repeats 20] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

import data_paths
from yolo_trt_ros.detection.decode import decode_end2end, decode_yolov5, decode_yolov8
from yolo_trt_ros.detection.detections import Detections
from yolo_trt_ros.detection.letterbox import Letterbox

CONF, IOU, MAX_DET, NUM_CLASSES = 0.25, 0.7, 300, 80


def model_outputs(model: Path, frames: list[np.ndarray]) -> list[np.ndarray]:
    """The model's first output for each frame, letterboxed to its (static) input size."""
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    letterbox = Letterbox((int(inp.shape[2]), int(inp.shape[3])))
    return [session.run(None, {inp.name: letterbox(f)[0]})[0] for f in frames]


def yolov5_fixture(yolov8_output: np.ndarray) -> np.ndarray:
    """A [1, 3 * A, 5 + nc] YOLOv5-layout output whose scores equal ``yolov8_output``'s
    ([1, 4 + nc, A]); see the module docstring."""
    pred = yolov8_output[0].T  # (A, 4 + nc)
    scores = pred[:, 4:]
    objectness = scores.max(axis=1, keepdims=True)
    rows = np.concatenate([pred[:, :4], objectness, scores / np.maximum(objectness, 1e-9)], 1)
    copies = [rows.copy() for _ in range(3)]
    for k, c in enumerate(copies):
        c[:, :2] += k
    return np.stack(copies, axis=1).reshape(1, -1, rows.shape[1]).astype(np.float32)


def time_decode(
    decode: Callable[[np.ndarray], Detections], outputs: list[np.ndarray], repeats: int
) -> dict[str, float]:
    """Median / p90 microseconds per call and the mean detections kept, after one warm-up
    round."""
    for out in outputs:
        decode(out)
    times = []
    for _ in range(repeats):
        for out in outputs:
            t0 = time.perf_counter()
            decode(out)
            times.append((time.perf_counter() - t0) * 1e6)
    t = np.asarray(times)
    return {
        "median_us": float(np.median(t)),
        "p90_us": float(np.percentile(t, 90)),
        "detections_mean": float(np.mean([len(decode(o)) for o in outputs])),
    }


def one_to_many(out: np.ndarray) -> Detections:
    return decode_yolov8(out, CONF, IOU, MAX_DET)


def yolov5(out: np.ndarray) -> Detections:
    return decode_yolov5(out, CONF, IOU, MAX_DET)


def end2end(conf: float) -> Callable[[np.ndarray], Detections]:
    def decode(out: np.ndarray) -> Detections:
        return decode_end2end(out, conf, MAX_DET, NUM_CLASSES)

    return decode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sequence", type=Path, default=data_paths.mot_sequence())
    parser.add_argument("--repeats", type=int, default=20, help="timed rounds over the frames")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    models = data_paths.data_dir() / "models"
    frames = [cv2.imread(str(p)) for p in sorted((args.sequence / "img1").glob("*.jpg"))]
    yolov8n = model_outputs(data_paths.default_model(), frames)
    yolo26n = model_outputs(models / "formats" / "yolo26n-random.onnx", frames)
    yolov10n = model_outputs(models / "formats" / "yolov10n-random.onnx", frames)
    cases = [
        ("one-to-many", "yolov8n-coco-fp32.onnx (real)", one_to_many, yolov8n),
        (
            "one-to-many",
            "yolo11n-random.onnx",
            one_to_many,
            model_outputs(models / "formats" / "yolo11n-random.onnx", frames),
        ),
        ("end-to-end", "yolo26n-random.onnx", end2end(CONF), yolo26n),
        ("end-to-end", "yolo26n-random.onnx, conf 0 (all 300 rows)", end2end(0.0), yolo26n),
        ("end-to-end", "yolov10n-random.onnx", end2end(CONF), yolov10n),
        ("end-to-end", "yolov10n-random.onnx, conf 0 (all 300 rows)", end2end(0.0), yolov10n),
        (
            "YOLOv5",
            "fixture from the yolov8n outputs",
            yolov5,
            [yolov5_fixture(o) for o in yolov8n],
        ),
    ]
    results = []
    print(f"{len(frames)} MOT16-05 frames x {args.repeats} rounds, conf {CONF}, IoU {IOU}\n")
    print("| layout | output | outputs from | median us | p90 us | detections per frame |")
    print("|---|---|---|---:|---:|---:|")
    for layout, source, decode, outputs in cases:
        r = {
            "layout": layout,
            "source": source,
            "shape": list(outputs[0].shape),
            **time_decode(decode, outputs, args.repeats),
        }
        results.append(r)
        print(
            f"| {layout} | {r['shape']} | {source} | {r['median_us']:.1f} | {r['p90_us']:.1f} "
            f"| {r['detections_mean']:.1f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
