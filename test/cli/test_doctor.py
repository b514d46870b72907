"""``yolo-trt-ros doctor``: each check on simulated machines (a CPU PC, an RTX PC without TensorRT,
a Jetson Orin without pycuda), and the real command on this machine."""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path

import pytest

import fake_tensorrt as fake
from fake_pycuda import make_fake_pycuda
from yolo_trt_ros.cli import doctor
from yolo_trt_ros.cli.doctor import Probe, Result, run_checks
from yolo_trt_ros.cli.main import main

ORIN = {
    "proc/device-tree/model": b"NVIDIA Jetson AGX Orin Developer Kit\x00",
    "etc/nv_tegra_release": b"# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, "
    b"EABI: aarch64, DATE: Wed Jan  8 01:49:37 UTC 2025\n",
}
RTX = {"dev/nvidia0": b"", "dev/nvidiactl": b"", "proc/driver/nvidia/version": b"NVRM 550.54"}
MISSING = object()


def tree(root: Path, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    return root


def importer(modules: dict[str, object]) -> Callable[[str], types.ModuleType]:
    """An import function: ``modules`` by name (an exception is raised, MISSING is absent); numpy
    and onnxruntime are the real ones unless given."""

    def import_module(name: str) -> types.ModuleType:
        value = modules.get(name, MISSING)
        if isinstance(value, BaseException):
            raise value
        if isinstance(value, types.ModuleType):
            return value
        if value is MISSING and name in ("numpy", "onnxruntime"):
            return importlib.import_module(name)
        raise ModuleNotFoundError(f"No module named {name!r}")

    return import_module


def gpu_pycuda(name: str, capability: tuple[int, int], memory: int) -> dict[str, object]:
    package, driver, _ = make_fake_pycuda(name, capability, memory)
    package.VERSION_TEXT = "2024.1.2"
    driver.get_driver_version = lambda: 12040
    return {"pycuda": package, "pycuda.driver": driver}


def kernels_module(check: Callable[[], tuple[bool, str]] | None) -> types.ModuleType:
    module = types.ModuleType(doctor.KERNELS_MODULE)
    if check is not None:
        module.check_kernels = check
    return module


def by_check(results: list[Result]) -> dict[str, Result]:
    return {r.check: r for r in results}


def test_cpu_machine_without_tensorrt_warns_and_does_not_fail(tmp_path: Path) -> None:
    probe = Probe(tmp_path, {}, importer({}))
    results = by_check(run_checks(probe))
    assert list(results) == [
        "python",
        "numpy",
        "tensorrt",
        "pycuda",
        "gpu",
        "jetson",
        "gpu kernels",
        "engine cache",
        "onnxruntime",
        "ros",
        "dds transports",
    ]
    assert results["python"].status == "OK" and results["numpy"].status == "OK"
    trt = results["tensorrt"]
    assert trt.status == "WARN" and "No module named 'tensorrt'" in trt.found
    assert trt.fix == (
        'only on a machine with an NVIDIA GPU: pip install "tensorrt-cu12<11" '
        "(see docs/tensorrt.md)"
    )
    assert results["pycuda"].status == "WARN"
    assert results["gpu"] == Result(
        "gpu", "WARN", "no NVIDIA GPU found: inference runs on the CPU (ONNX Runtime)"
    )
    assert [results[c].status for c in ("jetson", "gpu kernels", "engine cache")] == ["SKIP"] * 3
    assert results["onnxruntime"].status == "OK"
    assert "CPUExecutionProvider" in results["onnxruntime"].found
    assert results["ros"].status == "WARN" and "source /opt/ros/" in results["ros"].fix
    assert results["dds transports"].fix == "export FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA"
    assert not any(r.status == "FAIL" for r in results.values())


def test_rtx_machine_without_tensorrt_fails_with_the_fix(tmp_path: Path) -> None:
    calls: list[str] = []

    def check_kernels() -> tuple[bool, str]:
        calls.append("check")
        return True, "kernels loaded from PTX (no nvcc)"

    modules = {
        **gpu_pycuda("NVIDIA GeForce RTX 4090", (8, 9), 24564 << 20),
        doctor.KERNELS_MODULE: kernels_module(check_kernels),
    }
    results = by_check(run_checks(Probe(tree(tmp_path, RTX), {}, importer(modules))))
    trt = results["tensorrt"]
    assert (trt.status, trt.fix) == (
        "FAIL",
        'pip install "tensorrt-cu12<11" (see docs/tensorrt.md)',
    )
    assert trt.found == "not importable (No module named 'tensorrt'); the GPU stays unused"
    assert results["pycuda"] == Result("pycuda", "OK", "pycuda 2024.1.2, CUDA driver 12.4")
    assert results["gpu"] == Result(
        "gpu", "OK", "GPU 0: NVIDIA GeForce RTX 4090, compute capability 8.9, 24564 MiB"
    )
    assert results["jetson"].status == "SKIP"
    assert results["gpu kernels"] == Result(
        "gpu kernels", "OK", "kernels loaded from PTX (no nvcc)"
    )
    assert calls == ["check"]


def test_jetson_without_pycuda(tmp_path: Path) -> None:
    kernels_called: list[bool] = []

    def check_kernels() -> tuple[bool, str]:
        kernels_called.append(True)
        return True, ""

    modules = {
        "tensorrt": fake.make_fake_tensorrt("10.3.0"),
        doctor.KERNELS_MODULE: kernels_module(check_kernels),
    }
    probe = Probe(tree(tmp_path, ORIN), {"ROS_DISTRO": "humble"}, importer(modules))
    results = by_check(run_checks(probe))
    assert results["tensorrt"] == Result("tensorrt", "OK", "TensorRT 10.3.0")
    pycuda = results["pycuda"]
    assert pycuda.status == "FAIL" and pycuda.found == "not importable (No module named 'pycuda')"
    assert pycuda.fix.startswith("PATH=/usr/local/cuda/bin:$PATH pip install --no-build-isolation")
    gpu = results["gpu"]
    assert gpu.status == "WARN" and "Jetson 'NVIDIA Jetson AGX Orin Developer Kit'" in gpu.found
    assert results["jetson"] == Result(
        "jetson", "OK", "NVIDIA Jetson AGX Orin Developer Kit, L4T 36.4.3"
    )
    assert results["gpu kernels"].status == "SKIP" and not kernels_called


def test_jetson_tensorrt_missing_names_jetpack(tmp_path: Path) -> None:
    probe = Probe(tree(tmp_path, ORIN), {}, importer({}))
    trt = by_check(run_checks(probe))["tensorrt"]
    assert trt.status == "FAIL"
    assert trt.fix.startswith("sudo apt install python3-libnvinfer (JetPack's TensorRT)")
    assert "--system-site-packages" in trt.fix


def test_jetson_in_a_container_without_the_release_file(tmp_path: Path) -> None:
    files = {"proc/device-tree/model": ORIN["proc/device-tree/model"]}
    result = doctor.check_jetson(Probe(tree(tmp_path, files)), doctor.find_nvidia_gpu(tmp_path))
    assert result.status == "WARN" and "L4T release unknown" in result.found


def test_tensorrt_11_warns_about_the_builder_flags(tmp_path: Path) -> None:
    probe = Probe(tmp_path, {}, importer({"tensorrt": fake.make_fake_tensorrt("11.1.0")}))
    result = doctor.check_tensorrt(probe, None)
    assert result.status == "WARN" and result.found.startswith("TensorRT 11.1.0: 11.x has no")
    assert 'pip install "tensorrt-cu12<11"' in result.fix


def test_cuda_init_failure_on_a_gpu_machine(tmp_path: Path) -> None:
    modules = gpu_pycuda("NVIDIA RTX A2000", (8, 6), 6 << 30)
    driver = modules["pycuda.driver"]

    def broken() -> None:
        raise driver.Error("cuInit failed: no CUDA-capable device is detected")

    driver.init = broken
    results = by_check(run_checks(Probe(tree(tmp_path, RTX), {}, importer(modules))))
    pycuda = results["pycuda"]
    assert pycuda.status == "FAIL" and "no CUDA-capable device is detected" in pycuda.found
    assert "--gpus all" in pycuda.fix
    assert results["gpu"].status == "WARN" and results["gpu kernels"].status == "SKIP"


@pytest.mark.parametrize(
    ("module", "found"),
    [
        (ModuleNotFoundError("No module named 'pycuda.compiler'"), "cannot check kernel loading"),
        (kernels_module(None), "cannot check kernel loading"),
        (kernels_module(lambda: (False, "PTX load failed: CUDA_ERROR_INVALID_PTX")), "PTX load"),
    ],
)
def test_kernel_problems_are_warnings(module: object, found: str) -> None:
    probe = Probe(Path("/nonexistent"), {}, importer({doctor.KERNELS_MODULE: module}))
    cuda = doctor.CudaState(
        "2024.1.2", driver_version="12.6", gpus=(doctor.Gpu("Orin", "8.7", 1),)
    )
    result = doctor.check_kernels(probe, cuda)
    assert result.status == "WARN" and result.found.startswith(found) and result.fix


def test_engine_cache(tmp_path: Path) -> None:
    model = tmp_path / "yolov8n.onnx"
    model.write_bytes(b"onnx")
    (tmp_path / "yolov8n.fp16.engine").write_bytes(b"plan")
    result = doctor.check_engine_cache(model)
    assert result == Result(
        "engine cache",
        "OK",
        f"{tmp_path} is writable (would write yolov8n.fp16.engine); cached: yolov8n.fp16.engine",
    )
    assert not list(tmp_path.glob(".doctor-*"))
    assert doctor.check_engine_cache(tmp_path / "missing.onnx").status == "FAIL"
    assert doctor.check_engine_cache(tmp_path / "yolov8n.fp16.engine").status == "OK"
    assert doctor.check_engine_cache(None).status == "SKIP"


def test_engine_cache_in_a_read_only_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tmp_path / "yolov8n.onnx"
    model.write_bytes(b"onnx")

    def read_only(**kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(kwargs["dir"]))

    monkeypatch.setattr(doctor.tempfile, "NamedTemporaryFile", read_only)
    result = doctor.check_engine_cache(model)
    assert result.status == "FAIL"
    assert result.found == (
        f"{tmp_path} is not writable (Permission denied): the engine (yolov8n.fp16.engine) "
        "cannot be cached"
    )
    assert "yolo-trt-ros build-engine --onnx" in result.fix


def test_ros_built_for_another_python() -> None:
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    distro = next(d for d, v in doctor.ROS_PYTHON.items() if v != here)
    probe = Probe(env={"ROS_DISTRO": distro}, import_module=importer({}))
    result = doctor.check_ros(probe)
    assert result.status == "FAIL" and result.found.startswith(f"ROS_DISTRO={distro} but rclpy")
    assert result.fix.startswith(
        f"ROS {distro}'s rclpy is built for Python {doctor.ROS_PYTHON[distro]}, this is {here}"
    )
    ros = doctor.check_ros(
        Probe(
            env={"ROS_DISTRO": distro},
            import_module=importer({"rclpy": types.ModuleType("rclpy")}),
        )
    )
    assert ros == Result("ros", "OK", f"ROS_DISTRO={distro}, rclpy importable")


@pytest.mark.parametrize(
    ("env", "status"),
    [
        ({"FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"}, "OK"),
        ({"RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}, "OK"),
        (
            {"RMW_IMPLEMENTATION": "rmw_fastrtps_cpp", "FASTDDS_BUILTIN_TRANSPORTS": "DEFAULT"},
            "WARN",
        ),
        ({}, "WARN"),
    ],
)
def test_fastdds_transports(env: dict[str, str], status: str) -> None:
    assert doctor.check_fastdds(Probe(env=env)).status == status


def _doctor(*args: str) -> tuple[int, str]:
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        status = main(["doctor", *args])
    return status, stdout.getvalue()


def test_exit_status_and_json(tmp_path: Path) -> None:
    status, text = _doctor("--json", "--model", str(tmp_path / "missing.onnx"))
    report = json.loads(text)
    assert status == 1 and report["ok"] is False
    cache = next(c for c in report["checks"] if c["check"] == "engine cache")
    assert cache["status"] == "FAIL" and set(cache) == {"check", "status", "found", "fix"}
    status, text = _doctor()
    assert text.splitlines()[-1].endswith(" SKIP")
    assert status == int(any(line.startswith("FAIL") for line in text.splitlines()))


def test_the_real_command_on_this_machine() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "yolo_trt_ros.cli.main", "doctor", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(result.stdout)
    assert result.returncode == (0 if report["ok"] else 1), result.stderr
    trt = next(c for c in report["checks"] if c["check"] == "tensorrt")
    if trt["status"] != "OK":  # TensorRT is not installed here
        assert trt["status"] in ("WARN", "FAIL") and "not importable" in trt["found"]
        assert "tensorrt" in trt["fix"] or "libnvinfer" in trt["fix"]
