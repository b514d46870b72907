"""Shared fixtures: data locations (``$YOLO_TRT_ROS_DATA`` or ``../shared/data``, see
bench/data_paths.py)."""

from __future__ import annotations

import faulthandler
import functools
import gc
import os
from pathlib import Path

import numpy as np
import pytest

import data_paths
from onnx_models import save_model, smaller_yolov8n
from yolo_trt_ros.detection.model_layout import anchor_count
from yolo_trt_ros.inference.onnxruntime import OnnxRuntimeBackend

HANG_EXIT_MARGIN_S = 60.0
"""A test still running this long after pytest-timeout's limit ends the whole run (below)."""


def pytest_configure(config: pytest.Config) -> None:
    # Output capture is suspended here: this is the terminal's stderr, where a hang's stacks go.
    config.stash[_STDERR] = os.dup(2)


_STDERR = pytest.StashKey[int]()


@pytest.fixture(autouse=True)
def _exit_on_a_hang_that_holds_the_gil(request: pytest.FixtureRequest):
    """pytest-timeout's thread needs the GIL, which a call hung inside C code can hold (Fast DDS
    in rclpy's ``destroy_node`` once did). faulthandler's watchdog needs none: past the timeout
    plus ``HANG_EXIT_MARGIN_S`` it prints every thread's stack and exits the run, which would
    otherwise hang until CI's time limit. Autouse, it is set up before the test's other function
    fixtures (the ROS harnesses) and torn down after them, so it covers their teardown too."""
    timeout = float(request.config.getini("timeout") or 0)
    if timeout <= 0:
        yield
        return
    faulthandler.dump_traceback_later(
        timeout + HANG_EXIT_MARGIN_S, exit=True, file=request.config.stash[_STDERR]
    )
    yield
    faulthandler.cancel_dump_traceback_later()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Move what collection made (modules, test items) out of the garbage collector's view: a
    full collection (a fixture's ``gc.collect()``, or Python's own) then walks only what tests
    made since."""
    gc.collect()
    gc.freeze()


@pytest.fixture(scope="session", autouse=True)
def _one_onnxruntime_thread_per_test_worker():
    """Under pytest-xdist every worker shares the few cores: ONNX Runtime's default busy-waiting
    thread pools (one per worker) then fight each other, so workers run sessions on one thread
    (explicit arguments of a test still win); so do the sessions tests open themselves without
    options (fake TensorRT engines, references)."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        yield
        return
    import onnxruntime as ort

    open_session = ort.InferenceSession.__init__

    def one_thread_session(self, path_or_bytes, sess_options=None, *args, **kwargs) -> None:
        if sess_options is None:
            sess_options = ort.SessionOptions()
            sess_options.intra_op_num_threads = 1
            sess_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        open_session(self, path_or_bytes, sess_options, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            OnnxRuntimeBackend,
            "__init__",
            functools.partialmethod(
                OnnxRuntimeBackend.__init__, intra_op_threads=1, allow_spinning=False
            ),
        )
        patch.setattr(ort.InferenceSession, "__init__", one_thread_session)
        yield


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = data_paths.data_dir()
    if not path.is_dir():
        pytest.fail(
            f"test data not found at {path}: set {data_paths.DATA_ENV} or place shared/data "
            "beside the repo"
        )
    return path


@pytest.fixture(scope="session")
def model_path(data_dir: Path) -> Path:
    return data_paths.default_model()


@pytest.fixture(scope="session")
def mot_dir(data_dir: Path) -> Path:
    return data_paths.mot_sequence()


SMALL_SIZE = 352
"""The nominal input size of ``small_dynamic_model`` and ``small_static_model``."""


