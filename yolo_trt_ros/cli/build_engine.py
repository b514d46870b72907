"""``yolo-trt-ros build-engine``: a TensorRT engine (+ JSON sidecar) from an ONNX model, or adopt
one."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from pathlib import Path
from typing import Any

from yolo_trt_ros.inference.base import ModelError
from yolo_trt_ros.inference.tensorrt import compat as trt_compat
from yolo_trt_ros.inference.tensorrt.builder import (
    DEFAULT_WORKSPACE_MB,
    INTEGRATED_WORKSPACE_MB,
    BuildError,
    BuildOptions,
    adopt_engine,
    build_engine,
    current_platform,
    engine_spec,
)
from yolo_trt_ros.inference.tensorrt.cuda_context import CudaContext
from yolo_trt_ros.inference.tensorrt.engine_cache import (
    EngineSpec,
    build_lock,
    cached_engine_path,
    decide,
    write_sidecar,
)
from yolo_trt_ros.inference.tensorrt.int8_calibrator import CALIBRATORS


def register(subparsers: Any) -> None:
    """Add ``build-engine`` to the ``yolo-trt-ros`` subcommands (``add_subparsers()`` result)."""
    p = subparsers.add_parser(
        "build-engine",
        help="build a TensorRT engine from an ONNX model (cached beside it, with a JSON sidecar)",
        description="Build a TensorRT engine with TensorRT's ONNX parser. By default it is "
        "written beside the ONNX "
        "as MODEL.<precision>.engine with a MODEL.<precision>.engine.json sidecar (ONNX sha256, "
        "TensorRT version, GPU, precision, profile): the node reuses it when given the .onnx or "
        "the "
        ".engine. An up-to-date engine is not rebuilt unless --force. On a Jetson, run it once "
        "after installing (it takes minutes there) so the node finds the cached engine at "
        "configure.",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--onnx", type=Path, metavar="MODEL.onnx", help="ONNX model to build")
    source.add_argument(
        "--adopt",
        type=Path,
        metavar="MODEL.engine",
        help="write a sidecar for an engine built on this machine by another tool "
        "(e.g. `yolo export format=engine`) after checking that it loads here",
    )
    precision = p.add_mutually_exclusive_group()
    precision.add_argument(
        "--fp16", dest="precision", action="store_const", const="fp16", help="FP16 kernels"
    )
    precision.add_argument(
        "--int8",
        dest="precision",
        action="store_const",
        const="int8",
        help="INT8 kernels (with FP16 fallback), calibrated on --calib-dir images",
    )
    p.set_defaults(precision="fp32")
    p.add_argument(
        "--calib-dir",
        type=Path,
        metavar="DIR",
        help="calibration images (.jpg/.png/.bmp) for --int8",
    )
    p.add_argument(
        "--calib-cache",
        type=Path,
        metavar="FILE",
        help="INT8 calibration cache (default: ENGINE with .calib suffix; reused only when "
        "made from the same ONNX, images and calibrator)",
    )
    p.add_argument(
        "--calibrator",
        choices=CALIBRATORS,
        default="minmax",
        help="INT8 calibration algorithm: TensorRT's MinMax (default; what Ultralytics uses for "
        "YOLO) or Entropy2 calibrator",
    )
    p.add_argument(
        "--workspace",
        type=int,
        metavar="MB",
        help=f"builder workspace limit in MiB (default: {DEFAULT_WORKSPACE_MB}, "
        f"{INTEGRATED_WORKSPACE_MB} on integrated GPUs such as Jetson)",
    )
    p.add_argument(
        "--max-batch",
        type=int,
        default=1,
        metavar="N",
        help="largest batch for a dynamic-batch ONNX (default: %(default)s)",
    )
    p.add_argument(
        "--imgsz",
        type=int,
        nargs="+",
        metavar="N",
        help="nominal input size (H [W]) for a dynamic-H/W ONNX (default: its imgsz metadata)",
    )
    p.add_argument(
        "--camera-size",
        type=camera_size,
        metavar="WxH",
        help="dynamic-H/W ONNX: tune the engine for the rectangular input of this camera image "
        "size, e.g. 640x480 (default: the nominal square)",
    )
    p.add_argument(
        "--square",
        action="store_true",
        help="dynamic-H/W ONNX: build for the nominal square input only, no rectangular inputs",
    )
    p.add_argument(
        "--output",
        type=Path,
        metavar="FILE",
        help="engine path (default: MODEL.<precision>.engine)",
    )
    p.add_argument(
        "--device", type=int, default=0, help="CUDA device index (default: %(default)s)"
    )
    p.add_argument(
        "--force", action="store_true", help="rebuild even when the cached engine is up to date"
    )
    p.set_defaults(run=run_build_engine)


def camera_size(text: str) -> tuple[int, int]:
    """ "WxH" (e.g. 640x480) as (height, width)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT, e.g. 640x480") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: width and height must be positive")
    return height, width


def run_build_engine(args: argparse.Namespace) -> int:
    """``build-engine`` entry point; problems are raised as ModelError (one line, no traceback)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    log = logging.getLogger("yolo_trt_ros.build_engine")
    try:
        importlib.import_module("tensorrt")
    except ImportError as exc:
        raise ModelError(
            f"TensorRT's Python bindings are not installed ({exc}); see docs/tensorrt.md"
        ) from exc
    imgsz = None
    if args.imgsz:
        imgsz = (args.imgsz[0], args.imgsz[-1])
    options = BuildOptions(
        args.precision,
        args.workspace,
        args.max_batch,
        imgsz,
        args.calib_dir,
        args.calib_cache,
        args.calibrator,
        rect=not args.square,
        camera_hw=args.camera_size,
    )
    try:
        cuda = CudaContext(args.device)
    except Exception as exc:  # pycuda missing, no GPU, driver problems
        raise ModelError(f"no usable CUDA GPU: {exc}") from exc
    try:
        with cuda.active():
            path = _run(args, options, cuda, log)
    except (BuildError, trt_compat.TensorRTError, ValueError) as exc:
        raise ModelError(str(exc)) from exc
    finally:
        cuda.close()
    print(path)
    return 0


def _run(
    args: argparse.Namespace, options: BuildOptions, cuda: CudaContext, log: logging.Logger
) -> Path:
    if args.adopt is not None:
        sidecar = adopt_engine(args.adopt, args.precision, cuda, log)
        log.info("wrote %s", sidecar)
        return Path(args.adopt)
    onnx = Path(args.onnx)
    if not onnx.is_file():
        raise ModelError(f"model {onnx}: file not found")
    spec = engine_spec(onnx, options, current_platform(cuda))
    engine = args.output or cached_engine_path(onnx, options.precision)
    check_cache = args.output is None and not args.force
    if check_cache and _stale_reason(onnx, spec, log) is None:
        return engine
    with build_lock(engine, log.info):
        if check_cache:  # again: another process may have built it meanwhile
            reason = _stale_reason(onnx, spec, log)
            if reason is None:
                return engine
            log.info("building %s: %s", engine, reason)
        extra = build_engine(onnx, engine, spec, options, cuda, log)
        write_sidecar(engine, spec, extra)
    return engine


def _stale_reason(onnx: Path, spec: EngineSpec, log: logging.Logger) -> str | None:
    """Why the cached engine of ``onnx`` must be built, or None when it is up to date (logged)."""
    decision = decide(onnx, spec)
    if decision.action == "reuse":
        log.info(
            "%s is up to date (%s); --force rebuilds it", decision.engine_path, decision.reason
        )
        return None
    return decision.reason
