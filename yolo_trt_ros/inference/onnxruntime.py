"""ONNX Runtime backend (CUDA execution provider when ONNX Runtime has it, else CPU)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

from yolo_trt_ros.detection.model_layout import check_layout
from yolo_trt_ros.inference.base import (
    UNBOUNDED_BATCH,
    ModelError,
    check_output_shape,
    has_dynamic_hw,
    resolve_input_shape,
)

_DTYPES: dict[str, np.dtype] = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
}
_PREFERRED_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")


class OnnxRuntimeBackend:
    """A validated YOLOv8 detection model in an ONNX Runtime session (graph optimizations: all).

    ``intra_op_threads`` 0 lets ONNX Runtime choose (one per physical core), or with
    ``parallel_runs`` > 1 gives each run an equal share of the cores this process may use: several
    frames inferred at once, each on fewer threads, keep the cores busier than one frame on all of
    them (throughput for several cameras; each frame takes longer). ``allow_spinning``
    False makes idle worker threads sleep instead of busy-waiting: slightly slower on an idle
    machine, much faster when other processes (a camera driver, DDS, the rest of the robot) share
    the cores. ``max_batch``: the largest batch the input takes (``UNBOUNDED_BATCH`` for a dynamic
    batch). ``dynamic_hw``: the input height/width are dynamic (``input_shape`` holds the
    nominal size, any stride-multiple size runs).
    """

    name = "onnxruntime"

    def __init__(
        self,
        model_path: str | Path,
        intra_op_threads: int = 0,
        allow_spinning: bool = True,
        parallel_runs: int = 1,
    ):
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise ModelError(f"model {self.model_path}: file not found")
        self.parallel_runs = max(1, parallel_runs)
        if intra_op_threads == 0 and self.parallel_runs > 1:
            intra_op_threads = max(1, len(os.sched_getaffinity(0)) // self.parallel_runs)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = intra_op_threads
        # Memory patterns are planned and kept per input shape, and rectangular inputs and batches
        # of cameras vary the shape: without them a 4-camera batch held 166 instead of 233 MiB, a
        # single 640x640 frame 117 instead of 141 MiB, at the same speed (YOLOv8n, 2 cores).
        options.enable_mem_pattern = False
        options.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if allow_spinning else "0"
        )
        available = ort.get_available_providers()
        self.providers = [p for p in _PREFERRED_PROVIDERS if p in available]
        try:
            self._session: ort.InferenceSession | None = ort.InferenceSession(
                str(self.model_path), sess_options=options, providers=self.providers
            )
        except Exception as exc:  # ORT raises its own exception types (InvalidProtobuf, Fail, ...)
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(
                f"model {self.model_path}: ONNX Runtime cannot load it: {reason}"
            ) from exc
        self.metadata: dict[str, str] = dict(self._session.get_modelmeta().custom_metadata_map)
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        if len(inputs) != 1:
            names = ", ".join(i.name for i in inputs)
            raise ModelError(
                f"model {self.model_path}: has {len(inputs)} inputs ({names}); YOLOv8 needs one "
                "image input"
            )
        if len(outputs) != 1:
            if self.metadata.get("task", "detect") != "detect":  # segment, pose: say which
                shape = resolve_input_shape(
                    self.model_path, inputs[0].name, inputs[0].shape, self.metadata
                )
                check_layout(self.model_path, shape, outputs[0].shape, self.metadata)
            names = ", ".join(o.name for o in outputs)
            raise ModelError(
                f"model {self.model_path}: has {len(outputs)} outputs ({names}); only "
                "single-output YOLOv8 "
                "detection models are supported (not segmentation/pose)"
            )
        inp, out = inputs[0], outputs[0]
        self._input_name, self._output_name = inp.name, out.name
        dtype = _DTYPES.get(inp.type)
        if dtype is None:
            raise ModelError(
                f"model {self.model_path}: input '{inp.name}' is {inp.type}; need float or float16"
            )
        if out.type not in _DTYPES:
            raise ModelError(
                f"model {self.model_path}: output '{out.name}' is {out.type}; need float or "
                "float16"
            )
        self.input_dtype: np.dtype = dtype
        self.input_shape = resolve_input_shape(self.model_path, inp.name, inp.shape, self.metadata)
        self.dynamic_hw = has_dynamic_hw(inp.shape)
        self.max_batch = inp.shape[0] if isinstance(inp.shape[0], int) else UNBOUNDED_BATCH
        check_output_shape(self.model_path, out.name, out.shape)
        if all(isinstance(d, int) for d in out.shape):
            self.output_shape: tuple[int, ...] = tuple(out.shape)
        else:  # dynamic dims: run once at the input size to learn them
            self.output_shape = self.infer(np.zeros(self.input_shape, dtype)).shape
            check_output_shape(self.model_path, out.name, self.output_shape)

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        """Run the model on a (1, 3, H, W) tensor of ``input_dtype``; returns (1, 4+nc, N)
        float32."""
        if self._session is None:
            raise RuntimeError(f"model {self.model_path}: backend is closed")
        out = self._session.run([self._output_name], {self._input_name: tensor})[0]
        return out if out.dtype == np.float32 else out.astype(np.float32)

    def close(self) -> None:
        self._session = None
