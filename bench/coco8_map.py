"""coco8 mAP parity: our Detector + our metric vs Ultralytics ``YOLO(onnx).val()`` on the same ONNX
model.

Our side runs the Detector as Ultralytics val does (conf 0.001, IoU 0.7, max_det 300, multi-label
NMS) and scores it with yolo_trt_ros.evaluation.coco_metrics. The reference side (only when
Ultralytics is importable, i.e. in .venv-ref) runs ``YOLO(model).val`` on a dataset YAML that
points at the shared coco8 folder through symlinks in a temporary directory (so Ultralytics' label
caches and run folders never land in the shared data), once with all 8 images (train + val lists)
and once with the 4 val images (Ultralytics' own coco8.yaml split).

Diagnostics: ``ours (input px, unclipped)`` scores the same pipeline's boxes in letterboxed-input
pixels before un-letterboxing and clipping, against ground truth mapped into that space, as
Ultralytics val does; ``ours + Ultralytics metric`` scores our detections with Ultralytics' own
matching and AP code, which isolates pipeline from metric differences.

``--rect`` (for a model with dynamic input height/width) letterboxes each image only to the
smallest stride-multiple rectangle on our side (``Detector(rect=True)``) and runs Ultralytics val
with ``rect=True`` (its rectangular val batches add half a stride of padding: 640x480 -> 672x512).

    .venv-ref/bin/python bench/coco8_map.py            # ours and Ultralytics
    .venv/bin/python bench/coco8_map.py                # ours only
    .venv-ref/bin/python bench/coco8_map.py --rect \\
        --model ../shared/data/models/yolov8n-coco-dynamic.onnx
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

import data_paths
from yolo_trt_ros.detection.decode import decode_yolov8
from yolo_trt_ros.detection.detector import Detector, DetectorConfig
from yolo_trt_ros.detection.letterbox import Letterbox
from yolo_trt_ros.evaluation.coco_metrics import (
    MapEvaluator,
    MapResult,
    read_yolo_labels,
    yolo_dataset_items,
)

SPLITS = {"all 8": ("train", "val"), "val 4": ("val",)}
VAL_CONFIG = DetectorConfig(
    conf_threshold=0.001, iou_threshold=0.7, max_detections=300, multi_label=True
)


def predict_all(detector: Detector, root: Path) -> dict[str, dict]:
    """Run the detector over every image once.

    Keeps the Detector's output (original-image pixels, clipped) and, for the diagnostic, the same
    pipeline's decoded boxes before un-letterboxing ("input" space, unclipped) with the ground
    truth mapped into that space.
    """
    letterbox = Letterbox(
        detector.backend.input_shape[2:],
        stride=max(detector.layout.strides) if detector.rect else None,
    )
    cfg = detector.config
    out = {}
    for image_path, label_path in yolo_dataset_items(root, ("train", "val")):
        image = cv2.imread(str(image_path))
        dets = detector(image)
        h, w = image.shape[:2]
        gt_boxes, gt_classes = read_yolo_labels(label_path, w, h)
        tensor, transform = letterbox(image)
        raw = decode_yolov8(
            detector.backend.infer(tensor),
            cfg.conf_threshold,
            cfg.iou_threshold,
            cfg.max_detections,
            multi_label=True,
        )
        out[str(image_path)] = {
            "boxes": dets.boxes,
            "scores": dets.scores,
            "classes": dets.class_ids,
            "gt_boxes": gt_boxes,
            "gt_classes": gt_classes,
            "input": {
                "boxes": raw.boxes,
                "scores": raw.scores,
                "classes": raw.class_ids,
                "gt_boxes": transform.to_input(gt_boxes),
                "gt_classes": gt_classes,
            },
        }
    return out


def score(
    preds: dict[str, dict], root: Path, splits: tuple[str, ...], space: str = "original"
) -> MapResult:
    evaluator = MapEvaluator()
    for image_path, _ in yolo_dataset_items(root, splits):
        p = preds[str(image_path)]
        p = p["input"] if space == "input" else p
        evaluator.add_image(p["boxes"], p["scores"], p["classes"], p["gt_boxes"], p["gt_classes"])
    return evaluator.result()


def score_with_ultralytics_metric(
    preds: dict[str, dict], root: Path, splits: tuple[str, ...]
) -> tuple[float, float]:
    """Our detections scored by Ultralytics' match_predictions + ap_per_class."""
    import torch
    from ultralytics.engine.validator import BaseValidator
    from ultralytics.utils.metrics import ap_per_class, box_iou

    class _Thresholds:
        iouv = torch.linspace(0.5, 0.95, 10)

    tps, confs, classes, targets = [], [], [], []
    for image_path, _ in yolo_dataset_items(root, splits):
        p = preds[str(image_path)]
        order = np.argsort(
            -p["scores"], kind="stable"
        )  # match_predictions expects descending confidence
        boxes, conf, cls = p["boxes"][order], p["scores"][order], p["classes"][order]
        if len(cls) and len(p["gt_classes"]):
            iou = box_iou(torch.tensor(p["gt_boxes"], dtype=torch.float32), torch.tensor(boxes))
            tp = BaseValidator.match_predictions(
                _Thresholds, torch.tensor(cls), torch.tensor(p["gt_classes"]), iou
            ).numpy()
        else:
            tp = np.zeros((len(cls), 10), dtype=bool)
        tps.append(tp), confs.append(conf), classes.append(cls), targets.append(p["gt_classes"])
    ap = ap_per_class(
        np.concatenate(tps),
        np.concatenate(confs),
        np.concatenate(classes),
        np.concatenate(targets),
    )[5]
    return float(ap.mean()), float(ap[:, 0].mean())


