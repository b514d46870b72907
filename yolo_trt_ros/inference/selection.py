"""Choose the inference backend for ``backend: auto|tensorrt|onnxruntime``, say why, and load the
model.

On a machine with an NVIDIA GPU (``find_nvidia_gpu``), ``auto`` falling back to ONNX Runtime is a
degraded choice: its ``Selection`` names what is missing and the command that fixes it (the
detector keeps it as ``Detector.selection``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from yolo_trt_ros.inference.base import Backend, ModelError

BACKENDS = ("onnxruntime", "tensorrt")
CHOICES = ("auto", "tensorrt", "onnxruntime")
DOCS = "docs/tensorrt.md"
JETSON_MARKERS = ("NVIDIA Jetson", "Orin", "Xavier")
"""Substrings of /proc/device-tree/model that mark a Jetson module."""

Missing = Literal["tensorrt", "pycuda", "cuda"]
"""What keeps TensorRT from running: its import, pycuda's import, or CUDA (driver, device)."""


@dataclass(frozen=True)
class GpuHost:
    """An NVIDIA GPU on this machine, as seen without CUDA."""

    jetson: bool
    evidence: str
    """What shows it, e.g. "/dev/nvidia0" or "Jetson 'NVIDIA Jetson AGX Orin Developer Kit'"."""


def device_tree_model(root: Path = Path("/")) -> str:
    """The board's device-tree model (e.g. "NVIDIA Jetson AGX Orin Developer Kit"), or ""."""
    try:
        raw = (root / "proc/device-tree/model").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b"").decode(errors="replace").strip()


def find_nvidia_gpu(root: Path = Path("/")) -> GpuHost | None:
    """The NVIDIA GPU of the machine whose file system is at ``root``: a Jetson (device-tree model,
    /etc/nv_tegra_release), or a GPU driver (/dev/nvidia0, /dev/nvidiactl,
    /proc/driver/nvidia/version); None when there is none."""
    model = device_tree_model(root)
    if any(marker in model for marker in JETSON_MARKERS):
        return GpuHost(True, f"Jetson {model!r}")
    if (root / "etc/nv_tegra_release").is_file():
        return GpuHost(True, "Jetson (/etc/nv_tegra_release)")
    for device in ("dev/nvidia0", "dev/nvidiactl"):
        if (root / device).exists():
            return GpuHost(False, f"/{device}")
    try:
        (root / "proc/driver/nvidia/version").read_bytes()
    except OSError:
        return None
    return GpuHost(False, "NVIDIA driver (/proc/driver/nvidia/version)")


def fix_for(missing: Missing, host: GpuHost | None) -> str:
    """The command or step that fixes ``missing`` on ``host`` (x86 when None)."""
    jetson = host is not None and host.jetson
    if missing == "tensorrt":
        if jetson:
            return (
                "sudo apt install python3-libnvinfer (JetPack's TensorRT), and run with the "
                "system Python or a venv created with --system-site-packages"
            )
        return 'pip install "tensorrt-cu12<11"'
    if missing == "pycuda":
        if jetson:
            return (
                "PATH=/usr/local/cuda/bin:$PATH pip install --no-build-isolation pycuda "
                "(builds against JetPack's CUDA and the system numpy)"
            )
        return "pip install pycuda"
    if jetson:
        return "add the user to the 'video' group; in a container, start it with --runtime nvidia"
    return (
        "check the driver with nvidia-smi (it must support the CUDA version TensorRT was built "
        "for); in a container, start it with --gpus all"
    )


@dataclass(frozen=True)
class Selection:
    """The backend chosen and why; ``gpu`` is set when ``auto`` fell back to ONNX Runtime on a
    machine with an NVIDIA GPU (a degraded fallback)."""

    backend: str
    reason: str
    """The log line: "backend <kind> -> <backend>: <cause>" and, when degraded, the fix."""
    cause: str = ""
    missing: Missing | None = None
    gpu: GpuHost | None = None
    fix: str = ""

    @property
    def degraded(self) -> bool:
        return self.gpu is not None

    @property
    def warning(self) -> str:
        """The GPU left unused and why, with the fix ("" unless degraded)."""
        if self.gpu is None:
            return ""
        return (
            f"NVIDIA GPU unused ({self.gpu.evidence}), running on the CPU with ONNX Runtime: "
            f"{self.cause}; fix: {self.fix} (see {DOCS})"
        )


