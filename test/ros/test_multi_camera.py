"""Several cameras in one yolo_tracker, across processes: three camera processes (640x480 Image,
1280x720 Image, JPEG CompressedImage) and the node with the dynamic-batch model.

Per camera: its own output topics, headers copied from its frames, its own track IDs and its own
/diagnostics status; a camera that stops or sends garbage leaves the others served; cameras at
equal rates are served equally; a camera added by reconfiguring is served.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from std_srvs.srv import Trigger
from vision_msgs.msg import Detection2DArray

from ros_processes import TIMEOUT_S, FramePublisher, RosListener
from yolo_trt_ros.demo.processes import (
    FASTDDS_TRANSPORTS,
    FASTDDS_TRANSPORTS_ENV,
    ros_env,
    start_node,
    stop_process,
)

pytestmark = pytest.mark.ros

DOMAIN_ID = 1 + zlib.crc32(Path(__file__).name.encode()) % 200
NODE = "yolo_tracker"
CAMERAS = {
    "front": "/front/image_raw",
    "rear": "/rear/image_raw",
    "arm": "/arm/image_raw/compressed",
}


def _stamp_ns(msg: Detection2DArray) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


class Cameras:
    """The node, one publisher process per camera, and this process's listener."""

    def __init__(self, tmp_path: Path, model: Path, cameras: dict[str, str]) -> None:
        self.env = ros_env(DOMAIN_ID)
        self.node_log = tmp_path / "node.log"
        topics = "[" + ", ".join(f"'{t}'" for t in cameras.values()) + "]"
        self.node = start_node(
            "yolo_trt_ros.ros.tracker_node",
            [
                "-p",
                f"model_path:={model}",
                "-p",
                f"input_topics:={topics}",
                "-p",
                "diagnostics_period:=0.25",
                "-p",
                "publish_annotated:=false",
            ],
            self.env,
            self.node_log,
        )
        self.publishers: dict[str, FramePublisher] = {}
        self.detections: dict[str, list[Detection2DArray]] = {}
        try:
            self.ros = RosListener(DOMAIN_ID, NODE)
            self.diagnostics: list[DiagnosticArray] = self.ros.collect(
                DiagnosticArray, "/diagnostics"
            )
            for name, topic in cameras.items():
                self.add(tmp_path, name, topic)
            assert self.ros.lifecycle.wait_for_services(TIMEOUT_S), self.log()
        except BaseException:
            self.close()  # no node or camera process outlives a failed start
            raise

    def add(self, tmp_path: Path, name: str, topic: str) -> None:
        self.publishers[name] = FramePublisher(self.env, tmp_path / f"{name}.log", topic=topic)
        self.detections[name] = self.ros.collect(Detection2DArray, f"/{name}/detections")

    def log(self) -> str:
        return self.node_log.read_text(errors="replace")

    def start(self) -> None:
        for transition in ("configure", "activate"):
            assert self.ros.lifecycle.change_state(transition), self.log()

    def statuses(self) -> dict[str, dict[str, str]]:
        """The statuses of the node's latest /diagnostics message, by camera name."""
        for array in reversed(self.diagnostics):
            ours = [s for s in array.status if s.hardware_id == f"/{NODE}"]
            if ours:
                return {
                    s.name.split(": ", 1)[1]: {kv.key: kv.value for kv in s.values} for s in ours
                }
        return {}

    def send(self, name: str, image: Path | None, frame_id: str, **fields: object) -> int:
        return self.publishers[name].publish(image=image, frame_id=frame_id, **fields)

    def served(self, name: str, stamps: set[int]) -> list[Detection2DArray]:
        return [d for d in self.detections[name] if _stamp_ns(d) in stamps]

    def send_until_served(self, name: str, image: Path, frame_id: str) -> Detection2DArray:
        """Publish ``image`` on camera ``name`` every 0.5 s, once the node has matched the camera,
        until its detections come back."""
        self.publishers[name].wait_for_subscriber()
        stamps: set[int] = set()
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            stamps.add(self.send(name, image, frame_id))
            if self.ros.spin_until(lambda: bool(self.served(name, stamps)), 0.5):
                return self.served(name, stamps)[0]
            assert self.node.poll() is None, f"node exited:\n{self.log()}"
        raise AssertionError(f"camera {name} never served:\n{self.log()}")

    def close(self) -> None:
        for publisher in self.publishers.values():
            publisher.close()
        if hasattr(self, "ros"):
            self.ros.close()
        stop_process(self.node)


@pytest.fixture
def frames(mot_dir: Path, tmp_path: Path) -> dict[str, list[Path]]:
    """MOT16-05 frames per camera: 640x480 (front, arm) and resized to 1280x720 (rear)."""
    files = sorted((mot_dir / "img1").glob("*.jpg"))[:12]
    wide = []
    for path in files:
        wide.append(tmp_path / f"wide_{path.name}")
        cv2.imwrite(str(wide[-1]), cv2.resize(cv2.imread(str(path)), (1280, 720)))
    return {"front": files, "rear": wide, "arm": files}


