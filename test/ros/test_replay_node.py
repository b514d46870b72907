"""image_replay across processes: a real replay process publishing over DDS, received here with
rclpy."""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

from yolo_trt_ros.demo.processes import ros_env, start_node, stop_process
from yolo_trt_ros.ros.compressed_image import compressed_to_array
from yolo_trt_ros.ros.image_conversion import image_to_array

DOMAIN_ID = 1 + zlib.crc32(Path(__file__).name.encode()) % 200
# unique to this run: another run of this file may share the domain
NAMESPACE = f"/replay_test_{os.getpid()}"
TIMEOUT = 60.0


class Receiver:
    """Collects the images of one topic in this process (own context, own domain)."""

    def __init__(self, topic: str, reliable: bool, msg_type: type = Image) -> None:
        self.context = rclpy.Context()
        rclpy.init(context=self.context, domain_id=DOMAIN_ID)
        self.node = rclpy.create_node("replay_test_receiver", context=self.context)
        qos = QoSProfile(
            depth=100,
            reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        )
        self.messages: list = []
        self.node.create_subscription(msg_type, topic, self.messages.append, qos)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    @property
    def frames(self) -> list[tuple[Image, str]]:
        """(message, sha1 of its pixels) in arrival order; hashed after the run to keep the
        callback light."""
        return [(m, hashlib.sha1(image_to_array(m).tobytes()).hexdigest()) for m in self.messages]

    def spin_until_exit(self, proc: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + TIMEOUT
        while proc.poll() is None and time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.05)
        drain_until = time.monotonic() + 1.0  # messages already on the wire
        while time.monotonic() < drain_until:
            self.executor.spin_once(timeout_sec=0.05)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


@pytest.fixture(autouse=True)
def _large_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FASTDDS_BUILTIN_TRANSPORTS", "LARGE_DATA")


@pytest.fixture
def receiver_factory() -> Iterator:
    made: list[Receiver] = []

    def make(topic: str, reliable: bool = False, msg_type: type = Image) -> Receiver:
        made.append(Receiver(topic, reliable, msg_type))
        return made[-1]

    yield make
    for r in made:
        r.close()


def _replay(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    return start_node(
        "yolo_trt_ros.ros.replay_node",
        ["-r", f"__ns:={NAMESPACE}", *args],
        ros_env(DOMAIN_ID),
        log,
    )


def _replay_to_end(receiver, args: list[str], tmp_path: Path) -> str:
    """Run image_replay until it exits while ``receiver`` collects frames; assert it exited 0,
    return its log."""
    log = tmp_path / "replay.log"
    proc = _replay(args, log)
    try:
        receiver.spin_until_exit(proc)
    finally:
        code = stop_process(proc)
    output = log.read_text()
    assert code == 0, output
    return output


def _sha1(path: Path) -> str:
    return hashlib.sha1(cv2.imread(str(path)).tobytes()).hexdigest()


@pytest.mark.ros
def test_replays_mot_img1_best_effort(receiver_factory, mot_dir: Path, tmp_path: Path) -> None:
    receiver = receiver_factory(f"{NAMESPACE}/cam_a")
    output = _replay_to_end(
        receiver,
        [
            "-p",
            f"source:={mot_dir / 'img1'}",
            "-p",
            "frame_id:=test_cam",
            "-p",
            "wait_for_subscribers:=1",
            "-r",
            f"image_raw:={NAMESPACE}/cam_a",
        ],
        tmp_path,
    )
    assert "published 48 frames" in output
    assert "at 14 fps" in output  # seqinfo.ini frameRate
    frames = receiver.frames
    # best effort: a loaded machine may lose some; most must arrive (LARGE_DATA), none twice
    assert 24 <= len(frames) <= 48, f"{len(frames)} of 48 frames arrived"
    for msg, _ in frames:
        assert (msg.width, msg.height, msg.encoding, msg.step) == (640, 480, "bgr8", 1920)
        assert msg.header.frame_id == "test_cam"
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m, _ in frames]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    # pixels are the decoded files, unchanged, in order
    expected = [_sha1(p) for p in sorted((mot_dir / "img1").glob("*.jpg"))]
    received = [h for _, h in frames]
    positions = [expected.index(h) for h in received]
    assert positions == sorted(
        positions
    )  # best effort may miss the first frames while discovery completes


@pytest.mark.ros
def test_reliable_loop_and_max_frames(receiver_factory, mot_dir: Path, tmp_path: Path) -> None:
    receiver = receiver_factory(f"{NAMESPACE}/image_raw", reliable=True)
    output = _replay_to_end(
        receiver,
        [
            "-p",
            f"source:={mot_dir}",
            "-p",
            "rate:=40.0",
            "-p",
            "loop:=true",
            "-p",
            "max_frames:=55",
            "-p",
            "qos_reliability:=reliable",
            "-p",
            "qos_depth:=60",
            "-p",
            "wait_for_subscribers:=1",
        ],
        tmp_path,
    )
    assert "published 55 frames" in output and "loop" in output
    hashes = [h for _, h in receiver.frames]
    assert (
        len(hashes) == 55
    )  # reliable, history deeper than the run, acknowledged before exit: every frame
    assert (
        hashes[48] == hashes[0] == _sha1(mot_dir / "img1" / "000001.jpg")
    )  # looped back to frame 1
    assert hashes[54] == hashes[6]
    assert all(m.header.frame_id == "camera" for m, _ in receiver.frames)