def ultralytics_val(
    model: Path, root: Path, work: Path, rect: bool = False
) -> dict[str, tuple[float, float]]:
    """Ultralytics val on all 8 and on the 4 val images; returns {split: (mAP50-95, mAP50)}."""
    from ultralytics import YOLO

    names = Detector.from_model(model).names
    # Real folders of per-file symlinks: Ultralytics resolves folder symlinks and would write its
    # label caches (labels/<split>.cache) into the shared data.
    for kind in ("images", "labels"):
        for split in ("train", "val"):
            (work / kind / split).mkdir(parents=True, exist_ok=True)
            for src in (root / kind / split).iterdir():
                link = work / kind / split / src.name
                if not link.exists():
                    link.symlink_to(src)
    results = {}
    for label, splits in SPLITS.items():
        yaml = work / f"coco8_{'_'.join(splits)}.yaml"
        val_list = ", ".join(f"images/{s}" for s in splits)
        yaml.write_text(
            f"path: {work}\ntrain: images/train\nval: [{val_list}]\n"
            + "names:\n"
            + "".join(f"  {i}: {json.dumps(n)}\n" for i, n in enumerate(names))
        )
        metrics = YOLO(str(model), task="detect").val(
            data=str(yaml),
            imgsz=640,
            batch=1,
            conf=0.001,
            iou=0.7,
            max_det=300,
            rect=rect,
            device="cpu",
            half=False,
            plots=False,
            save_json=False,
            verbose=False,
            workers=0,
            project=str(work / "runs"),
            name=label.replace(" ", "_"),
            exist_ok=True,
        )
        results[label] = (float(metrics.box.map), float(metrics.box.map50))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", type=Path, default=data_paths.data_dir() / "coco8" / "extracted" / "coco8"
    )
    parser.add_argument("--model", type=Path, default=data_paths.default_model())
    parser.add_argument(
        "--no-reference", action="store_true", help="skip Ultralytics even if installed"
    )
    parser.add_argument(
        "--rect",
        action="store_true",
        help="rectangular input (models with dynamic height/width; Ultralytics val rect=True)",
    )
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args(argv)

    detector = Detector.from_model(args.model, config=VAL_CONFIG, rect=args.rect)
    preds = predict_all(detector, args.data)
    detector.close()
    rows: dict[str, dict[str, tuple[float, float]]] = {
        "ours": {},
        "ours (input px, unclipped)": {},
    }
    for label, splits in SPLITS.items():
        r = score(preds, args.data, splits)
        rows["ours"][label] = (r.map50_95, r.map50)
        r = score(preds, args.data, splits, space="input")
        rows["ours (input px, unclipped)"][label] = (r.map50_95, r.map50)

    with_reference = not args.no_reference and importlib.util.find_spec("ultralytics") is not None
    if with_reference:
        rows["ours + Ultralytics metric"] = {
            label: score_with_ultralytics_metric(preds, args.data, splits)
            for label, splits in SPLITS.items()
        }
        with tempfile.TemporaryDirectory(prefix="coco8_val_") as tmp:
            rows["Ultralytics val"] = ultralytics_val(args.model, args.data, Path(tmp), args.rect)

    print(
        f"\ncoco8 mAP, model {args.model.name}, {'rectangular' if args.rect else 'square'} input, "
        "conf 0.001, IoU 0.7, max_det 300, multi-label NMS"
    )
    print(
        f"{'':30s}"
        + "".join(f"{label + ' mAP50-95':>18s}{label + ' mAP50':>15s}" for label in SPLITS)
    )
    for name, by_split in rows.items():
        print(
            f"{name:30s}"
            + "".join(f"{by_split[s][0]:18.4f}{by_split[s][1]:15.4f}" for s in SPLITS)
        )
    if with_reference:
        for label in SPLITS:
            diff = rows["ours"][label][0] - rows["Ultralytics val"][label][0]
            print(f"ours - Ultralytics, {label}: mAP50-95 {diff:+.4f} (target |diff| <= 0.005)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
