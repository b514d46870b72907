"""``yolo-trt-ros export``: Ultralytics weights -> ONNX (``inference.export``; needs the ``export``
extra)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from yolo_trt_ros.inference.export import check_exported, export_onnx


def register(subparsers: Any) -> None:
    """Add ``export`` to the ``yolo-trt-ros`` subcommands (``add_subparsers()`` result)."""
    p = subparsers.add_parser(
        "export",
        help="export Ultralytics YOLOv8 weights to ONNX (needs the optional 'export' extra)",
        description="Export a YOLOv8 detection model with Ultralytics to ONNX: input 'images' [1, "
        "3, H, W], "
        "output 'output0' [1, 4+nc, N], class names in the metadata. Then give the .onnx to the "
        "node "
        "or to `yolo-trt-ros build-engine`.",
    )
    p.add_argument(
        "--weights",
        required=True,
        help="Ultralytics weights (.pt; downloaded if it is an official "
        "name like yolov8n.pt) or a model .yaml",
    )
    p.add_argument(
        "--imgsz",
        type=int,
        nargs="+",
        default=[640],
        metavar="N",
        help="input size: N or H W (640)",
    )
    p.add_argument(
        "--opset", type=int, help="ONNX opset (default: Ultralytics' choice for this torch)"
    )
    p.add_argument(
        "--no-simplify",
        dest="simplify",
        action="store_false",
        help="skip onnxslim graph simplification",
    )
    p.add_argument(
        "--dynamic",
        action="store_true",
        help="dynamic batch, height and width (default: static 1 x 3 x H x W)",
    )
    p.add_argument("--output", type=Path, help="ONNX path (default: beside the weights)")
    p.set_defaults(run=run_export)


def run_export(args: argparse.Namespace) -> int:
    imgsz = args.imgsz[0] if len(args.imgsz) == 1 else args.imgsz[:2]
    path = export_onnx(args.weights, imgsz, args.opset, args.simplify, args.output, args.dynamic)
    print(check_exported(path))
    return 0
