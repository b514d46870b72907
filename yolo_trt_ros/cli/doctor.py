"""``yolo-trt-ros doctor``: the checklist to run first on a new machine.

Each check is a function returning a ``Result`` (OK, WARN, FAIL or SKIP, what was found, the fix).
Probing goes through a ``Probe`` (file system root, environment, import function), so tests can
simulate a Jetson or a GPU machine without TensorRT. The exit status is 1 when a check FAILs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from yolo_trt_ros.inference.selection import (
    DOCS,
    GpuHost,
    device_tree_model,
    find_nvidia_gpu,
    fix_for,
)
from yolo_trt_ros.inference.tensorrt.engine_cache import cached_engine_path

Status = Literal["OK", "WARN", "FAIL", "SKIP"]
ROS_PYTHON = {"humble": "3.10", "iron": "3.10", "jazzy": "3.12", "kilted": "3.12"}
"""The Python each ROS 2 distribution's binary packages are built for (its Ubuntu's)."""
KERNELS_MODULE = "yolo_trt_ros.inference.tensorrt.gpu_preprocess"


@dataclass(frozen=True)
class Result:
    check: str
    status: Status
    found: str
    fix: str = ""


@dataclass(frozen=True)
class Probe:
    """Where the checks look: the file system root, the environment and the import function."""

    root: Path = Path("/")
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    import_module: Callable[[str], ModuleType] = importlib.import_module


@dataclass(frozen=True)
class Gpu:
    name: str
    compute_capability: str
    total_memory_mb: int


@dataclass(frozen=True)
class CudaState:
    """What pycuda says: its version, the CUDA driver version and the GPUs, or why not."""

    pycuda_version: str = ""
    import_error: str = ""
    init_error: str = ""
    driver_version: str = ""
    gpus: tuple[Gpu, ...] = ()


def probe_cuda(probe: Probe) -> CudaState:
    try:
        pycuda = probe.import_module("pycuda")
        driver: Any = probe.import_module("pycuda.driver")
    except Exception as exc:  # ImportError, or OSError from a missing libcuda
        return CudaState(import_error=_one_line(exc))
    version = str(getattr(pycuda, "VERSION_TEXT", "unknown version"))
    try:
        driver.init()
        encoded = int(driver.get_driver_version())  # 1000 * major + 10 * minor
        driver_version = f"{encoded // 1000}.{encoded % 1000 // 10}"
        gpus = []
        for index in range(driver.Device.count()):
            device = driver.Device(index)
            major, minor = device.compute_capability()
            gpus.append(Gpu(device.name(), f"{major}.{minor}", device.total_memory() >> 20))
    except Exception as exc:  # pycuda.driver.Error: no driver, no device access, ...
        return CudaState(version, init_error=_one_line(exc))
    return CudaState(version, driver_version=driver_version, gpus=tuple(gpus))


def check_python() -> Result:
    version = ".".join(map(str, sys.version_info[:3]))
    return Result("python", "OK", f"{version} ({sys.executable})")


def check_numpy(probe: Probe) -> Result:
    try:
        numpy = probe.import_module("numpy")
    except Exception as exc:
        return Result("numpy", "FAIL", f"not importable ({_one_line(exc)})", "pip install numpy")
    return Result("numpy", "OK", str(numpy.__version__))


def check_tensorrt(probe: Probe, host: GpuHost | None) -> Result:
    try:
        trt = probe.import_module("tensorrt")
    except Exception as exc:
        error = _one_line(exc)
        fix = fix_for("tensorrt", host)
        if "numpy" in error.lower():
            fix = f'{fix}; the error names NumPy: try pip install "numpy<2"'
        if host is None:
            return Result(
                "tensorrt",
                "WARN",
                f"not importable ({error}); no NVIDIA GPU here, ONNX Runtime runs on the CPU",
                f"only on a machine with an NVIDIA GPU: {fix} (see {DOCS})",
            )
        return Result(
            "tensorrt",
            "FAIL",
            f"not importable ({error}); the GPU stays unused",
            f"{fix} (see {DOCS})",
        )
    version = str(trt.__version__)
    if _major(version) >= 11:
        return Result(
            "tensorrt",
            "WARN",
            f"TensorRT {version}: 11.x has no FP16/INT8 builder flags",
            "build fp32 from an ONNX converted to FP16/INT8 first, or pip install "
            f'"tensorrt-cu12<11" (see {DOCS})',
        )
    return Result("tensorrt", "OK", f"TensorRT {version}")


def check_pycuda(cuda: CudaState, host: GpuHost | None) -> Result:
    bad: Status = "FAIL" if host is not None else "WARN"
    if cuda.import_error:
        found = f"not importable ({cuda.import_error})"
        if host is None:
            return Result(
                "pycuda",
                "WARN",
                f"{found}; not needed without an NVIDIA GPU",
                f"only on a machine with an NVIDIA GPU: {fix_for('pycuda', None)}",
            )
        return Result("pycuda", bad, found, f"{fix_for('pycuda', host)} (see {DOCS})")
    if cuda.init_error:
        return Result(
            "pycuda",
            bad,
            f"pycuda {cuda.pycuda_version}; CUDA is not usable ({cuda.init_error})",
            fix_for("cuda", host),
        )
    return Result(
        "pycuda", "OK", f"pycuda {cuda.pycuda_version}, CUDA driver {cuda.driver_version}"
    )


def check_gpu(cuda: CudaState, host: GpuHost | None) -> Result:
    if cuda.gpus:
        found = "; ".join(
            f"GPU {i}: {g.name}, compute capability {g.compute_capability}, "
            f"{g.total_memory_mb} MiB"
            for i, g in enumerate(cuda.gpus)
        )
        return Result("gpu", "OK", found)
    if host is None:
        return Result(
            "gpu", "WARN", "no NVIDIA GPU found: inference runs on the CPU (ONNX Runtime)"
        )
    if cuda.import_error or cuda.init_error:
        return Result(
            "gpu",
            "WARN",
            f"NVIDIA GPU present ({host.evidence}); its name and compute capability need a "
            "working pycuda",
            "see the pycuda line",
        )
    return Result(
        "gpu",
        "FAIL",
        f"NVIDIA GPU present ({host.evidence}) but CUDA sees none",
        fix_for("cuda", host),
    )


def l4t_release(root: Path) -> str:
    """The L4T release from /etc/nv_tegra_release (e.g. "36.4.3"), or ""."""
    try:
        text = (root / "etc/nv_tegra_release").read_text(errors="replace")
    except OSError:
        return ""
    match = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    return f"{match[1]}.{match[2]}" if match else ""


def check_jetson(probe: Probe, host: GpuHost | None) -> Result:
    if host is None or not host.jetson:
        return Result("jetson", "SKIP", "not a Jetson")
    model = device_tree_model(probe.root) or "model unknown (no /proc/device-tree/model)"
    release = l4t_release(probe.root)
    if not release:
        return Result(
            "jetson",
            "WARN",
            f"{model}; L4T release unknown (/etc/nv_tegra_release missing or unreadable)",
            "in a container, use an L4T base image matching the host's JetPack",
        )
    return Result("jetson", "OK", f"{model}, L4T {release}")


def check_kernels(probe: Probe, cuda: CudaState) -> Result:
    if not cuda.gpus:
        return Result("gpu kernels", "SKIP", "needs pycuda and a GPU")
    try:
        check = probe.import_module(KERNELS_MODULE).check_kernels
    except (ImportError, AttributeError) as exc:
        return Result(
            "gpu kernels",
            "WARN",
            f"cannot check kernel loading ({_one_line(exc)})",
            "update yolo_trt_ros; GPU preprocessing may fall back to the CPU letterbox",
        )
    try:
        ok, detail = check()
    except Exception as exc:
        ok, detail = False, f"{type(exc).__name__}: {_one_line(exc)}"
    if ok:
        return Result("gpu kernels", "OK", detail)
    return Result(
        "gpu kernels",
        "WARN",
        f"{detail}; GPU preprocessing falls back to the CPU letterbox",
        f"see {DOCS} (GPU preprocessing)",
    )


def check_engine_cache(model: Path | None) -> Result:
    if model is None:
        return Result(
            "engine cache",
            "SKIP",
            "engines are cached beside the ONNX model (MODEL.<precision>.engine): give --model "
            "to check that its folder is writable",
        )
    if not model.is_file():
        return Result(
            "engine cache", "FAIL", f"model {model}: file not found", "give an existing model"
        )
    if model.suffix == ".engine":
        return Result("engine cache", "OK", f"{model} is an engine: it runs as built, no cache")
    folder = model.resolve().parent
    engine = cached_engine_path(model, "fp16").name
    cached = sorted(p.name for p in folder.glob(f"{model.stem}.*.engine"))
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Result(
            "engine cache",
            "FAIL",
            f"{folder} is not writable ({exc.strerror}): the engine ({engine}) cannot be cached",
            f"make {folder} writable, or build the engine elsewhere (yolo-trt-ros build-engine "
            f"--onnx {model} --fp16 --output DIR/{engine}) and give the node that .engine",
        )
    found = f"{folder} is writable (would write {engine})"
    return Result("engine cache", "OK", f"{found}; cached: {', '.join(cached) or 'none yet'}")


def check_onnxruntime(probe: Probe) -> Result:
    try:
        ort = probe.import_module("onnxruntime")
    except Exception as exc:
        return Result(
            "onnxruntime", "FAIL", f"not importable ({_one_line(exc)})", "pip install onnxruntime"
        )
    providers = ", ".join(ort.get_available_providers())
    return Result("onnxruntime", "OK", f"{ort.__version__}, providers: {providers}")


def check_ros(probe: Probe) -> Result:
    distro = probe.env.get("ROS_DISTRO", "")
    try:
        probe.import_module("rclpy")
    except Exception as exc:
        error = _one_line(exc)
        if not distro:
            return Result(
                "ros",
                "WARN",
                f"ROS 2 not sourced (no ROS_DISTRO), rclpy not importable ({error}): the CLI "
                "works, the yolo_tracker node does not",
                "source /opt/ros/<distro>/setup.bash; in a venv, create it with "
                "--system-site-packages",
            )
        wanted = ROS_PYTHON.get(distro, "")
        here = f"{sys.version_info[0]}.{sys.version_info[1]}"
        fix = "use a venv created with --system-site-packages from the system Python"
        if wanted and wanted != here:
            fix = f"ROS {distro}'s rclpy is built for Python {wanted}, this is {here}: {fix}"
        return Result(
            "ros", "FAIL", f"ROS_DISTRO={distro} but rclpy is not importable ({error})", fix
        )
    return Result("ros", "OK", f"ROS_DISTRO={distro or '(unset)'}, rclpy importable")


def check_fastdds(probe: Probe) -> Result:
    rmw = probe.env.get("RMW_IMPLEMENTATION", "")
    if rmw and "fastrtps" not in rmw and "fastdds" not in rmw:
        return Result("dds transports", "OK", f"RMW_IMPLEMENTATION={rmw}: not Fast DDS")
    value = probe.env.get("FASTDDS_BUILTIN_TRANSPORTS", "")
    if value == "LARGE_DATA":
        return Result("dds transports", "OK", "FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA")
    return Result(
        "dds transports",
        "WARN",
        f"FASTDDS_BUILTIN_TRANSPORTS={value or '(unset)'}: Fast DDS's default transports drop "
        "most best-effort camera frames between processes",
        "export FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA",
    )


def run_checks(probe: Probe, model: Path | None = None) -> list[Result]:
    """Every check, in the order a user fixes them."""
    cuda = probe_cuda(probe)
    host = find_nvidia_gpu(probe.root)
    return [
        check_python(),
        check_numpy(probe),
        check_tensorrt(probe, host),
        check_pycuda(cuda, host),
        check_gpu(cuda, host),
        check_jetson(probe, host),
        check_kernels(probe, cuda),
        check_engine_cache(model),
        check_onnxruntime(probe),
        check_ros(probe),
        check_fastdds(probe),
    ]


def format_text(results: list[Result]) -> str:
    width = max(len(r.check) for r in results)
    lines = []
    for r in results:
        lines.append(f"{r.status:<4}  {r.check:<{width}}  {r.found}")
        if r.fix:
            lines.append(f"{'':<4}  {'':<{width}}  fix: {r.fix}")
    counts = {s: sum(r.status == s for r in results) for s in ("OK", "WARN", "FAIL", "SKIP")}
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items()))
    return "\n".join(lines)


def register(subparsers: Any) -> None:
    """Add ``doctor`` to the ``yolo-trt-ros`` subcommands (``add_subparsers()`` result)."""
    p = subparsers.add_parser(
        "doctor",
        help="check this machine's setup: Python, TensorRT, pycuda, GPU, ROS 2 (run this first)",
        description="Check what the package needs here and print one line per check: OK, WARN "
        "(works, degraded), FAIL (broken) or SKIP (does not apply), what was found and the fix. "
        "Exit status 1 when a check fails.",
    )
    p.add_argument(
        "--model", type=Path, help="also check that the engine cache beside this model is writable"
    )
    p.add_argument("--json", action="store_true", help="print JSON: {ok, checks: [...]}")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    results = run_checks(Probe(), args.model)
    failed = any(r.status == "FAIL" for r in results)
    if args.json:
        print(json.dumps({"ok": not failed, "checks": [asdict(r) for r in results]}, indent=2))
    else:
        print(format_text(results))
    return 1 if failed else 0


def _major(version: str) -> int:
    match = re.match(r"\d+", version)
    return int(match[0]) if match else 0


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