def _tensorrt_probe() -> tuple[Missing | None, str]:
    """(what is missing or None, the reason): TensorRT and pycuda import and CUDA sees a GPU."""
    try:
        import tensorrt as trt
    except Exception as exc:  # ImportError, or a broken install raising OSError from its libraries
        return "tensorrt", f"TensorRT is not importable ({exc})"
    try:
        import pycuda.driver as cuda
    except Exception as exc:
        return "pycuda", f"pycuda is not importable ({exc})"
    try:
        cuda.init()
        count = cuda.Device.count()
        name = cuda.Device(0).name() if count else ""
    except Exception as exc:  # pycuda.driver.Error: no driver, driver/runtime mismatch, ...
        return "cuda", f"CUDA is not usable ({exc})"
    if count == 0:
        return "cuda", "CUDA sees no GPU"
    return None, f"TensorRT {trt.__version__} and GPU '{name}' found"


def tensorrt_status() -> tuple[bool, str]:
    """(usable, reason): TensorRT and pycuda import and CUDA sees a GPU; the reason names what is
    missing."""
    missing, reason = _tensorrt_probe()
    return missing is None, reason


def choose_backend(kind: str, root: Path = Path("/")) -> Selection:
    """The backend to use for ``kind``, why, and whether it leaves this machine's GPU unused.

    ``auto`` takes TensorRT when it imports and a GPU is present, else ONNX Runtime; a fallback on
    a machine with an NVIDIA GPU (``find_nvidia_gpu(root)``) is degraded and its reason ends with
    the fix. ``tensorrt`` raises ModelError with the reason when TensorRT cannot run here;
    ``onnxruntime`` is taken as asked.
    """
    if kind not in CHOICES:
        raise ModelError(f"backend must be one of {', '.join(CHOICES)}, got {kind!r}")
    if kind == "onnxruntime":
        return Selection("onnxruntime", "backend onnxruntime: as configured")
    missing, cause = _tensorrt_probe()
    if kind == "tensorrt":
        if missing is not None:
            raise ModelError(f"backend tensorrt was requested but {cause}")
        return Selection("tensorrt", f"backend tensorrt: as configured; {cause}", cause)
    if missing is None:
        return Selection("tensorrt", f"backend auto -> tensorrt: {cause}", cause)
    reason = f"backend auto -> onnxruntime: {cause}"
    gpu = find_nvidia_gpu(root)
    if gpu is None:
        return Selection("onnxruntime", reason, cause, missing)
    fix = fix_for(missing, gpu)
    return Selection(
        "onnxruntime",
        f"{reason}; the NVIDIA GPU ({gpu.evidence}) stays unused; fix: {fix} (see {DOCS})",
        cause,
        missing,
        gpu,
        fix,
    )


def select_backend(kind: str, root: Path = Path("/")) -> tuple[str, str]:
    """``choose_backend(kind, root)`` as (backend, reason)."""
    selection = choose_backend(kind, root)
    return selection.backend, selection.reason


def create_backend(
    kind: str, model_path: str | Path, options: Mapping[str, Mapping[str, Any]] | None = None
) -> tuple[Backend, Selection]:
    """Load ``model_path`` with backend ``kind`` (one of ``CHOICES``); returns the backend and why
    it was chosen.

    ``options`` maps a backend name to its keyword arguments, e.g. ``{"onnxruntime":
    {"intra_op_threads": 1}, "tensorrt": {"precision": "fp32", "device": 0}}``; only the chosen
    backend's are used. Raises ModelError naming the file and the problem, also when "tensorrt" is
    requested but cannot run here.
    """
    if kind not in CHOICES:
        raise ModelError(
            f"model {model_path}: unknown backend {kind!r}; choose one of {', '.join(CHOICES)}"
        )
    path = Path(model_path)
    if path.is_dir():
        raise ModelError(
            f"model {path}: is a directory, not a model file (give the .onnx or .engine file in "
            "it)"
        )
    if not path.exists():
        raise ModelError(f"model {path}: file not found")
    try:
        selection = choose_backend(kind)
    except ModelError as exc:
        raise ModelError(f"model {model_path}: {exc}") from exc
    chosen = dict((options or {}).get(selection.backend, {}))
    if selection.backend == "tensorrt":
        from yolo_trt_ros.inference.tensorrt.backend import TensorRTBackend

        return TensorRTBackend(model_path, **chosen), selection
    from yolo_trt_ros.inference.onnxruntime import OnnxRuntimeBackend

    return OnnxRuntimeBackend(model_path, **chosen), selection
