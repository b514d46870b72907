"""``yolo-trt-ros eval-mot``: public detections or the detector, scored, result rows clipped to the
image."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest

from yolo_trt_ros.cli import eval_mot
from yolo_trt_ros.detection.detector import DetectorConfig
from yolo_trt_ros.evaluation.mot_format import read_rows
from yolo_trt_ros.pipeline import FramePipeline, PipelineConfig
from yolo_trt_ros.sources import open_mot_sequence


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    parser = argparse.ArgumentParser()
    eval_mot.register(parser.add_subparsers())
    args = parser.parse_args(["eval-mot", *argv])
    assert args.run(args) == 0
    return capsys.readouterr().out


def test_eval_mot_command_public_detections(
    mot_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = run_cli(
        [
            "--seq",
            str(mot_dir),
            "--frames",
            "100",
            "--match-thresh",
            "0.9",
            "--no-fuse-score",
            "--stamps",
            "--out",
            str(tmp_path / "res.txt"),
        ],
        capsys,
    )
    assert "frames 1-100" in out and "match_thresh=0.9" in out and "fuse_score=False" in out
    row = [line for line in out.splitlines() if line.startswith("| yolo_trt_ros")]
    assert len(row) == 1 and 0.0 < float(row[0].split("|")[2]) <= 1.0  # HOTA
    written = (tmp_path / "res.txt").read_text().splitlines()
    assert written and all(1 <= int(line.split(",")[0]) <= 100 for line in written)


def test_eval_mot_out_boxes_are_clipped_to_the_image(
    mot_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Kalman boxes can run past the border (MOT16-05 frames 41-100 do); written rows stay inside
    640x480."""
    run_cli(["--seq", str(mot_dir), "--frames", "100", "--out", str(tmp_path / "res.txt")], capsys)
    rows = read_rows(tmp_path / "res.txt")
    boxes = np.array([(r.x, r.y, r.x + r.w, r.y + r.h) for r in rows])
    assert len(rows) and boxes.min() >= 0.0
    assert boxes[:, 2].max() <= 640.0 and boxes[:, 3].max() <= 480.0
    assert boxes[:, 3].max() == pytest.approx(480.0)  # some were clipped, not dropped


def test_eval_mot_command_through_the_detector(
    mot_dir: Path, small_dynamic_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--model scores what the frame pipeline publishes: the detector's boxes (persons, clipped)
    with their track IDs, frames stamped at the sequence rate with --stamps."""
    frames = 8
    out = run_cli(
        [
            "--seq",
            str(mot_dir),
            "--model",
            str(small_dynamic_model),
            "--backend",
            "onnxruntime",
            "--frames",
            str(frames),
            "--stamps",
            "--out",
            str(tmp_path / "res.txt"),
        ],
        capsys,
    )
    assert f"frames 1-{frames}, detector" in out
    row = [line for line in out.splitlines() if line.startswith("| yolo_trt_ros")]
    assert len(row) == 1 and float(row[0].split("|")[5]) > 0.0  # MOTA: it finds pedestrians

    config = PipelineConfig(DetectorConfig(conf_threshold=0.1, classes=("person",)))
    pipeline = FramePipeline.from_model(small_dynamic_model, config, backend="onnxruntime")
    expected = []
    try:
        for index, image in open_mot_sequence(mot_dir):
            if index == frames:
                break
            result = pipeline(image, index / 14.0)  # seqinfo.ini frameRate
            assert result.track_ids is not None
            boxes = np.clip(result.detections.boxes, 0.0, [640.0, 480.0, 640.0, 480.0])
            expected += [
                (index + 1, int(i), *box) for box, i in zip(boxes, result.track_ids, strict=True)
            ]
    finally:
        pipeline.close()
    written = [
        (r.frame, r.track_id, r.x, r.y, r.x + r.w, r.y + r.h)
        for r in read_rows(tmp_path / "res.txt")
    ]
    assert len(written) == len(expected) > frames  # tracked persons in most frames
    for got, want in zip(written, expected, strict=True):
        assert got[:2] == want[:2]
        np.testing.assert_allclose(got[2:], want[2:], atol=0.011)  # written to 0.01
