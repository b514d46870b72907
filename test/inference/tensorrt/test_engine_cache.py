"""Engine cache: reuse on a matching sidecar, rebuild on each mismatching field, refusal of direct
engines."""

from __future__ import annotations

import dataclasses
import fcntl
import json
import multiprocessing
import threading
import time
from pathlib import Path

import pytest

from yolo_trt_ros.inference.tensorrt import engine_cache as ec

PLATFORM = ec.Platform("10.3.0", "Orin", "8.7", 16, 61, "NVIDIA Jetson AGX Orin Developer Kit")
PROFILE = {"images": {"min": [1, 3, 640, 640], "opt": [1, 3, 640, 640], "max": [1, 3, 640, 640]}}


def _onnx(tmp_path: Path, content: bytes = b"onnx-bytes") -> Path:
    path = tmp_path / "yolov8n.onnx"
    path.write_bytes(content)
    return path


def _spec(onnx: Path, **changes: object) -> ec.EngineSpec:
    spec = ec.EngineSpec.for_platform(PLATFORM, ec.sha256_file(onnx), "fp16", PROFILE)
    return dataclasses.replace(spec, **changes)


def _cache(onnx: Path, spec: ec.EngineSpec, plan: bytes = b"plan") -> Path:
    engine = ec.cached_engine_path(onnx, spec.precision)
    engine.write_bytes(plan)
    ec.write_sidecar(engine, spec, {"metadata": {"names": "{0: 'person'}"}})
    return engine


def test_paths() -> None:
    assert ec.cached_engine_path("/m/yolov8n.onnx", "fp16") == Path("/m/yolov8n.fp16.engine")
    assert ec.sidecar_path("/m/yolov8n.fp16.engine") == Path("/m/yolov8n.fp16.engine.json")


def test_sidecar_records_every_field(tmp_path: Path) -> None:
    onnx = _onnx(tmp_path)
    engine = _cache(onnx, _spec(onnx))
    record = json.loads(ec.sidecar_path(engine).read_text())
    assert record["onnx_sha256"] == ec.sha256_file(onnx)
    assert record["tensorrt_version"] == "10.3.0"
    assert record["gpu_name"] == "Orin" and record["compute_capability"] == "8.7"
    assert (record["sm_count"], record["total_memory_gib"]) == (16, 61)
    assert record["device_model"] == "NVIDIA Jetson AGX Orin Developer Kit"
    assert record["precision"] == "fp16"
    assert record["profile"] == PROFILE
    assert record["engine_sha256"] == ec.sha256_file(engine)
    assert record["metadata"] == {"names": "{0: 'person'}"}


def test_reuse_when_every_field_matches(tmp_path: Path) -> None:
    onnx = _onnx(tmp_path)
    engine = _cache(onnx, _spec(onnx))
    decision = ec.decide(onnx, _spec(onnx))
    assert (decision.action, decision.engine_path) == ("reuse", engine)


def test_build_when_no_engine(tmp_path: Path) -> None:
    onnx = _onnx(tmp_path)
    decision = ec.decide(onnx, _spec(onnx))
    assert decision.action == "build" and "no cached engine yolov8n.fp16.engine" in decision.reason


@pytest.mark.parametrize(
    "field, new_value",
    [
        ("onnx_sha256", "0" * 64),
        ("tensorrt_version", "10.4.0"),
        ("gpu_name", "NVIDIA GeForce RTX 4090"),
        ("compute_capability", "8.9"),
        ("sm_count", 8),
        ("total_memory_gib", 30),
        ("device_model", "NVIDIA Jetson Orin NX Engineering Reference Developer Kit"),
        (
            "profile",
            {
                "images": {
                    "min": [1, 3, 640, 640],
                    "opt": [1, 3, 640, 640],
                    "max": [4, 3, 640, 640],
                }
            },
        ),
    ],
)
def test_rebuild_names_the_mismatching_field(
    tmp_path: Path, field: str, new_value: object
) -> None:
    onnx = _onnx(tmp_path)
    _cache(onnx, _spec(onnx))
    decision = ec.decide(onnx, _spec(onnx, **{field: new_value}))
    assert decision.action == "build"
    assert f"stale: {field}: engine has" in decision.reason
    assert decision.reason.count(": engine has") == 1  # only that field


