"""Which serialized TensorRT engine may be loaded: cache next to the ONNX, JSON sidecars,
reuse/rebuild/refuse.

A TensorRT engine only runs on the TensorRT version and GPU it was built for, with the shapes of
its profile. For an ``.onnx`` model the engine is built once and cached as
``<stem>.<precision>.engine`` beside it, with a sidecar ``<engine>.json`` recording what it was
built from and for (``EngineSpec``) plus the engine's own sha256. A cached engine is reused only
when every field matches; otherwise it is rebuilt and the reason names the field. An ``.engine``
given directly must have a sidecar that matches this machine, or it is refused: it is never
deserialized blindly. No TensorRT import here: the build step is passed in.

The platform is the TensorRT version and the GPU: name, compute capability, SM count, total memory
(GiB) and the device-tree model (``/proc/device-tree/model``; empty on x86), since every Jetson
Orin module reports "Orin" and compute 8.7. A sidecar written before the last three fields existed
does not match (the cached engine is rebuilt, a direct engine is refused), because it cannot say
which module it was built on.

Builders of the same cache slot (several nodes of one launch) serialize on an exclusive
``fcntl.flock`` of ``<engine>.lock`` and re-check the cache after taking it, so one builds and the
others reuse; engine and sidecar are written under unique temporary names and renamed into place.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from yolo_trt_ros.inference.onnx_info import Dim

PRECISIONS = ("fp32", "fp16", "int8")
SIDECAR_FORMAT = 2
PLATFORM_FIELDS = (
    "tensorrt_version",
    "gpu_name",
    "compute_capability",
    "sm_count",
    "total_memory_gib",
    "device_model",
)
"""Fields an engine shares with the machine that runs it."""
REQUIRED_FIELDS = ("onnx_sha256", *PLATFORM_FIELDS[:3], "precision", "profile", "engine_sha256")
"""Fields without which a sidecar is unreadable (those of every sidecar format)."""
SPEC_FIELDS = ("onnx_sha256", *PLATFORM_FIELDS, "precision", "profile")
"""Fields a cached engine must match to be reused, in the order mismatches are reported."""

Profile = Mapping[str, Mapping[str, Sequence[int]]]
"""Optimization profile: input name -> {"min": shape, "opt": shape, "max": shape}."""


class EngineRefused(RuntimeError):
    """An engine file that must not be loaded here; the message names the file and the reason."""


@dataclass(frozen=True)
class Platform:
    """What this machine runs: TensorRT version and the GPU (name, compute capability
    "major.minor", SM count, total memory rounded to GiB, device-tree model; 0 or "" where
    unknown)."""

    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    sm_count: int = 0
    total_memory_gib: int = 0
    device_model: str = ""


@dataclass(frozen=True)
class EngineSpec:
    """Everything a cached engine must have been built from and for."""

    onnx_sha256: str
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    precision: str
    profile: Profile
    sm_count: int = 0
    total_memory_gib: int = 0
    device_model: str = ""

    @classmethod
    def for_platform(
        cls, platform: Platform, onnx_sha256: str, precision: str, profile: Profile
    ) -> EngineSpec:
        if precision not in PRECISIONS:
            raise ValueError(
                f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}"
            )
        return cls(
            onnx_sha256,
            platform.tensorrt_version,
            platform.gpu_name,
            platform.compute_capability,
            precision,
            profile,
            platform.sm_count,
            platform.total_memory_gib,
            platform.device_model,
        )

    def record(self) -> dict[str, Any]:
        """JSON-ready fields (profile shapes as lists)."""
        out = asdict(self)
        out["profile"] = _normalized_profile(self.profile)
        return out


@dataclass(frozen=True)
class CacheDecision:
    """What to do with the cache slot of an ONNX model: ``reuse`` the engine or ``build`` it, and
    why."""

    action: str
    engine_path: Path
    reason: str


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cached_engine_path(onnx_path: str | Path, precision: str) -> Path:
    """``model.onnx`` -> ``model.<precision>.engine`` in the same folder."""
    onnx_path = Path(onnx_path)
    return onnx_path.with_name(f"{onnx_path.stem}.{precision}.engine")


def sidecar_path(engine_path: str | Path) -> Path:
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".json")


def profile_for(
    inputs: Sequence[tuple[str, Sequence[Dim]]],
    max_batch: int,
    imgsz: tuple[int, int],
    rect: tuple[int, tuple[int, int]] | None = None,
) -> Profile:
    """Optimization profile for the model inputs: batch 1..``max_batch`` (opt 1) where the batch is
    dynamic; channels 3; a dynamic height/width fixed to ``imgsz``, or with ``rect`` = (stride,
    opt_hw) spanning ``stride`` .. ``imgsz`` with opt ``opt_hw`` (every rectangular letterbox
    size fits)."""
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    profile: dict[str, dict[str, list[int]]] = {}
    for name, shape in inputs:
        if len(shape) != 4:
            raise ValueError(
                f"input '{name}' has shape {list(shape)}: need [batch, 3, height, width]"
            )
        batch, channels, *sides = (d if isinstance(d, int) and d > 0 else None for d in shape)
        low: list[int] = []
        opt: list[int] = []
        high: list[int] = []
        for i, side in enumerate(sides):
            if side is not None:
                ranges = (side, side, side)
            elif rect is not None:
                ranges = (rect[0], rect[1][i], imgsz[i])
            else:
                ranges = (imgsz[i], imgsz[i], imgsz[i])
            if not ranges[0] <= ranges[1] <= ranges[2]:
                raise ValueError(f"input '{name}': opt size {ranges[1]} outside {ranges}")
            for dims, value in zip((low, opt, high), ranges, strict=True):
                dims.append(value)
        batches = (1, 1, max_batch) if batch is None else (batch, batch, batch)
        profile[name] = {
            key: [b, channels or 3, *dims]
            for key, b, dims in zip(("min", "opt", "max"), batches, (low, opt, high), strict=True)
        }
    return profile


def write_sidecar(
    engine_path: str | Path, spec: EngineSpec, extra: Mapping[str, Any] | None = None
) -> Path:
    """Write ``<engine>.json`` for a freshly written engine (spec + engine sha256 + ``extra``, e.g.
    metadata)."""
    record: dict[str, Any] = {
        "format": SIDECAR_FORMAT,
        **spec.record(),
        "engine_sha256": sha256_file(engine_path),
    }
    record.update(extra or {})
    path = sidecar_path(engine_path)
    write_atomic(path, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
    return path


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a uniquely named file beside ``path`` and rename it over ``path``, so
    readers see the old or the new content and concurrent writers never share a temporary file.
    The file gets the usual permissions (0o666 less the umask)."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def lock_path(engine_path: str | Path) -> Path:
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + ".lock")


@contextmanager
def build_lock(engine_path: Path, log: Callable[[str], None]) -> Iterator[None]:
    """Hold the exclusive lock on ``<engine>.lock`` (waiting, with a log line, while another
    process builds the same engine). The lock file stays: removing it would race."""
    path = lock_path(engine_path)
    with open(path, "a") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"TensorRT engine cache: waiting for another process building {engine_path.name}")
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def read_sidecar(engine_path: str | Path) -> dict[str, Any]:
    """The sidecar record of ``engine_path``; EngineRefused when it is missing, unreadable or
    incomplete."""
    path = sidecar_path(engine_path)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise EngineRefused(
            f"engine {engine_path}: no sidecar {path.name} saying which TensorRT version and GPU "
            "it was built for"
        ) from None
    except (OSError, ValueError) as exc:
        raise EngineRefused(f"engine {engine_path}: sidecar {path} is unreadable ({exc})") from exc
    missing = [f for f in REQUIRED_FIELDS if not isinstance(record, dict) or f not in record]
    if missing:
        raise EngineRefused(f"engine {engine_path}: sidecar {path} lacks {', '.join(missing)}")
    return dict(record)


def mismatches(
    expected: Mapping[str, Any], recorded: Mapping[str, Any], fields: Sequence[str]
) -> list[str]:
    """One ``field: engine has X, expected Y`` line per differing field, in ``fields`` order (a
    field the sidecar lacks: ``field: not recorded (older sidecar), expected Y``)."""
    out = []
    for name in fields:
        want, have = expected[name], recorded.get(name)
        if name not in recorded:
            out.append(f"{name}: not recorded (older sidecar), expected {_short(want)}")
            continue
        if name == "profile":
            want, have = _normalized_profile(want), _normalized_profile(have or {})
        if want != have:
            out.append(f"{name}: engine has {_short(have)}, expected {_short(want)}")
    return out


def decide(
    onnx_path: str | Path, spec: EngineSpec, failed_sha256: str | None = None
) -> CacheDecision:
    """Reuse the cached engine of ``onnx_path`` only if its sidecar matches ``spec`` field by
    field and it is not the engine (sha256 ``failed_sha256``) that TensorRT failed to load."""
    engine = cached_engine_path(onnx_path, spec.precision)
    if not engine.is_file():
        return CacheDecision("build", engine, f"no cached engine {engine.name}")
    try:
        record = read_sidecar(engine)
    except EngineRefused as exc:
        return CacheDecision(
            "build",
            engine,
            str(exc).replace(f"engine {engine}: ", f"cached engine {engine.name}: "),
        )
    diff = mismatches(spec.record(), record, SPEC_FIELDS)
    if diff:
        return CacheDecision(
            "build", engine, f"cached engine {engine.name} is stale: {'; '.join(diff)}"
        )
    if sha256_file(engine) != record["engine_sha256"]:
        return CacheDecision(
            "build", engine, f"cached engine {engine.name} differs from the sha256 in its sidecar"
        )
    if record["engine_sha256"] == failed_sha256:
        return CacheDecision("build", engine, f"cached engine {engine.name} failed to deserialize")
    return CacheDecision(
        "reuse", engine, f"cached engine {engine.name} matches {', '.join(SPEC_FIELDS)}"
    )


def check_engine(engine_path: str | Path, platform: Platform) -> dict[str, Any]:
    """Check an ``.engine`` given directly against this machine; returns its sidecar record or
    raises EngineRefused naming the reason (missing file or sidecar, modified engine, other
    TensorRT version or GPU)."""
    engine_path = Path(engine_path)
    if not engine_path.is_file():
        raise EngineRefused(f"engine {engine_path}: file not found")
    record = read_sidecar(engine_path)
    diff = mismatches(asdict(platform), record, PLATFORM_FIELDS)
    if diff:
        raise EngineRefused(
            f"engine {engine_path} was built for another platform ({'; '.join(diff)}); rebuild it "
            "here with "
            f"`yolo-trt-ros build-engine --onnx MODEL.onnx` or give the node the .onnx"
        )
    if sha256_file(engine_path) != record["engine_sha256"]:
        raise EngineRefused(
            f"engine {engine_path} differs from the sha256 in its sidecar (modified or truncated)"
        )
    return record


def resolve_engine(
    model_path: str | Path,
    spec_for: Callable[[Path], EngineSpec],
    platform: Platform,
    build: Callable[[Path, Path, EngineSpec], Mapping[str, Any]],
    log: Callable[[str], None],
    failed_sha256: str | None = None,
) -> tuple[Path, dict[str, Any]]:
    """The engine to load for ``model_path`` (.onnx or .engine) and its sidecar record.

    For an ``.onnx``: ``spec_for(onnx)`` says what the engine must match; a matching cached engine
    is reused (unless it is the engine ``failed_sha256`` that did not deserialize), otherwise,
    under ``build_lock`` and after checking again, ``build(onnx, engine_path, spec)`` writes the
    engine (returning extra sidecar fields) and the sidecar is written after it. Each decision is
    passed to ``log``. An ``.engine`` goes through ``check_engine``.
    """
    model_path = Path(model_path)
    if model_path.suffix.lower() != ".onnx":
        record = check_engine(model_path, platform)
        log(f"engine {model_path}: sidecar matches this machine ({_platform_text(platform)})")
        return model_path, record
    spec = spec_for(model_path)
    decision = decide(model_path, spec, failed_sha256)
    if decision.action == "reuse":
        log(f"TensorRT engine cache: reusing {decision.engine_path} ({decision.reason})")
        return decision.engine_path, read_sidecar(decision.engine_path)
    engine = decision.engine_path
    with build_lock(engine, log):
        decision = decide(model_path, spec, failed_sha256)
        if decision.action == "reuse":
            log(f"TensorRT engine cache: reusing {engine}, built meanwhile by another process")
            return engine, read_sidecar(engine)
        log(
            f"TensorRT engine cache: building {engine} because {decision.reason} "
            f"(first start only; this takes minutes)"
        )
        extra = build(model_path, engine, spec)
        write_sidecar(engine, spec, extra)
        return engine, read_sidecar(engine)


def read_engine_plan(engine_path: str | Path) -> tuple[bytes, dict[str, str]]:
    """The serialized engine in ``engine_path`` and the metadata of an Ultralytics header, if any.

    ``yolo export format=engine`` prepends a little-endian int32 length and that many bytes of JSON
    metadata (names, imgsz, ...) to the plan; the metadata values come back as Python-literal
    strings, as in ONNX metadata.
    """
    data = Path(engine_path).read_bytes()
    size = int.from_bytes(data[:4], "little", signed=True) if len(data) > 4 else 0
    if 0 < size <= len(data) - 4 and data[4:5] == b"{":
        try:
            meta = json.loads(data[4 : 4 + size].decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            meta = None
        if isinstance(meta, dict):
            return data[4 + size :], {str(k): _literal(k, v) for k, v in meta.items()}
    return data, {}


def _literal(key: Any, value: Any) -> str:
    if isinstance(value, str):
        return value
    if key == "names" and isinstance(
        value, dict
    ):  # JSON turned the integer class ids into strings
        value = {int(k) if str(k).isdigit() else k: v for k, v in value.items()}
    return repr(value)


def _normalized_profile(profile: Any) -> Any:
    if not isinstance(profile, Mapping):
        return profile
    return {
        name: {k: [int(d) for d in v] for k, v in shapes.items()}
        if isinstance(shapes, Mapping)
        else shapes
        for name, shapes in profile.items()
    }


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _platform_text(platform: Platform) -> str:
    board = f", {platform.device_model}" if platform.device_model else ""
    return (
        f"TensorRT {platform.tensorrt_version}, {platform.gpu_name}, compute "
        f"{platform.compute_capability}, {platform.sm_count} SMs, "
        f"{platform.total_memory_gib} GiB{board}"
    )