@pytest.fixture(scope="session")
def small_dynamic_model(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """yolov8n-coco-dynamic.onnx at a nominal 352x352 (rectangles of it for other frame shapes):
    the real network at a third of the cost, still finding five people in MOT16-05 frame 1, for
    tests of threading, order and batching rather than of detection quality."""
    return smaller_yolov8n(
        data_dir / "models" / "yolov8n-coco-dynamic.onnx",
        tmp_path_factory.mktemp("models") / "yolov8n-dynamic-352.onnx",
        SMALL_SIZE,
    )


@pytest.fixture(scope="session")
def small_static_model(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``small_dynamic_model`` with its input fixed at [1, 3, 352, 352]: a batch-1 model of one
    size."""
    return smaller_yolov8n(
        data_dir / "models" / "yolov8n-coco-dynamic.onnx",
        tmp_path_factory.mktemp("models") / "yolov8n-static-352.onnx",
        SMALL_SIZE,
        static=True,
    )


ULTRALYTICS_WHEEL = "ultralytics==8.4.190"
"""The wheel whose ``ultralytics/assets/`` ships the sample images bus.jpg and zidane.jpg."""


def _pypi_reachable() -> bool:
    import socket

    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def sample_images() -> dict[str, Path]:
    """bus.jpg and zidane.jpg from the Ultralytics wheel, fetched once into
    ``<repo>/.cache/assets/``."""
    import os
    import subprocess
    import sys
    import tempfile
    import zipfile

    cache = data_paths.REPO_ROOT / ".cache" / "assets"
    files = {name: cache / f"{name}.jpg" for name in ("bus", "zidane")}
    if all(p.is_file() for p in files.values()):
        return files
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", ULTRALYTICS_WHEEL, "-d", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            if not _pypi_reachable():
                pytest.skip(
                    "PyPI is unreachable: cannot fetch the Ultralytics sample images "
                    f"({ULTRALYTICS_WHEEL})"
                )
            pytest.fail(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
        (wheel,) = Path(tmp).glob("ultralytics-*.whl")
        cache.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel) as zf:
            for name, path in files.items():
                part = path.with_suffix(
                    f".{os.getpid()}.part"
                )  # parallel sessions never share a partial file
                part.write_bytes(zf.read(f"ultralytics/assets/{name}.jpg"))
                part.replace(path)
    return files


@pytest.fixture(scope="session")
def make_yolo_onnx():
    """Factory writing a tiny YOLOv8-like ONNX model whose output is computed from its input.

    ``make(path, boxes_cxcywh (N, 4), weights (nc, N), input_hw, metadata, ...)``: the output [1,
    4+nc, K] is the constant boxes (input pixels) concatenated with class scores ``weights[c, k] *
    mean(input channel c % 3)``, so a solid-color image decides which anchors fire. The N given
    anchors come first, then zero boxes with zero scores up to K = ``anchor_count(input_hw)``, the
    anchors a YOLOv8 head has at that size. ``dynamic`` makes batch/H/W/K dims symbolic (then the
    scores use a per-channel mean over whatever H/W arrive; K stays that of ``input_hw``, so give
    the size the backend will resolve: metadata ``imgsz``, else 640x640);
    ``input_type``/``output_type`` may be float16.
    """
    from onnx import TensorProto, helper, numpy_helper

    def make(
        path: Path,
        boxes_cxcywh: np.ndarray,
        weights: np.ndarray,
        input_hw: tuple[int, int] = (320, 256),
        metadata: dict[str, str] | None = None,
        dynamic: bool = False,
        input_type: int = TensorProto.FLOAT,
        output_type: int = TensorProto.FLOAT,
    ) -> Path:
        n = anchor_count(input_hw)
        if boxes_cxcywh.shape[0] > n:
            raise ValueError(
                f"{boxes_cxcywh.shape[0]} anchors given but a YOLOv8 head at {input_hw} has only "
                f"{n}"
            )
        pad = ((0, n - boxes_cxcywh.shape[0]), (0, 0))
        boxes_cxcywh = np.pad(boxes_cxcywh, pad)
        weights = np.pad(weights, pad[::-1])
        nc = weights.shape[0]
        channel = np.array([c % 3 for c in range(nc)], np.int64)
        nodes = []
        if input_type != TensorProto.FLOAT:
            nodes.append(helper.make_node("Cast", ["images"], ["x"], to=TensorProto.FLOAT))
        else:
            nodes.append(helper.make_node("Identity", ["images"], ["x"]))
        nodes += [
            helper.make_node("ReduceMean", ["x"], ["mean"], axes=[2, 3], keepdims=0),  # [1, 3]
            helper.make_node("Gather", ["mean", "channel"], ["cmean"], axis=1),  # [1, nc]
            helper.make_node("Unsqueeze", ["cmean"], ["cmean3"], axes=[2]),  # [1, nc, 1]
            helper.make_node("Mul", ["cmean3", "weights"], ["scores"]),  # [1, nc, N]
            helper.make_node("Concat", ["boxes", "scores"], ["output"], axis=1),
            helper.make_node("Cast", ["output"], ["output0"], to=output_type),
        ]
        inits = [
            numpy_helper.from_array(
                np.ascontiguousarray(boxes_cxcywh.T[None], np.float32), "boxes"
            ),
            numpy_helper.from_array(weights[None].astype(np.float32), "weights"),
            numpy_helper.from_array(channel, "channel"),
        ]
        in_shape = ["batch", 3, "height", "width"] if dynamic else [1, 3, *input_hw]
        out_shape = ["batch", 4 + nc, "anchors"] if dynamic else [1, 4 + nc, n]
        graph = helper.make_graph(
            nodes,
            "tiny_yolo",
            [helper.make_tensor_value_info("images", input_type, in_shape)],
            [helper.make_tensor_value_info("output0", output_type, out_shape)],
            inits,
        )
        return save_model(graph, path, metadata)

    return make