@pytest.mark.ros
def test_video_source_geometry(receiver_factory, data_dir: Path, tmp_path: Path) -> None:
    import data_paths

    receiver = receiver_factory(f"{NAMESPACE}/image_raw", reliable=True)
    _replay_to_end(
        receiver,
        [
            "-p",
            f"source:={data_paths.default_video()}",
            "-p",
            "max_frames:=5",
            "-p",
            "rate:=20.0",
            "-p",
            "qos_reliability:=reliable",
            "-p",
            "qos_depth:=5",
            "-p",
            "wait_for_subscribers:=1",
        ],
        tmp_path,
    )
    assert len(receiver.frames) == 5
    msg, _ = receiver.frames[0]
    assert (msg.width, msg.height, msg.step) == (768, 432, 768 * 3)
    assert image_to_array(msg).shape == (432, 768, 3)


@pytest.mark.ros
def test_compressed_topic_publishes_jpeg(receiver_factory, mot_dir: Path, tmp_path: Path) -> None:
    """A topic ending in /compressed carries sensor_msgs/CompressedImage JPEG frames, with the
    header of the raw frames."""
    topic = f"{NAMESPACE}/cam_c/image_raw/compressed"
    receiver = receiver_factory(topic, reliable=True, msg_type=CompressedImage)
    output = _replay_to_end(
        receiver,
        [
            "-p",
            f"source:={mot_dir}",
            "-p",
            "max_frames:=6",
            "-p",
            "rate:=30.0",
            "-p",
            "frame_id:=jpeg_cam",
            "-p",
            "jpeg_quality:=95",
            "-p",
            "qos_reliability:=reliable",
            "-p",
            "qos_depth:=10",
            "-p",
            "wait_for_subscribers:=1",
            "-r",
            f"image_raw:={topic}",
        ],
        tmp_path,
    )
    assert "published 6 frames" in output and "JPEG CompressedImage, quality 95" in output
    messages = receiver.messages
    assert len(messages) == 6
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in messages]
    assert stamps == sorted(stamps) and len(set(stamps)) == 6
    originals = sorted((mot_dir / "img1").glob("*.jpg"))[:6]
    for msg, path in zip(messages, originals, strict=True):
        assert msg.format == "bgr8; jpeg compressed bgr8" and msg.header.frame_id == "jpeg_cam"
        assert bytes(msg.data[:3]) == b"\xff\xd8\xff"
        image, encoding = compressed_to_array(msg)
        original = cv2.imread(str(path))
        assert encoding == "bgr8" and image.shape == original.shape == (480, 640, 3)
        # the same frame, re-encoded: a few levels of JPEG error on average
        assert np.abs(image.astype(np.int16) - original).mean() < 3.0


@pytest.mark.ros
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["-p", "source:=/nonexistent/video.mp4"],
            "/nonexistent/video.mp4: no such file or directory",
        ),
        ([], "parameter 'source' is required"),
        (
            ["-p", "source:=/tmp", "-p", "qos_reliability:=sometimes"],
            "qos_reliability must be one of",
        ),
    ],
)
def test_bad_parameters_exit_with_reason(args: list[str], message: str, tmp_path: Path) -> None:
    log = tmp_path / "replay.log"
    proc = _replay(args, log)
    try:
        proc.wait(TIMEOUT)
    finally:
        code = stop_process(proc)
    output = log.read_text()
    assert code == 1, output
    assert message in output
    assert "Traceback" not in output


def test_mot_frame_equals_array(mot_dir: Path) -> None:
    """Sanity of the comparison used above: the decoded file is what a frame source yields."""
    from yolo_trt_ros.sources import open_source

    _, frame = next(iter(open_source(mot_dir)))
    np.testing.assert_array_equal(frame, cv2.imread(str(mot_dir / "img1" / "000001.jpg")))


@pytest.mark.ros
def test_stays_up_at_the_end_without_exit_on_end(mot_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "replay.log"
    proc = _replay(
        [
            "-p",
            f"source:={mot_dir}",
            "-p",
            "max_frames:=3",
            "-p",
            "rate:=50.0",
            "-p",
            "exit_on_end:=false",
        ],
        log,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while (
            "published 3 frames" not in log.read_text()
            and proc.poll() is None
            and time.monotonic() < deadline
        ):
            time.sleep(0.1)
        assert "published 3 frames" in log.read_text()
        assert proc.poll() is None, "must keep running at the end of the source"
    finally:
        code = stop_process(proc)
    assert code == 0, log.read_text()