def test_precision_selects_its_own_cache_slot(tmp_path: Path) -> None:
    onnx = _onnx(tmp_path)
    _cache(onnx, _spec(onnx))
    assert (
        ec.decide(onnx, _spec(onnx, precision="int8")).reason
        == "no cached engine yolov8n.int8.engine"
    )
    # a sidecar whose precision differs from its slot's name is stale too
    engine = ec.cached_engine_path(onnx, "fp32")
    engine.write_bytes(b"plan")
    ec.write_sidecar(engine, _spec(onnx, precision="fp16"))
    decision = ec.decide(onnx, _spec(onnx, precision="fp32"))
    assert (
        decision.action == "build"
        and "precision: engine has 'fp16', expected 'fp32'" in decision.reason
    )


def test_changed_onnx_content_rebuilds(tmp_path: Path) -> None:
    onnx = _onnx(tmp_path)
    _cache(onnx, _spec(onnx))
    onnx.write_bytes(b"retrained weights")
    decision = ec.decide(onnx, _spec(onnx))
    assert decision.action == "build" and "onnx_sha256" in decision.reason


def test_rebuild_on_missing_corrupt_or_modified_sidecar(tmp_path: Path) -> None:
    onnx = _onnx(tmp_path)
    engine = _cache(onnx, _spec(onnx))
    sidecar = ec.sidecar_path(engine)
    engine.write_bytes(b"truncated")
    assert "differs from the sha256" in ec.decide(onnx, _spec(onnx)).reason
    sidecar.write_text("{not json")
    assert "unreadable" in ec.decide(onnx, _spec(onnx)).reason
    sidecar.write_text(json.dumps({"precision": "fp16"}))
    assert "lacks onnx_sha256" in ec.decide(onnx, _spec(onnx)).reason
    sidecar.unlink()
    decision = ec.decide(onnx, _spec(onnx))
    assert decision.action == "build" and "no sidecar yolov8n.fp16.engine.json" in decision.reason


def test_direct_engine_accepted_when_platform_matches(tmp_path: Path) -> None:
    onnx = _onnx(tmp_path)
    engine = _cache(onnx, _spec(onnx))
    assert ec.check_engine(engine, PLATFORM)["precision"] == "fp16"


@pytest.mark.parametrize(
    "field, value",
    [
        ("tensorrt_version", "8.6.1"),
        ("gpu_name", "Xavier"),
        ("compute_capability", "7.2"),
        ("sm_count", 4),
        ("total_memory_gib", 7),
        ("device_model", "NVIDIA Jetson Orin Nano Developer Kit"),
    ],
)
def test_direct_engine_refused_on_platform_mismatch(
    tmp_path: Path, field: str, value: object
) -> None:
    onnx = _onnx(tmp_path)
    engine = _cache(onnx, _spec(onnx))
    other = dataclasses.replace(PLATFORM, **{field: value})
    with pytest.raises(
        ec.EngineRefused, match=f"built for another platform \\({field}: engine has"
    ) as info:
        ec.check_engine(engine, other)
    assert "build-engine --onnx" in str(info.value)


def test_direct_engine_refused_without_sidecar_or_when_modified(tmp_path: Path) -> None:
    engine = tmp_path / "exported.engine"
    with pytest.raises(ec.EngineRefused, match="file not found"):
        ec.check_engine(engine, PLATFORM)
    engine.write_bytes(b"plan")
    with pytest.raises(ec.EngineRefused, match="no sidecar exported.engine.json"):
        ec.check_engine(engine, PLATFORM)
    ec.write_sidecar(engine, _spec(_onnx(tmp_path)))
    engine.write_bytes(b"another plan")
    with pytest.raises(ec.EngineRefused, match="differs from the sha256"):
        ec.check_engine(engine, PLATFORM)


