"""GPU path per batch of cameras: preprocessing and candidate compaction for batch 1, 2 and 4.

One 640x480 MOT16-05 frame per camera through ``TensorRTBackend.infer_images`` (raw uint8 upload +
GPU letterbox into each slot of the engine input, one engine run, compaction of each slot's
output into mapped host memory) with the dynamic-size YOLOv8n's profile (rectangles up to
640x640, batch up to 4). The engine is a fake TensorRT whose execution enqueues nothing
(bench/gpu_engine_stub.py): each slot's output buffer holds a real YOLOv8n output (ONNX Runtime on
the frame, 480x640 input, [1, 84, 6300]) placed there once. CUDA-event times of the three stages
(``gpu_timing``) and the host wall time of the whole call, median and 90th percentile over
``--iters`` calls after ``--warmup``.

    python bench/bench_gpu_batch.py [--iters 200]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

import data_paths
from gpu_engine_stub import NoOpEngine, install_fake_tensorrt, write_engine  # first: sys.path
from yolo_trt_ros.detection.letterbox import Letterbox

BATCHES = (1, 2, 4)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    import onnxruntime as ort
    import pycuda.driver as cuda

    from yolo_trt_ros.inference.tensorrt.backend import TensorRTBackend

    onnx = data_paths.data_dir() / "models" / "yolov8n-coco-dynamic.onnx"
    frame = cv2.imread(str(sorted((data_paths.mot_sequence() / "img1").glob("*.jpg"))[0]))
    tensor = Letterbox((640, 640), stride=32)(frame, "bgr8")[0]
    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    real = session.run(None, {"images": np.ascontiguousarray(tensor)})[0]
    cuda.init()
    device = cuda.Device(0)
    gpu = (device.name(), "{}.{}".format(*device.compute_capability()))
    print(
        f"{gpu[0]} (compute {gpu[1]}), driver CUDA {cuda.get_driver_version()}, Python "
        f"{platform.python_version()}; frame {frame.shape[1]}x{frame.shape[0]}, engine input "
        f"{tensor.shape[3]}x{tensor.shape[2]}, {args.iters} calls per batch size"
    )
    install_fake_tensorrt("10.3.0", NoOpEngine())
    with tempfile.TemporaryDirectory() as tmp:
        engine = write_engine(
            Path(tmp) / "noop.engine",
            "10.3.0",
            *gpu,
            [-1, 3, -1, -1],
            [-1, 84, -1],
            profile=[[1, 3, 32, 32], [1, 3, 480, 640], [4, 3, 640, 640]],
            onnx_path=onnx,
        )
        backend = TensorRTBackend(engine, gpu_timing=True)
        try:
            print(
                "| batch | preprocess (GPU ms) | compaction (GPU ms) | whole call (host ms) | "
                "per frame (host ms) |\n|---:|---:|---:|---:|---:|"
            )
            for batch in BATCHES:
                frames = [(frame, "bgr8")] * batch
                backend.infer_images(frames, 0.25, 32)  # binds (batch, 3, 480, 640)
                with backend._ctx.active():
                    cuda.memcpy_htod(backend._out_buf.device, np.concatenate([real] * batch))
                times: dict[str, list[float]] = {"preprocess": [], "output": [], "wall": []}
                for i in range(args.warmup + args.iters):
                    t0 = time.perf_counter()
                    outputs = backend.infer_images(frames, 0.25, 32)
                    wall = (time.perf_counter() - t0) * 1e3
                    if i >= args.warmup:
                        times["wall"].append(wall)
                        for stage in ("preprocess", "output"):
                            times[stage].append(backend.last_gpu_times[stage])
                assert all(out.shape[2] > 0 for out, _ in outputs)
                p = {k: np.percentile(v, (50, 90)) for k, v in times.items()}
                print(
                    f"| {batch} | {p['preprocess'][0]:.3f} (p90 {p['preprocess'][1]:.3f}) | "
                    f"{p['output'][0]:.3f} (p90 {p['output'][1]:.3f}) | "
                    f"{p['wall'][0]:.3f} (p90 {p['wall'][1]:.3f}) | {p['wall'][0] / batch:.3f} |"
                )
        finally:
            backend.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
