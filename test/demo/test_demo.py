"""``yolo-trt-ros demo`` end to end: real image_replay and yolo_tracker processes, DDS between
them."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest

from ros_processes import kill_processes_with, processes_with
from yolo_trt_ros.demo.processes import ros_env, start_node, stop_process

pytestmark = pytest.mark.ros

DOMAIN_ID = 1 + zlib.crc32(Path(__file__).name.encode()) % 200
# names unique to this run: another run of this file may share the domain
RUN = f"demo_test_{os.getpid()}"
TIMEOUT_S = 300


def _env() -> dict[str, str]:
    env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN_ID), PYTHONUNBUFFERED="1")
    env.pop("FASTDDS_BUILTIN_TRANSPORTS", None)  # the demo must set it for its children and itself
    return env


def _demo(*args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "yolo_trt_ros.cli.main", "demo", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
        start_new_session=True,
    )


@pytest.fixture(autouse=True)
def _no_leftover_nodes() -> Iterator[None]:
    """A demo that failed or was killed leaves its nodes (in their own sessions) running; they must
    not run on into later tests. Tests that check the demo's own cleanup assert before this."""
    yield
    kill_processes_with(RUN)


def _finish(proc: subprocess.Popen[str], timeout: float = TIMEOUT_S) -> tuple[int, str]:
    try:
        output, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, output


def _frame_count(video: Path, shape: tuple[int, int, int] = (480, 640, 3)) -> int:
    capture = cv2.VideoCapture(str(video))
    assert capture.isOpened(), video
    count = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        assert frame.shape == shape
        count += 1
    return count