def test_resolve_builds_once_then_reuses(tmp_path: Path) -> None:
    onnx = _onnx(tmp_path)
    builds: list[Path] = []
    logs: list[str] = []

    def build(src: Path, engine: Path, spec: ec.EngineSpec) -> dict[str, object]:
        builds.append(engine)
        engine.write_bytes(b"plan for " + spec.precision.encode())
        return {"metadata": {"stride": "32"}}

    def resolve(platform: ec.Platform) -> tuple[Path, dict]:
        def spec_for(p: Path) -> ec.EngineSpec:
            return dataclasses.replace(_spec(p), tensorrt_version=platform.tensorrt_version)

        return ec.resolve_engine(onnx, spec_for, platform, build, logs.append)

    path, record = resolve(PLATFORM)
    assert builds == [path] and record["metadata"] == {"stride": "32"}
    assert "building" in logs[-1] and "no cached engine" in logs[-1]
    assert resolve(PLATFORM)[0] == path and len(builds) == 1
    assert "reusing" in logs[-1]
    upgraded = dataclasses.replace(PLATFORM, tensorrt_version="10.4.0")
    resolve(upgraded)
    assert len(builds) == 2
    assert "tensorrt_version: engine has '10.3.0', expected '10.4.0'" in logs[-1]
    # the engine itself given directly: checked against the platform, refused on the old one
    assert ec.resolve_engine(path, _spec, upgraded, build, logs.append)[0] == path
    with pytest.raises(ec.EngineRefused):
        ec.resolve_engine(path, _spec, PLATFORM, build, logs.append)


def test_profile_for_dynamic_and_static_inputs() -> None:
    assert ec.profile_for([("images", [1, 3, 640, 640])], 8, (320, 320)) == PROFILE
    dynamic = ec.profile_for([("images", ["batch", 3, "h", "w"])], 4, (480, 640))
    assert dynamic == {
        "images": {"min": [1, 3, 480, 640], "opt": [1, 3, 480, 640], "max": [4, 3, 480, 640]}
    }
    with pytest.raises(ValueError, match="max_batch"):
        ec.profile_for([("images", [1, 3, 640, 640])], 0, (640, 640))
    with pytest.raises(ValueError, match="need \\[batch, 3, height, width\\]"):
        ec.profile_for([("tokens", ["batch", "seq"])], 1, (640, 640))


def test_rect_profile_spans_stride_to_nominal_size_with_the_camera_input_as_opt() -> None:
    rect = ec.profile_for([("images", ["batch", 3, "h", "w"])], 2, (640, 640), (32, (480, 640)))
    assert rect == {
        "images": {"min": [1, 3, 32, 32], "opt": [1, 3, 480, 640], "max": [2, 3, 640, 640]}
    }
    # static sides stay fixed; an opt size outside the range is refused
    assert ec.profile_for([("images", [1, 3, 640, 640])], 1, (640, 640), (32, (480, 640))) == {
        "images": {"min": [1, 3, 640, 640], "opt": [1, 3, 640, 640], "max": [1, 3, 640, 640]}
    }
    with pytest.raises(ValueError, match="opt size 704 outside"):
        ec.profile_for([("images", [1, 3, "h", "w"])], 1, (640, 640), (32, (480, 704)))


def test_unknown_precision_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="precision must be one of fp32, fp16, int8"):
        ec.EngineSpec.for_platform(PLATFORM, "x", "bf16", PROFILE)


def test_read_engine_plan_plain_and_ultralytics_header(tmp_path: Path) -> None:
    plain = tmp_path / "plain.engine"
    plain.write_bytes(b"ftrt\x00\x01binary plan")
    assert ec.read_engine_plan(plain) == (b"ftrt\x00\x01binary plan", {})
    meta = {
        "names": {"0": "person", "1": "bicycle"},
        "imgsz": [640, 640],
        "stride": 32,
        "task": "detect",
    }
    text = json.dumps(meta).encode()
    wrapped = tmp_path / "ultralytics.engine"
    wrapped.write_bytes(len(text).to_bytes(4, "little", signed=True) + text + b"ftrt plan")
    plan, metadata = ec.read_engine_plan(wrapped)
    assert plan == b"ftrt plan"
    assert metadata == {
        "names": "{0: 'person', 1: 'bicycle'}",
        "imgsz": "[640, 640]",
        "stride": "32",
        "task": "detect",
    }
    from yolo_trt_ros.detection.class_names import names_from_metadata

    assert names_from_metadata(metadata) == ["person", "bicycle"]


