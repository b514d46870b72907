"""The yolo-trt-ros command line: detect and track on the shared data. One test runs the real
command in a subprocess; the others call its ``main`` in this process (the same code, without a
second interpreter start per test)."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from yolo_trt_ros.cli.main import main
from yolo_trt_ros.evaluation.mot_format import read_rows
from yolo_trt_ros.inference.selection import choose_backend

TIMEOUT = 300


def _cli(*args: object) -> subprocess.CompletedProcess[str]:
    """``yolo-trt-ros ARGS`` in this process: exit status and output as a subprocess gives them."""
    argv = list(map(str, args))
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            status = main(argv)
        except SystemExit as exit_:  # argparse: --help, usage errors
            status = exit_.code if isinstance(exit_.code, int) else 1
    return subprocess.CompletedProcess(argv, status, stdout.getvalue(), stderr.getvalue())


def _cli_process(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "yolo_trt_ros.cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=dict(os.environ),
    )


def _frame_count(video: Path) -> int:
    capture = cv2.VideoCapture(str(video))
    assert capture.isOpened(), video
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def test_detect_table(model_path: Path, mot_dir: Path) -> None:
    image = mot_dir / "img1" / "000001.jpg"
    result = _cli_process("detect", image, "--model", model_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{image} (640x480): ")
    assert lines[1].split()[:2] == ["class", "score"]
    assert any(line.split()[0] == "person" for line in lines[2:])


def test_detect_json_with_filters(model_path: Path, mot_dir: Path) -> None:
    images = [mot_dir / "img1" / "000001.jpg", mot_dir / "img1" / "000002.jpg"]
    everything = json.loads(_cli("detect", *images, "--model", model_path, "--json").stdout)
    result = _cli(
        "detect", *images, "--model", model_path, "--json", "--classes", "person", "--conf", "0.5"
    )
    assert result.returncode == 0, result.stderr
    chosen = choose_backend("auto")  # what --backend auto (the default) must pick and say here
    warning = "warning: " if chosen.degraded else ""
    assert f"yolo-trt-ros: {warning}{chosen.reason}" in result.stderr.splitlines()
    report = json.loads(result.stdout)
    assert report["backend"] == chosen.backend
    assert [r["image"] for r in report["images"]] == [str(p) for p in images]
    first = report["images"][0]
    assert (first["width"], first["height"]) == (640, 480)
    dets = first["detections"]
    assert dets, "pedestrians expected in MOT16-05 frame 1"
    assert {d["class_name"] for d in dets} == {"person"}
    assert all(d["score"] >= 0.5 for d in dets)
    for d in dets:
        x1, y1, x2, y2 = d["box_xyxy"]
        assert 0 <= x1 < x2 <= 640 and 0 <= y1 < y2 <= 480
    unfiltered = {d["class_name"] for d in everything["images"][0]["detections"]}
    assert len(unfiltered) > 1  # the filter removed something (cars are in the frame)


def test_detect_bad_model_is_a_clean_error(tmp_path: Path, mot_dir: Path) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not an onnx model")
    result = _cli("detect", mot_dir / "img1" / "000001.jpg", "--model", bad)
    assert result.returncode == 1
    assert "broken.onnx" in result.stderr and result.stderr.startswith("yolo-trt-ros: error: ")
    assert "Traceback" not in result.stderr


def test_detect_missing_model_and_image(model_path: Path, tmp_path: Path) -> None:
    result = _cli("detect", tmp_path / "x.jpg", "--model", tmp_path / "missing.onnx")
    assert (
        result.returncode == 1
        and "missing.onnx" in result.stderr
        and "Traceback" not in result.stderr
    )
    result = _cli("detect", tmp_path / "x.jpg", "--model", model_path)
    assert (
        result.returncode == 1
        and "x.jpg: no such file" in result.stderr
        and "Traceback" not in result.stderr
    )


def test_unknown_class_is_a_clean_error(model_path: Path, mot_dir: Path) -> None:
    result = _cli(
        "detect", mot_dir / "img1" / "000001.jpg", "--model", model_path, "--classes", "persn"
    )
    assert result.returncode == 1 and "persn" in result.stderr and "Traceback" not in result.stderr


def test_track_mot_frames(small_dynamic_model: Path, mot_dir: Path, tmp_path: Path) -> None:
    out, model = tmp_path / "out", small_dynamic_model
    result = _cli("track", mot_dir, "--model", model, "--out", out, "--max-frames", 10)
    assert result.returncode == 0, result.stderr
    assert _frame_count(out / "annotated.mp4") == 10
    capture = cv2.VideoCapture(str(out / "annotated.mp4"))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(14.0)
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (
        640,
        480,
    )
    rows = read_rows(out / "results.txt")
    assert rows and {r.frame for r in rows} <= set(range(1, 11)) and 1 in {r.frame for r in rows}
    assert all(r.w > 0 and r.h > 0 and 0 < r.conf <= 1 for r in rows)
    # Real track IDs: from 1, unique within a frame, most of them seen again in later frames.
    ids_by_frame = {f: [r.track_id for r in rows if r.frame == f] for f in range(1, 11)}
    assert min(r.track_id for r in rows) == 1
    assert all(len(set(ids)) == len(ids) for ids in ids_by_frame.values())
    assert len(set(ids_by_frame[1]) & set(ids_by_frame[10])) >= 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == 10 and summary["detections"] == len(rows)
    assert summary["distinct_track_ids"] == len({r.track_id for r in rows})
    assert (
        summary["tracker"]["frame_rate"] == pytest.approx(14.0)
        and summary["per_class"]["person"] > 0
    )
    assert "results.txt" in result.stdout and "annotated.mp4" in result.stdout

    result = _cli(
        "track", mot_dir, "--model", model, "--out", out, "--max-frames", 2, "--no-tracking"
    )
    assert result.returncode == 0, result.stderr
    assert {r.track_id for r in read_rows(out / "results.txt")} == {-1}


def test_track_missing_source(model_path: Path, tmp_path: Path) -> None:
    result = _cli("track", tmp_path / "nothing", "--model", model_path, "--out", tmp_path / "o")
    assert result.returncode == 1 and "nothing: no such file or directory" in result.stderr
    assert "Traceback" not in result.stderr


def test_tensorrt_subcommands_help() -> None:
    for command, option in (("build-engine", "--calib-dir"), ("export", "--weights")):
        result = _cli(command, "--help")
        assert result.returncode == 0 and option in result.stdout, result.stderr
    result = _cli("detect", "--help")
    assert "{auto,tensorrt,onnxruntime}" in result.stdout


def test_build_engine_without_tensorrt_is_one_clear_line(model_path: Path) -> None:
    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here")
    result = _cli("build-engine", "--onnx", model_path, "--fp16")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.splitlines() == [
        "yolo-trt-ros: error: TensorRT's Python bindings are not installed (No module named "
        "'tensorrt'); "
        "see docs/tensorrt.md"
    ]


def test_track_help_lists_tracker_options() -> None:
    result = _cli("track", "--help")
    assert result.returncode == 0, result.stderr
    for option in (
        "--no-tracking",
        "--track-high-thresh",
        "--track-buffer",
        "--no-fuse-score",
        "--class-aware",
    ):
        assert option in result.stdout
    assert "--frame-rate" not in result.stdout  # the source's frame rate


def test_eval_mot_on_public_detections(mot_dir: Path) -> None:
    result = _cli(
        "eval-mot", "--seq", mot_dir, "--dets", mot_dir / "det" / "det.txt", "--frames", 50
    )
    assert result.returncode == 0, result.stderr
    header, _, row = result.stdout.splitlines()[1:4]
    assert [c.strip() for c in header.split("|")[2:6]] == ["HOTA", "DetA", "AssA", "MOTA"]
    assert "IDF1" in header and "IDsw" in header
    assert row.startswith("| yolo_trt_ros ByteTracker |") and 0 < float(row.split("|")[2]) <= 1