def test_demo_on_mot_slice(model_path: Path, mot_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, output = _finish(
        _demo(
            "--model",
            model_path,
            "--source",
            mot_dir,
            "--max-frames",
            30,
            "--out",
            out,
            "--namespace",
            f"{RUN}_slice",
        )
    )
    assert code == 0, output
    assert "Traceback" not in output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "replay" and summary["input_topic"] == f"/{RUN}_slice/image_raw"
    assert summary["frames_published"] == 30
    assert 0 < summary["frames_in"] <= 30
    assert 0 < summary["frames_out"] <= 30
    assert summary["detections"] > 0 and summary["per_class"]["person"] > 0
    assert summary["FASTDDS_BUILTIN_TRANSPORTS"] == "LARGE_DATA"
    assert summary["exit_codes"]["image_replay"] == 0
    latency = summary["latency_ms"]
    assert 0 < latency["p50"] <= latency["p99"] <= latency["max"]
    assert summary["fps"] is None or summary["fps"] > 0

    frames = _frame_count(out / "annotated.mp4")
    assert frames > 0 and frames == summary["annotated_frames"]
    records = [json.loads(line) for line in (out / "detections.jsonl").read_text().splitlines()]
    assert len(records) == summary["frames_out"]
    assert sum(len(r["detections"]) for r in records) == summary["detections"]
    for record in records:
        assert record["frame_id"] == "camera" and record["latency_ms"] > 0
        for det in record["detections"]:
            x1, y1, x2, y2 = det["box_xyxy"]
            assert -1 <= x1 < x2 <= 641 and -1 <= y1 < y2 <= 481
            assert (
                0 < det["score"] <= 1 and det["class"] and int(det["id"]) >= 1
            )  # tracked: track IDs

    assert "frames in      30 published" in output
    ids = {det["id"] for record in records for det in record["detections"]}
    assert summary["distinct_track_ids"] == len(ids) > 0
    assert f"tracks         {len(ids)} distinct IDs" in output
    assert str(out / "annotated.mp4") in output and str(out / "summary.json") in output
    assert not processes_with(f"{RUN}_slice")


def test_demo_with_three_cameras(data_dir: Path, mot_dir: Path, tmp_path: Path) -> None:
    """Three sources, three cameras (one smaller, the last one compressed) served by one
    yolo_tracker: a video, detections and a summary section per camera."""
    small = tmp_path / "small"  # a camera of another resolution
    small.mkdir()
    for path in sorted((mot_dir / "img1").glob("*.jpg"))[:15]:
        cv2.imwrite(str(small / path.name), cv2.resize(cv2.imread(str(path)), (512, 384)))
    out = tmp_path / "out"
    namespace = f"{RUN}_cameras"
    code, output = _finish(
        _demo(
            "--model",
            data_dir / "models" / "yolov8n-coco-dynamic.onnx",  # batches the cameras
            "--source",
            mot_dir,
            "--source",
            small,
            "--source",
            mot_dir / "img1",
            "--camera-name",
            "front",
            "--camera-name",
            "side",
            "--camera-name",
            "rear",
            "--max-frames",
            15,
            "--rate",
            5.0,
            "--out",
            out,
            "--namespace",
            namespace,
        )
    )
    assert code == 0, output
    assert "Traceback" not in output and "demo summary: 3 cameras, one yolo_tracker" in output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "replay" and list(summary["cameras"]) == ["front", "side", "rear"]
    assert summary["FASTDDS_BUILTIN_TRANSPORTS"] == "LARGE_DATA"
    assert set(summary["exit_codes"]) == {
        "yolo_tracker",
        "front/image_replay",
        "side/image_replay",
        "rear/image_replay",
    }
    shapes = {"front": (480, 640, 3), "side": (384, 512, 3), "rear": (480, 640, 3)}
    for name, camera in summary["cameras"].items():
        compressed = name == "rear"
        assert camera["compressed"] is compressed
        assert camera["input_topic"] == (
            f"/{namespace}/{name}/image_raw" + ("/compressed" if compressed else "")
        )
        assert summary["exit_codes"][f"{name}/image_replay"] == 0
        assert camera["frames_published"] == 15 and 0 < camera["frames_in"] <= 15
        # the recorder counts frames_in as one more subscriber: it may miss one the tracker got
        assert 0 < camera["frames_out"] <= camera["frames_published"]
        assert camera["detections"] > 0 and camera["per_class"]["person"] > 0
        assert camera["distinct_track_ids"] > 0 and camera["latency_ms"]["p50"] > 0
        video = out / name / "annotated.mp4"
        assert camera["files"]["video"] == str(video)
        assert _frame_count(video, shapes[name]) == camera["annotated_frames"] > 0
        records = [
            json.loads(line) for line in (out / name / "detections.jsonl").read_text().splitlines()
        ]
        assert len(records) == camera["frames_out"]
        assert all(r["frame_id"] == name for r in records)  # each camera's own header
        assert sum(len(r["detections"]) for r in records) == camera["detections"]
        assert f"camera {name}: " in output
    assert "frames in      15 published" in output and str(out / "summary.json") in output
    assert not processes_with(namespace)


def test_ctrl_c_stops_every_node(model_path: Path, data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    video = (
        data_dir / "videos" / "one-by-one-person-detection.mp4"
    )  # long enough to be interrupted
    proc = _demo(
        "--model", model_path, "--source", video, "--out", out, "--namespace", f"{RUN}_ctrl_c"
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + TIMEOUT_S
        lines = []
        while time.monotonic() < deadline and not any("is active" in line for line in lines):
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if ready:
                line = proc.stdout.readline()
                if not line:
                    break
                lines.append(line)
        assert any("is active" in line for line in lines), "".join(lines)
        while time.monotonic() < deadline and not (out / "image_replay.log").is_file():
            time.sleep(0.2)
        time.sleep(3.0)  # let some frames flow
        assert processes_with(f"{RUN}_ctrl_c"), "children should be running"
        os.kill(proc.pid, signal.SIGINT)  # what Ctrl-C does (children have their own session)
        code, output = _finish(proc, timeout=60)
    finally:
        if proc.poll() is None:
            stop_process(proc)  # type: ignore[arg-type]
    output = "".join(lines) + output
    assert code == 130, output
    assert "interrupted" in output and "Traceback" not in output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames_published"] is not None and summary["frames_published"] < 1394
    assert not processes_with(f"{RUN}_ctrl_c")


def test_demo_on_a_live_topic(model_path: Path, mot_dir: Path, tmp_path: Path) -> None:
    """--topic: no replay of its own; the tracker reads a camera topic published by someone
    else."""
    camera = start_node(
        "yolo_trt_ros.ros.replay_node",
        [
            "-p",
            f"source:={mot_dir}",
            "-p",
            "loop:=true",
            "-p",
            "frame_id:=live_cam",
            "-r",
            f"image_raw:=/{RUN}/live_cam",
        ],
        ros_env(DOMAIN_ID),
        tmp_path / "camera.log",
    )
    try:
        out = tmp_path / "out"
        code, output = _finish(
            _demo(
                "--model",
                model_path,
                "--topic",
                f"{RUN}/live_cam",
                "--max-frames",
                5,
                "--out",
                out,
                "--namespace",
                f"{RUN}_topic",
            )
        )
    finally:
        stop_process(camera)
    assert code == 0, output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "topic" and summary["input_topic"] == f"/{RUN}/live_cam"
    assert (
        summary["frames_published"] is None
        and summary["frames_out"] >= 5
        and summary["frames_in"] >= 5
    )
    records = [json.loads(line) for line in (out / "detections.jsonl").read_text().splitlines()]
    assert records and all(r["frame_id"] == "live_cam" for r in records)
    assert _frame_count(out / "annotated.mp4") == summary["annotated_frames"] > 0
    assert not processes_with(f"{RUN}_topic")


def test_bad_model_fails_cleanly(tmp_path: Path, mot_dir: Path) -> None:
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model")
    code, output = _finish(
        _demo(
            "--model",
            bad,
            "--source",
            mot_dir,
            "--out",
            tmp_path / "out",
            "--namespace",
            f"{RUN}_bad_model",
        )
    )
    assert code == 1, output
    assert "configure failed" in output and "broken.onnx" in output
    assert output.count("Traceback") == 0
    assert not processes_with(f"{RUN}_bad_model")


def test_missing_model_and_source(tmp_path: Path, model_path: Path) -> None:
    code, output = _finish(
        _demo("--model", tmp_path / "none.onnx", "--source", tmp_path, "--out", tmp_path / "o")
    )
    assert code == 1 and "none.onnx: no such file" in output and "Traceback" not in output
    code, output = _finish(
        _demo("--model", model_path, "--source", tmp_path / "none.mp4", "--out", tmp_path / "o")
    )
    assert (
        code == 1 and "none.mp4: no such file or directory" in output and "Traceback" not in output
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--camera-name", "a"], "1 camera names for 2 sources"),
        (["--camera-name", "a", "--camera-name", "a"], "must be distinct"),
        (["--camera-name", "a", "--camera-name", "b/c"], "must be distinct"),
        (["--compressed-camera", "cam7"], "compressed camera 'cam7' is none of the cameras"),
    ],
)
def test_camera_options_must_fit_the_sources(
    options: list[str], message: str, model_path: Path, mot_dir: Path, tmp_path: Path
) -> None:
    code, output = _finish(
        _demo(
            "--model",
            model_path,
            "--source",
            mot_dir,
            "--source",
            mot_dir,
            "--out",
            tmp_path,
            *options,
        )
    )
    assert code == 1 and message in output and "Traceback" not in output, output