def test_sidecar_without_device_fields_is_stale(tmp_path: Path) -> None:
    """A sidecar from before SM count, memory and board model were recorded cannot tell Orin
    modules apart: the cached engine is rebuilt, a direct engine refused."""
    onnx = _onnx(tmp_path)
    engine = _cache(onnx, _spec(onnx))
    sidecar = ec.sidecar_path(engine)
    record = json.loads(sidecar.read_text())
    for field in ("sm_count", "total_memory_gib", "device_model"):
        del record[field]
    sidecar.write_text(json.dumps(record))
    decision = ec.decide(onnx, _spec(onnx))
    assert decision.action == "build"
    assert "sm_count: not recorded (older sidecar), expected 16" in decision.reason
    assert "device_model: not recorded" in decision.reason
    with pytest.raises(ec.EngineRefused, match="built for another platform \\(sm_count: not rec"):
        ec.check_engine(engine, PLATFORM)


def test_engine_that_failed_to_load_is_rebuilt(tmp_path: Path) -> None:
    onnx = _onnx(tmp_path)
    engine = _cache(onnx, _spec(onnx))
    failed = ec.sha256_file(engine)
    decision = ec.decide(onnx, _spec(onnx), failed_sha256=failed)
    assert decision.action == "build" and "failed to deserialize" in decision.reason
    engine.write_bytes(b"a plan another process rebuilt meanwhile")
    ec.write_sidecar(engine, _spec(onnx))
    assert ec.decide(onnx, _spec(onnx), failed_sha256=failed).action == "reuse"


def _build_slowly(onnx: Path, count: Path) -> tuple[str, str]:
    """resolve_engine of ``onnx`` whose build takes 0.3 s and appends a line to ``count``."""

    def build(src: Path, engine: Path, spec: ec.EngineSpec) -> dict[str, object]:
        with open(count, "a") as f:
            f.write("build\n")
        time.sleep(0.3)
        ec.write_atomic(engine, b"plan")
        return {}

    path, record = ec.resolve_engine(onnx, _spec, PLATFORM, build, lambda _: None)
    return str(path), record["engine_sha256"]


def _race_worker(onnx: str, count: str, start: float, results: multiprocessing.Queue) -> None:
    time.sleep(max(0.0, start - time.time()))
    results.put(_build_slowly(Path(onnx), Path(count)))


def test_concurrent_processes_build_once(tmp_path: Path) -> None:
    onnx = _onnx(tmp_path)
    count = tmp_path / "builds.txt"
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    start = time.time() + 0.5  # the three forks are up by then: they race for the lock
    workers = [
        context.Process(target=_race_worker, args=(str(onnx), str(count), start, results))
        for _ in range(3)
    ]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert count.read_text() == "build\n"  # one built, the others reused after the lock
    engine = ec.cached_engine_path(onnx, "fp16")
    assert outcomes == [(str(engine), ec.sha256_file(engine))] * 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "builds.txt",
        "yolov8n.fp16.engine",
        "yolov8n.fp16.engine.json",
        "yolov8n.fp16.engine.lock",
        "yolov8n.onnx",
    ]  # no temporary files left


def test_waits_for_the_lock_then_reuses(tmp_path: Path) -> None:
    onnx = _onnx(tmp_path)
    engine = ec.cached_engine_path(onnx, "fp16")
    logs: list[str] = []
    result: list[Path] = []

    def build(src: Path, path: Path, spec: ec.EngineSpec) -> dict[str, object]:
        raise AssertionError("must reuse the engine built while it waited")

    with open(ec.lock_path(engine), "a") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)  # another process is building
        thread = threading.Thread(
            target=lambda: result.append(
                ec.resolve_engine(onnx, _spec, PLATFORM, build, logs.append)[0]
            )
        )
        thread.start()
        deadline = time.monotonic() + 10
        while not any("waiting for another process" in line for line in logs):
            assert time.monotonic() < deadline and thread.is_alive()
            time.sleep(0.01)
        _cache(onnx, _spec(onnx))
        fcntl.flock(held.fileno(), fcntl.LOCK_UN)
    thread.join(timeout=10)
    assert result == [engine]
    assert "built meanwhile by another process" in logs[-1]


def test_write_atomic_replaces_whole_files(tmp_path: Path) -> None:
    target = tmp_path / "model.fp16.engine"
    target.write_bytes(b"old")
    ec.write_atomic(target, b"new plan")
    assert target.read_bytes() == b"new plan"
    assert [p.name for p in tmp_path.iterdir()] == ["model.fp16.engine"]