@pytest.fixture
def cameras(tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cameras]:
    # This process must use the same Fast DDS transports as the children, or they never discover
    # each other.
    monkeypatch.setenv(FASTDDS_TRANSPORTS_ENV, FASTDDS_TRANSPORTS)
    harness = Cameras(tmp_path, data_dir / "models" / "yolov8n-coco-dynamic.onnx", CAMERAS)
    try:
        yield harness
    finally:
        harness.close()


def test_three_cameras_one_node(cameras: Cameras, frames: dict[str, list[Path]]) -> None:
    cameras.start()
    # 1. each camera's frames come back on its own topic with its own header
    for name in CAMERAS:
        out = cameras.send_until_served(name, frames[name][0], f"{name}_optical")
        assert out.header.frame_id == f"{name}_optical" and out.detections, name
        assert all(d.header.frame_id == f"{name}_optical" for d in out.detections)
    # the rear camera's boxes are in its own 1280x720 pixels
    rear = cameras.detections["rear"][-1]
    assert max(d.bbox.center.position.x for d in rear.detections) > 640

    # 2. equal rates: every camera is served, none below 80 % of the mean; IDs per camera
    sent: dict[str, set[int]] = {name: set() for name in CAMERAS}
    for k in range(1, 12):
        for name in CAMERAS:
            sent[name].add(cameras.send(name, frames[name][k], f"{name}_optical"))
        cameras.ros.spin_for(0.15)
    cameras.ros.spin_for(2.0)
    counts = {name: len(cameras.served(name, sent[name])) for name in CAMERAS}
    mean = sum(counts.values()) / len(counts)
    assert mean >= 3 and all(c >= 0.8 * mean for c in counts.values()), counts
    for name in CAMERAS:
        ids = {d.id for msg in cameras.detections[name] for d in msg.detections if d.id}
        numbers = sorted(int(i) for i in ids)
        assert numbers and numbers[0] == 1, (name, numbers)  # each camera numbers its own tracks

    # 3. one camera sends garbage, one stops: the third is still served; /diagnostics per camera
    for _ in range(3):
        cameras.send("front", None, "front_optical", data_len=10, height=480, width=640)
        cameras.send("arm", None, "arm_optical", data_len=500)
    cameras.send_until_served("rear", frames["rear"][5], "rear_optical")
    assert cameras.ros.spin_until(
        lambda: (
            int(cameras.statuses().get("front", {}).get("rejected", "0")) >= 1
            and int(cameras.statuses().get("arm", {}).get("rejected", "0")) >= 1
        )
    ), cameras.statuses()
    statuses = cameras.statuses()
    assert set(statuses) == set(CAMERAS), statuses
    assert statuses["rear"]["input_topic"] == "/rear/image_raw"
    assert statuses["rear"]["rejected"] == "0" and int(statuses["rear"]["processed"]) >= 5
    assert cameras.node.poll() is None

    # 4. the reset service: one camera, then all
    client = cameras.ros.node.create_client(Trigger, f"/{NODE}/front/reset_tracker")
    assert client.wait_for_service(timeout_sec=TIMEOUT_S)
    future = client.call_async(Trigger.Request())
    assert cameras.ros.spin_until(future.done)
    assert future.result().success and "(front)" in future.result().message


def test_a_camera_added_by_reconfiguring(
    cameras: Cameras, frames: dict[str, list[Path]], tmp_path: Path
) -> None:
    cameras.start()
    cameras.send_until_served("front", frames["front"][0], "front_optical")
    for transition in ("deactivate", "cleanup"):
        assert cameras.ros.lifecycle.change_state(transition), cameras.log()
    topics = [*CAMERAS.values(), "/side/image_raw"]
    client = cameras.ros.node.create_client(SetParameters, f"/{NODE}/set_parameters")
    assert client.wait_for_service(timeout_sec=TIMEOUT_S)
    value = ParameterValue(type=ParameterType.PARAMETER_STRING_ARRAY, string_array_value=topics)
    future = client.call_async(
        SetParameters.Request(parameters=[ParameterMsg(name="input_topics", value=value)])
    )
    assert cameras.ros.spin_until(future.done) and future.result().results[0].successful
    cameras.add(tmp_path, "side", "/side/image_raw")
    cameras.start()
    out = cameras.send_until_served("side", frames["front"][3], "side_optical")
    assert out.header.frame_id == "side_optical" and out.detections
    cameras.send_until_served("front", frames["front"][4], "front_optical")
    assert cameras.ros.spin_until(lambda: set(cameras.statuses()) == {*CAMERAS, "side"}), (
        cameras.statuses().keys()
    )
