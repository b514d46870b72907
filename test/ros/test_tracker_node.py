"""yolo_tracker across processes: the node, an image publisher and this test each run in their own
process.

The lifecycle is driven through the node's real change_state/get_state services; frames are real
MOT16-05 images sent over DDS (FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA). Each frame is re-sent until
its result is seen, so a lost best-effort frame only costs time, never a failure.
"""

from __future__ import annotations

import gc
import os
import signal
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger
from vision_msgs.msg import Detection2DArray

from camera_raw import camera_raw
from onnx_models import constant_model
from ros_processes import TIMEOUT_S, FramePublisher, RosListener, with_discovery_retry
from tracker_node_variant import VARIANT_ENV
from yolo_trt_ros.demo.processes import (
    FASTDDS_TRANSPORTS,
    FASTDDS_TRANSPORTS_ENV,
    ros_env,
    start_node,
    stop_process,
)
from yolo_trt_ros.detection.annotate import class_color
from yolo_trt_ros.detection.boxes import iou as box_iou
from yolo_trt_ros.detection.detector import Detector
from yolo_trt_ros.detection.encodings import to_bgr8
from yolo_trt_ros.inference.selection import select_backend, tensorrt_status
from yolo_trt_ros.pipeline import FramePipeline, PipelineConfig
from yolo_trt_ros.ros.image_conversion import image_to_array
from yolo_trt_ros.ros.tracker_node import LOG_PERIOD_S
from yolo_trt_ros.tracking.assignment import TRACKER_FIELDS
from yolo_trt_ros.tracking.bytetrack import TrackerConfig

pytestmark = pytest.mark.ros
DOMAIN_ID = 1 + zlib.crc32(Path(__file__).name.encode()) % 200
NODE = "yolo_tracker"
FRAMES = (1, 7, 13, 19, 25, 31, 37, 43)


class Harness:
    """The node process, the publisher process and this process's listener for one test."""

    def __init__(
        self,
        tmp_path: Path,
        node_args: list[str],
        publisher: bool = True,
        reliable: bool = True,
        variant: str = "",
    ) -> None:
        """``variant``: run the node as ``tracker_node_variant`` with these changes."""
        self.env = ros_env(DOMAIN_ID)
        self.node_log = tmp_path / "node.log"
        node_env = self.env
        if variant:
            path = [str(Path(__file__).parents[1]), self.env.get("PYTHONPATH", "")]
            node_env = {
                **self.env,
                VARIANT_ENV: variant,
                "PYTHONPATH": os.pathsep.join(filter(None, path)),
            }
        module = "tracker_node_variant" if variant else "yolo_trt_ros.ros.tracker_node"
        node_args = ["-p", "diagnostics_period:=0.25", *node_args]
        self.node = start_node(module, node_args, node_env, self.node_log)
        self.publisher = (
            FramePublisher(self.env, tmp_path / "publisher.log", reliable=reliable)
            if publisher
            else None
        )
        self.ros = RosListener(DOMAIN_ID, NODE)
        self.detections: list[Detection2DArray] = self.ros.collect(Detection2DArray, "detections")
        self.diagnostics: list[DiagnosticArray] = self.ros.collect(DiagnosticArray, "/diagnostics")
        self.annotated: list[Image] = self.ros.collect(Image, "annotated_image", depth=5)

        def restart() -> bool:
            if self.node.poll() is not None:
                return False
            stop_process(self.node)
            self.node = start_node(module, node_args, node_env, self.node_log)
            return True

        if with_discovery_retry(self.ros.lifecycle.wait_for_services, restart):
            return
        alive, nodes = self.node.poll() is None, self.ros.node.get_node_names_and_namespaces()
        self.close()
        raise AssertionError(
            f"node services not seen (node alive: {alive}, nodes seen: {nodes}):\n{self.log()}"
        )

    def log(self) -> str:
        return self.node_log.read_text(errors="replace")

    def change_state(self, transition: str) -> bool:
        """Run ``transition``; after an activation, wait until the node has matched the
        publisher."""
        done = self.ros.lifecycle.change_state(transition)
        if done and transition == "activate" and self.publisher is not None:
            self.publisher.wait_for_subscriber()
        return done

    def state(self) -> str:
        return self.ros.lifecycle.get_state()

    def status(self) -> DiagnosticStatus | None:
        """The node's latest diagnostics status."""
        for array in reversed(self.diagnostics):
            for status in array.status:
                if status.hardware_id == f"/{NODE}":
                    return status
        return None

    def values(self) -> dict[str, str]:
        status = self.status()
        return {kv.key: kv.value for kv in status.values} if status else {}

    def wait_diagnostics(self, condition: Callable[[dict[str, str]], bool]) -> dict[str, str]:
        assert self.ros.spin_until(lambda: condition(self.values())), (
            f"diagnostics never satisfied the condition; last: {self.values()}\n{self.log()}"
        )
        return self.values()

    def send_until(self, condition: Callable[[set[int]], bool], **frame: object) -> set[int]:
        """Publish ``frame`` every 0.5 s (fresh stamp each time) until ``condition(stamps sent)``
        holds."""
        assert self.publisher is not None
        stamps: set[int] = set()
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            stamps.add(self.publisher.publish(**frame))
            if self.ros.spin_until(lambda: condition(stamps), 0.5):
                return stamps
            assert self.node.poll() is None, f"node exited:\n{self.log()}"
        raise AssertionError(
            f"condition not met after {TIMEOUT_S} s of sending {frame}:\n{self.log()}"
        )

    def send_silently(self, image: Path, count: int = 6) -> set[int]:
        """Send ``image`` ``count`` times, 0.3 s apart, then keep listening 2 s; return the stamps
        sent."""
        assert self.publisher is not None
        stamps = set()
        for _ in range(count):
            stamps.add(self.publisher.publish(image=image))
            self.ros.spin_for(0.3)
        self.ros.spin_for(2.0)
        return stamps

    def detections_for(self, stamps: set[int]) -> list[Detection2DArray]:
        return [d for d in self.detections if _stamp_ns(d) in stamps]

    def detect(self, image: Path) -> Detection2DArray:
        """Send ``image`` until its detections come back; return them."""
        stamps = self.send_until(lambda s: bool(self.detections_for(s)), image=image)
        return self.detections_for(stamps)[0]

    def close(self) -> None:
        self.ros.close()
        if self.publisher is not None:
            self.publisher.close()
        stop_process(self.node)


def _stamp_ns(msg: Detection2DArray) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


def _xyxy(msg: Detection2DArray) -> np.ndarray:
    rows = [
        (
            d.bbox.center.position.x - d.bbox.size_x / 2,
            d.bbox.center.position.y - d.bbox.size_y / 2,
            d.bbox.center.position.x + d.bbox.size_x / 2,
            d.bbox.center.position.y + d.bbox.size_y / 2,
        )
        for d in msg.detections
    ]
    return np.array(rows, np.float64).reshape(-1, 4)


def _labels(msg: Detection2DArray) -> list[str]:
    return [d.results[0].hypothesis.class_id for d in msg.detections]


def _gt_person_boxes(mot_dir: Path, frame: int) -> np.ndarray:
    """MOT16 gt boxes of people (classes 1 pedestrian, 2 person on vehicle, 7 static person) as
    xyxy, 0-based."""
    gt = np.loadtxt(mot_dir / "gt" / "gt_frames001-048.txt", delimiter=",")
    rows = gt[(gt[:, 0] == frame) & np.isin(gt[:, 7], (1, 2, 7))]
    return np.c_[rows[:, 2:4] - 1, rows[:, 2:4] - 1 + rows[:, 4:6]]


def _set_parameter(harness: Harness, name: str, value: ParameterValue) -> tuple[bool, str]:
    """Set one parameter through the node's real set_parameters service."""
    client = harness.ros.node.create_client(SetParameters, f"/{NODE}/set_parameters")
    try:
        assert client.wait_for_service(TIMEOUT_S)
        future = client.call_async(
            SetParameters.Request(parameters=[ParameterMsg(name=name, value=value)])
        )
        assert harness.ros.spin_until(future.done)
        result = future.result().results[0]
        return result.successful, result.reason
    finally:
        harness.ros.node.destroy_client(client)


def _reset_tracker(harness: Harness) -> Trigger.Response:
    """Call the node's ~/reset_tracker service."""
    client = harness.ros.node.create_client(Trigger, f"/{NODE}/reset_tracker")
    try:
        assert client.wait_for_service(TIMEOUT_S)
        future = client.call_async(Trigger.Request())
        assert harness.ros.spin_until(future.done)
        return future.result()
    finally:
        harness.ros.node.destroy_client(client)


def _string(value: str) -> ParameterValue:
    return ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)


@pytest.fixture
def harness_factory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Harness]]:
    # This process must use the same FastDDS transports as the children, or they never discover
    # each other.
    monkeypatch.setenv(FASTDDS_TRANSPORTS_ENV, FASTDDS_TRANSPORTS)
    made: list[Harness] = []

    def make(node_args: list[str], **kwargs: object) -> Harness:
        made.append(Harness(tmp_path, node_args, **kwargs))
        return made[-1]

    yield make
    for harness in made:
        harness.close()


def test_lifecycle_detections_and_reconfigure(
    harness_factory, model_path: Path, mot_dir: Path
) -> None:
    h = harness_factory(["-p", f"model_path:={model_path}", "-p", "tracking:=false"])
    frame1 = mot_dir / "img1" / "000001.jpg"
    assert h.state() == "unconfigured"
    h.wait_diagnostics(lambda v: v.get("state") == "unconfigured")

    # Unconfigured, then inactive: frames go out, nothing comes back.
    for transition, state in ((None, "unconfigured"), ("configure", "inactive")):
        if transition:
            assert h.change_state(transition)
        assert h.state() == state
        assert not h.detections_for(h.send_silently(frame1)), f"published while {state}"
        assert h.detections == []
    values = h.wait_diagnostics(lambda v: v.get("state") == "inactive")
    backend, why = select_backend(
        "auto"
    )  # backend defaults to auto: on a machine without TensorRT, onnxruntime
    assert (values["backend"], values["backend_reason"]) == (backend, why)
    assert f"[{NODE}]: {why}" in h.log()
    assert values["model_input_size"] == "640x640"
    assert values["class_count"] == "80"
    assert values["model_path"] == str(model_path)

    # Active: every frame's detections carry its stamp and frame_id, class names, boxes on the
    # people.
    assert h.change_state("activate")
    assert h.state() == "active"
    reference = Detector.from_model(model_path)
    matched = total = 0
    for index in FRAMES:
        path = mot_dir / "img1" / f"{index:06d}.jpg"
        msg = h.detect(path)
        assert msg.header.frame_id == "camera_optical"
        assert all(
            d.header.frame_id == "camera_optical" and d.header.stamp == msg.header.stamp
            for d in msg.detections
        )
        expected = reference(cv2.imread(str(path)))
        assert _labels(msg) == [reference.names[c] for c in expected.class_ids]
        np.testing.assert_allclose(_xyxy(msg), expected.boxes, atol=1e-2)
        np.testing.assert_allclose(
            [d.results[0].hypothesis.score for d in msg.detections], expected.scores, atol=1e-4
        )
        people = _xyxy(msg)[[label == "person" for label in _labels(msg)]]
        assert len(people), f"no person detected in frame {index}"
        best = box_iou(people, _gt_person_boxes(mot_dir, index)).max(axis=1)
        matched += int((best > 0.5).sum())
        total += len(people)
    assert matched / total > 0.5, (
        f"only {matched} of {total} person boxes overlap a gt box with IoU > 0.5"
    )

    # The annotated image (someone subscribes) carries the input header and has the boxes drawn on
    # it.
    last = msg
    assert h.ros.spin_until(lambda: any(a.header.stamp == last.header.stamp for a in h.annotated))
    annotated = next(a for a in h.annotated if a.header.stamp == last.header.stamp)
    image = image_to_array(annotated)
    assert annotated.encoding == "bgr8" and image.shape == (480, 640, 3)
    assert annotated.header.frame_id == "camera_optical"
    x1, _, _, y2 = np.rint(_xyxy(last)[0]).astype(int)
    assert tuple(image[y2 - 5, x1]) == class_color(
        reference.names.index(_labels(last)[0])
    )  # left box edge
    original = cv2.imread(str(mot_dir / "img1" / f"{FRAMES[-1]:06d}.jpg"))
    assert 0 < np.mean(np.any(image != original, axis=2)) < 0.3
    reference.close()

    # A burst faster than the detector: only the newest frame is processed.
    h.ros.spin_for(1.0)
    before = h.values()
    for _ in range(15):
        h.publisher.publish(image=frame1)
    h.detect(frame1)
    total_before = int(before["received"]) + int(before["dropped"])
    after = h.wait_diagnostics(
        lambda v: int(v["received"]) + int(v["dropped"]) >= total_before + 16
    )
    # stale frames are never processed: dropped by DDS (sequence gaps) or superseded in the node
    # by a newer frame while the model ran
    skipped = int(after["dropped"]) + int(after["superseded"])
    assert skipped > int(before["dropped"]) + int(before["superseded"])

    values = h.wait_diagnostics(
        lambda v: v.get("state") == "active" and int(v.get("processed", 0)) >= len(FRAMES)
    )
    assert float(values["processing_rate_hz"]) > 0
    assert float(values["latency_p50_ms"]) > 0
    for stage in ("convert", "preprocess", "infer", "postprocess", "publish"):
        assert float(values[f"stage_p50_ms.{stage}"]) >= 0
    assert values["dropped"] != "unknown"
    assert "stage_p50_ms.track" not in values and values["tracking"] == "off"
    assert all(d.id == "" for msg in h.detections for d in msg.detections)
    assert h.status().level == DiagnosticStatus.OK

    # Runtime parameters apply at once; structural ones are refused while configured.
    ok, reason = _set_parameter(
        h,
        "classes",
        ParameterValue(type=ParameterType.PARAMETER_STRING_ARRAY, string_array_value=["car"]),
    )
    assert ok, reason
    assert set(_labels(h.detect(frame1))) == {"car"}
    ok, reason = _set_parameter(
        h,
        "classes",
        ParameterValue(type=ParameterType.PARAMETER_STRING_ARRAY, string_array_value=["unicorn"]),
    )
    assert not ok and "unicorn" in reason
    # `ros2 param set /yolo_tracker classes "[]"` sends an empty bool array: back to all classes.
    ok, reason = _set_parameter(
        h, "classes", ParameterValue(type=ParameterType.PARAMETER_BOOL_ARRAY)
    )
    assert ok, reason
    assert "person" in _labels(h.detect(frame1))
    ok, reason = _set_parameter(
        h,
        "classes",
        ParameterValue(type=ParameterType.PARAMETER_STRING_ARRAY, string_array_value=["car"]),
    )
    assert ok, reason
    for name in ("model_path", "trt_precision"):
        ok, reason = _set_parameter(h, name, _string("fp32"))
        assert not ok and "only change while unconfigured" in reason

    # Deactivate: frames keep coming, nothing is published.
    assert h.change_state("deactivate")
    assert h.state() == "inactive"
    assert not h.detections_for(h.send_silently(frame1)), "published while inactive"

    # Cleanup, change a structural parameter, configure and activate again.
    assert h.change_state("cleanup")
    assert h.state() == "unconfigured"
    ok, reason = _set_parameter(h, "names_file", _string(""))
    assert ok, reason
    assert h.change_state("configure")
    assert h.change_state("activate")
    assert set(_labels(h.detect(frame1))) == {"car"}  # runtime parameters survive a reconfigure
    assert h.change_state("shutdown")
    assert h.state() == "finalized"
    assert h.node.poll() is None


MOT_RATE_HZ = 14
"""MOT16-05's frame rate: the test stamps frame i at i / 14 s and runs the tracker with frame_rate
14."""


def _ids(msg: Detection2DArray) -> list[int]:
    return [int(d.id) for d in msg.detections]


class TrackingReference:
    """What the node should publish: the frame pipeline with the node's defaults, in this
    process."""

    def __init__(self, model_path: Path) -> None:
        self.pipeline = FramePipeline.from_model(
            model_path,
            PipelineConfig(tracker=TrackerConfig(frame_rate=MOT_RATE_HZ)),
            backend="onnxruntime",
        )

    def __call__(self, path: Path, stamp_ns: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Boxes, track IDs and class names of the tracked detections of one frame."""
        sec, nanosec = divmod(
            stamp_ns, 1_000_000_000
        )  # the stamp as the node reads it from the header
        result = self.pipeline(cv2.imread(str(path)), sec + nanosec * 1e-9)
        return (
            result.detections.boxes,
            result.track_ids,
            [self.pipeline.names[c] for c in result.detections.class_ids],
        )


def _send_in_lockstep(h: Harness, frames: list[tuple[Path, int]]) -> list[Detection2DArray]:
    """Publish each (image, stamp) once (reliable both ways) and wait for its result before the
    next."""
    for image, stamp in frames:
        count = len(h.detections)
        # Fast DDS can lose a reliable sample sent while the match is still one-sided: send once
        # more after 10 s without a result.
        for _ in range(2):
            h.publisher.publish(image=image, stamp_ns=stamp)
            if h.ros.spin_until(lambda count=count: len(h.detections) > count, 10.0):
                break
        else:
            raise AssertionError(f"no result for {image}:\n{h.log()}")
    return h.detections[-len(frames) :]


def _gt_identities(mot_dir: Path, frame: int) -> tuple[np.ndarray, np.ndarray]:
    """Scored MOT16 gt (pedestrians, flag 1) of one frame: identities and xyxy boxes (0-based)."""
    gt = np.loadtxt(mot_dir / "gt" / "gt_frames001-048.txt", delimiter=",")
    rows = gt[(gt[:, 0] == frame) & (gt[:, 6] == 1) & (gt[:, 7] == 1)]
    return rows[:, 1].astype(int), np.c_[rows[:, 2:4] - 1, rows[:, 2:4] - 1 + rows[:, 4:6]]


def test_tracking_ids_follow_people_and_reset(
    harness_factory, model_path: Path, mot_dir: Path
) -> None:
    # A wide stamp tolerance: frames sent in lockstep arrive at the pace of the node's results, not
    # of their stamps; one late delivery (a DDS retransmission, a loaded machine) early in the run
    # would otherwise be a stamp glitch, and the tracker's time would no longer be the stamps the
    # reference below gets.
    h = harness_factory(
        [
            "-p",
            f"model_path:={model_path}",
            "-p",
            f"frame_rate:={float(MOT_RATE_HZ)}",
            "-p",
            "qos_reliability:=reliable",
            "-p",
            "stamp_tolerance:=30.0",
        ]
    )
    response = _reset_tracker(h)
    assert not response.success and "unconfigured" in response.message
    assert h.change_state("configure") and h.change_state("activate")
    start = (time.time_ns() // 1_000_000_000) * 1_000_000_000
    paths = sorted((mot_dir / "img1").glob("*.jpg"))[:48]
    stamps = [start + round(i * 1e9 / MOT_RATE_HZ) for i in range(len(paths))]
    results = _send_in_lockstep(h, list(zip(paths, stamps, strict=True)))

    # Frame by frame, the node publishes exactly what the detector + tracker produce in this
    # process.
    reference = TrackingReference(model_path)
    for index, (path, stamp, msg) in enumerate(zip(paths, stamps, results, strict=True), start=1):
        boxes, ids, labels = reference(path, stamp)
        assert _ids(msg) == ids.tolist(), f"frame {index}"
        assert _labels(msg) == labels
        np.testing.assert_allclose(_xyxy(msg), boxes, atol=1e-2)
        assert len(set(_ids(msg))) == len(msg.detections) and min(_ids(msg), default=1) >= 1

    # The same person keeps the same ID: follow each gt identity through the published person
    # boxes.
    seen: dict[int, list[int]] = {}
    for index, msg in enumerate(results, start=1):
        people = np.array([label == "person" for label in _labels(msg)], bool)
        identities, gt_boxes = _gt_identities(mot_dir, index)
        if not people.any() or not len(gt_boxes):
            continue
        iou = box_iou(gt_boxes, _xyxy(msg)[people])
        person_ids = np.array(_ids(msg))[people]
        for identity, row in zip(identities.tolist(), iou, strict=True):
            if row.max() > 0.5:
                seen.setdefault(identity, []).append(int(person_ids[row.argmax()]))
    # Thresholds from this tracker on these frames (run in-process: 9 identities, 203 matches, 9 ID
    # changes, two people visible throughout keep one ID in all 48 frames), with some margin.
    kept = sum(a == b for ids in seen.values() for a, b in zip(ids, ids[1:], strict=False))
    pairs = sum(len(ids) - 1 for ids in seen.values())
    assert pairs > 150 and kept / pairs > 0.9, seen
    assert sum(len(ids) == 48 and len(set(ids)) == 1 for ids in seen.values()) >= 2, seen

    values = h.wait_diagnostics(lambda v: int(v.get("processed", 0)) >= len(paths))
    assert values["tracking"] == "on" and int(values["tracks_active"]) > 0
    assert int(values["track_id_max"]) == max(max(_ids(m), default=0) for m in results)
    assert float(values["stage_p50_ms.track"]) >= 0

    # ~/reset_tracker: numbering restarts at 1 on the next frames, as a fresh tracker's would.
    response = _reset_tracker(h)
    assert response.success, response.message
    reference.pipeline.reset()
    again = [(paths[i], stamps[-1] + round((i + 1) * 1e9 / MOT_RATE_HZ)) for i in range(3)]
    for (path, stamp), msg in zip(again, _send_in_lockstep(h, again), strict=True):
        assert _ids(msg) == reference(path, stamp)[1].tolist()
    assert min(_ids(h.detections_for({again[0][1]})[0])) == 1
    assert h.wait_diagnostics(lambda v: int(v["track_id_max"]) < 50)


def test_glitched_stamps_keep_track_ids_and_latency_plausible(
    harness_factory, model_path: Path, mot_dir: Path, tmp_path: Path
) -> None:
    """A recorded sequence with glitched stamps (zero, an hour back, an hour ahead, repeated)
    between good ones keeps the IDs it has without them; the glitches are counted and kept out of
    the latency figures."""
    # A wide stamp tolerance: frames sent in lockstep arrive slower than their stamps advance, and
    # a loaded machine must not turn that into glitches the counts below do not expect.
    h = harness_factory(
        [
            "-p",
            f"model_path:={model_path}",
            "-p",
            f"frame_rate:={float(MOT_RATE_HZ)}",
            "-p",
            "qos_reliability:=reliable",
            "-p",
            "stamp_tolerance:=30.0",
        ]
    )
    assert h.change_state("configure") and h.change_state("activate")
    black = tmp_path / "black.png"
    cv2.imwrite(str(black), np.zeros((480, 640, 3), np.uint8))
    paths = sorted((mot_dir / "img1").glob("*.jpg"))[:20]
    paths.insert(4, black)  # a frame without detections
    start = time.time_ns()
    stamps = [start + round(i * 1e9 / MOT_RATE_HZ) for i in range(len(paths))]
    hour = 3600 * 1_000_000_000
    glitched = list(stamps)
    glitched[7], glitched[10], glitched[13], glitched[16] = (
        0,
        stamps[10] - hour,
        stamps[13] + hour,
        stamps[15],
    )
    results = _send_in_lockstep(h, list(zip(paths, glitched, strict=True)))

    reference = TrackingReference(model_path)
    for index, (path, stamp, msg) in enumerate(zip(paths, stamps, results, strict=True)):
        assert _stamp_ns(msg) == glitched[index]  # the header goes out as it came in
        boxes, ids, labels = reference(path, stamp)  # the same frames with good stamps
        assert _ids(msg) == ids.tolist(), f"frame {index}"
        assert _labels(msg) == labels
        np.testing.assert_allclose(_xyxy(msg), boxes, atol=1e-2)
    assert results[4].detections == []

    values = h.wait_diagnostics(lambda v: int(v.get("processed", 0)) >= len(paths))
    assert (
        values["stamp_glitches.zero"],
        values["stamp_glitches.jump"],
        values["stamp_glitches.backwards"],
    ) == ("1", "2", "1")
    assert int(values["latency_excluded"]) >= 4
    assert 0 < float(values["latency_p99_ms"]) < 10_000


BAD_FRAMES = {  # reason -> fields of a malformed frame
    "unsupported_encoding": {
        "height": 480,
        "width": 640,
        "step": 2560,
        "encoding": "32FC1",
        "data_len": 640 * 480 * 4,
    },
    "data_too_short": {
        "height": 480,
        "width": 640,
        "step": 1920,
        "encoding": "bgr8",
        "data_len": 1000,
    },
    "zero_size": {"height": 0, "width": 0, "step": 0, "encoding": "bgr8", "data_len": 0},
    "too_large": {
        "height": 100000,
        "width": 100000,
        "step": 300000,
        "encoding": "bgr8",
        "data_len": 64,
    },
    "step_too_small": {
        "height": 480,
        "width": 640,
        "step": 640,
        "encoding": "bgr8",
        "data_len": 640 * 480,
    },
}
LOG_WORDS = {
    "unsupported_encoding": "unsupported encoding '32FC1'",
    "data_too_short": "step*height = 1920*480 = 921600 bytes but data has 1000",
    "zero_size": "zero size (0x0)",
    "too_large": "100000x100000",
    "step_too_small": "step 640 < width*channels",
}


def test_bad_frames_are_rejected_counted_and_logged_once(
    harness_factory, model_path: Path, mot_dir: Path
) -> None:
    h = harness_factory(
        ["-p", f"model_path:={model_path}", "-p", "tracking:=false"]
    )  # same detections each time
    assert h.change_state("configure") and h.change_state("activate")
    frame = mot_dir / "img1" / "000001.jpg"
    first = h.detect(frame)
    assert "person" in _labels(first)

    repeats = 4
    for reason, fields in BAD_FRAMES.items():
        started = time.monotonic()
        for count in range(1, repeats + 1):
            h.send_until(
                lambda _, r=reason, n=count: int(h.values().get(f"rejected.{r}", 0)) >= n, **fields
            )
        elapsed = time.monotonic() - started
        lines = [line for line in h.log().splitlines() if f"[rejected.{reason}:" in line]
        assert lines, f"no log line for {reason}:\n{h.log()}"
        assert LOG_WORDS[reason] in lines[0] and "camera_optical" in lines[0]
        assert len(lines) <= 1 + elapsed // LOG_PERIOD_S, f"not throttled: {lines}"
        assert _labels(h.detect(frame)) == _labels(first), f"no good answer right after {reason}"

    values = h.values()
    assert int(values["rejected"]) >= repeats * len(BAD_FRAMES)
    assert h.node.poll() is None
    assert h.state() == "active"


def test_bad_model_fails_configure_with_reason(
    harness_factory, model_path: Path, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.onnx"
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    wrong = constant_model(tmp_path / "wrong_shape.onnx", [1, 6], input_hw=(64, 64))
    h = harness_factory(["-p", f"model_path:={missing}"], publisher=False)

    for path, words in (
        (missing, "not found"),
        (corrupt, ""),
        (wrong, "[1, 6]"),
        (tmp_path, "is a directory"),
    ):
        if path != missing:
            ok, reason = _set_parameter(h, "model_path", _string(str(path)))
            assert ok, reason
        assert not h.change_state("configure")
        assert h.state() == "unconfigured"
        assert h.ros.spin_until(
            lambda path=path: any(
                str(path) in line for line in h.log().splitlines() if "configure failed" in line
            )
        ), h.log()
        line = [
            line
            for line in h.log().splitlines()
            if "configure failed" in line and str(path) in line
        ][-1]
        assert "ERROR" in line and words in line
        assert h.ros.spin_until(lambda path=path: str(path) in getattr(h.status(), "message", ""))
        status = h.status()
        assert status.level == DiagnosticStatus.ERROR and str(path) in status.message

    ok, reason = _set_parameter(h, "model_path", _string(str(model_path)))
    assert ok, reason
    ok, reason = _set_parameter(h, "backend", _string("cuda"))
    assert (
        not ok and reason == "backend = 'cuda' is not allowed: one of auto, tensorrt, onnxruntime"
    )
    usable, why = tensorrt_status()
    if not usable:  # backend tensorrt where it cannot run: configure fails and says why
        ok, reason = _set_parameter(h, "backend", _string("tensorrt"))
        assert ok, reason
        assert not h.change_state("configure")
        expected = (
            f"configure failed: model {model_path}: backend tensorrt was requested but {why}"
        )
        assert h.ros.spin_until(lambda: getattr(h.status(), "message", "") == expected), h.values()
        ok, reason = _set_parameter(h, "backend", _string("auto"))
        assert ok, reason
    assert h.change_state("configure")
    assert h.state() == "inactive"
    assert h.ros.spin_until(
        lambda: h.status() is not None and h.status().level == DiagnosticStatus.OK
    )


def test_empty_model_path_names_the_parameter(harness_factory) -> None:
    h = harness_factory([], publisher=False)
    assert not h.change_state("configure")
    assert h.ros.spin_until(lambda: "model_path is empty" in h.log()), h.log()


def test_silent_input_with_an_incompatible_publisher_names_the_qos(
    harness_factory, model_path: Path, mot_dir: Path, tmp_path: Path
) -> None:
    """A best-effort camera and a reliable subscription: the input warning says so, not "no
    publisher"."""
    h = harness_factory(
        [
            "-p",
            f"model_path:={model_path}",
            "-p",
            "qos_reliability:=reliable",
            "-p",
            "input_timeout:=3600.0",
        ],
        publisher=False,
    )
    camera = FramePublisher(h.env, tmp_path / "best_effort_publisher.log", reliable=False)
    try:
        camera.publish(
            image=mot_dir / "img1" / "000001.jpg"
        )  # returns once the camera process is up
        assert h.change_state("configure") and h.change_state("activate")
        # Once the node's graph has the camera (discovery can take seconds on a loaded machine),
        # let the input timeout run out.
        h.wait_diagnostics(lambda v: v.get("input_publishers") == "1")
        ok, reason = _set_parameter(
            h,
            "input_timeout",
            ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=1.0),
        )
        assert ok, reason
        assert h.ros.spin_until(lambda: "but no frame for" in h.log()), h.log()
        line = next(line for line in h.log().splitlines() if "but no frame for" in line)
        assert (
            "1 publisher(s) on /image_raw" in line
            and "BEST_EFFORT but this subscription requires RELIABLE" in line
        ), line
        assert "no publisher on" not in h.log()
    finally:
        camera.close()


def test_no_publisher_and_qos_mismatch_warnings(
    harness_factory, model_path: Path, mot_dir: Path, tmp_path: Path
) -> None:
    h = harness_factory(
        [
            "-p",
            f"model_path:={model_path}",
            "-p",
            "qos_reliability:=reliable",
            "-p",
            "input_timeout:=1.0",
        ],
        publisher=False,
    )
    assert h.change_state("configure") and h.change_state("activate")
    assert h.ros.spin_until(lambda: "no publisher on /image_raw" in h.log()), h.log()
    h.wait_diagnostics(lambda v: h.status().level == DiagnosticStatus.WARN)

    best_effort = FramePublisher(h.env, tmp_path / "best_effort_publisher.log", reliable=False)
    try:
        best_effort.publish(image=mot_dir / "img1" / "000001.jpg")
        expected = "publisher on /image_raw is BEST_EFFORT but this subscription requires RELIABLE"
        assert h.ros.spin_until(lambda: expected in h.log()), h.log()
        assert h.ros.spin_until(lambda: expected in (h.status().message if h.status() else ""))
        assert h.status().level == DiagnosticStatus.WARN
        assert h.detections == []
    finally:
        best_effort.close()


def test_on_humble_rclpy_and_after_a_callback_error_the_node_keeps_serving(
    harness_factory, model_path: Path
) -> None:
    """rclpy 3.x (Humble) has no Subscription.get_publisher_count: the no-publisher check after
    ``input_timeout`` must not need it. A callback that raises (here ~/reset_tracker) is logged
    with its traceback and the node goes on."""
    h = harness_factory(
        ["-p", f"model_path:={model_path}", "-p", "input_timeout:=1.0"],
        publisher=False,
        variant="humble,failing_reset",
    )
    assert h.change_state("configure") and h.change_state("activate")
    assert h.ros.spin_until(lambda: "no publisher on /image_raw" in h.log()), h.log()
    h.wait_diagnostics(lambda v: h.status().level == DiagnosticStatus.WARN)

    client = h.ros.node.create_client(Trigger, f"/{NODE}/reset_tracker")
    try:
        assert client.wait_for_service(TIMEOUT_S)
        client.call_async(Trigger.Request())  # never answered: the callback raises
        expected = "callback failed: RuntimeError: reset broke"
        assert h.ros.spin_until(lambda: expected in h.log()), h.log()
    finally:
        h.ros.node.destroy_client(client)
    assert "Traceback (most recent call last)" in h.log()
    count = len(h.diagnostics)
    assert h.ros.spin_until(lambda: len(h.diagnostics) > count + 2), "diagnostics stopped"
    assert h.node.poll() is None and h.state() == "active"
    assert "AttributeError" not in h.log()


def test_a_second_ctrl_c_while_shutting_down_ends_the_node_cleanly(
    harness_factory, model_path: Path
) -> None:
    """Under ros2 launch a terminal's Ctrl-C reaches the node twice (directly and forwarded by
    launch). The second, arriving while the node releases its model and DDS entities, must not
    end it as killed by SIGINT (launch: "process has died [... exit code -2]")."""
    h = harness_factory(
        ["-p", f"model_path:={model_path}"], publisher=False, variant="slow_destroy"
    )
    assert h.change_state("configure") and h.change_state("activate")
    h.node.send_signal(signal.SIGINT)
    assert h.ros.spin_until(lambda: "destroying" in h.log()), h.log()
    h.node.send_signal(signal.SIGINT)
    assert h.node.wait(TIMEOUT_S) == 0, h.log()
    assert "KeyboardInterrupt" not in h.log()


def test_wide_frame_with_annotated_subscriber_keeps_the_node_serving(
    harness_factory, make_yolo_onnx, mot_dir: Path, tmp_path: Path
) -> None:
    """A 1 x 21,900,000 bgr8 frame (within the size limit) with a detection, while annotated_image
    has a subscriber (this test's listener): it is drawn and published, and the next good frame is
    answered."""
    model = make_yolo_onnx(
        tmp_path / "always.onnx",
        np.array([[320.0, 320.0, 200.0, 200.0]]),
        np.ones((1, 1)),
        input_hw=(640, 640),
        metadata={"names": "{0: 'thing'}"},
    )
    # Reliable both ways: a lost 66 MB best-effort frame would only cost time, but time is what a
    # CI run has least.
    h = harness_factory(
        ["-p", f"model_path:={model}", "-p", "tracking:=false", "-p", "qos_reliability:=reliable"]
    )
    assert h.ros.spin_until(lambda: h.ros.node.count_publishers("/image_raw") > 0)
    assert h.change_state("configure") and h.change_state("activate")
    assert h.ros.spin_until(lambda: h.ros.node.count_subscribers("/annotated_image") > 0)
    wide = {
        "height": 1,
        "width": 21_900_000,
        "step": 65_700_000,
        "encoding": "bgr8",
        "data_len": 65_700_000,
    }
    stamps = h.send_until(lambda s: bool(h.detections_for(s)), **wide)
    assert h.detections_for(stamps)[0].detections
    assert h.ros.spin_until(lambda: any(a.width == 21_900_000 for a in h.annotated))
    assert h.detect(mot_dir / "img1" / "000001.jpg").detections
    values = h.wait_diagnostics(lambda v: int(v.get("processed", 0)) >= 2)
    assert values["failed"] == "0" and h.node.poll() is None


def test_camera_raw_frames_are_detected_as_their_bgr8_conversion(
    harness_factory, model_path: Path, mot_dir: Path
) -> None:
    """A Bayer and a YUV 4:2:2 camera: the detections of the frame converted to bgr8 (the objects
    of the original bgr8 frame), and an annotated bgr8 image."""
    h = harness_factory(["-p", f"model_path:={model_path}", "-p", "tracking:=false"])
    assert h.change_state("configure") and h.change_state("activate")
    path = mot_dir / "img1" / "000001.jpg"
    frame = cv2.imread(str(path))
    reference = Detector.from_model(model_path)
    seen_in_bgr8 = sorted(reference.names[c] for c in reference(frame).class_ids)

    def check(encoding: str) -> None:
        stamps = h.send_until(
            lambda s: bool(h.detections_for(s)), image=path, image_encoding=encoding
        )
        msg = h.detections_for(stamps)[0]
        expected = reference(*to_bgr8(camera_raw(frame, encoding), encoding))
        assert _labels(msg) == [reference.names[c] for c in expected.class_ids], encoding
        assert sorted(_labels(msg)) == seen_in_bgr8, encoding  # 2 persons, 3 cars
        np.testing.assert_allclose(_xyxy(msg), expected.boxes, atol=1e-2)
        stamp = msg.header.stamp
        assert h.ros.spin_until(lambda: any(a.header.stamp == stamp for a in h.annotated))
        annotated = next(a for a in h.annotated if a.header.stamp == stamp)
        assert (annotated.encoding, annotated.height, annotated.width) == ("bgr8", 480, 640)

    check("bayer_rggb8")
    check("yuv422_yuy2")
    reference.close()
    assert h.values()["failed"] == "0"


def _double(value: float) -> ParameterValue:
    return ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=value)


def _integer(value: int) -> ParameterValue:
    return ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)


def test_bad_parameters_at_start_leave_the_node_unconfigured_until_fixed(
    harness_factory, model_path: Path, tmp_path: Path
) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(
        f"/**/{NODE}:\n  ros__parameters:\n    track_buffer: -3\n    iou_threshold: 5.0\n"
        "    qos_reliability: sometimes\n"
    )
    bad = {
        "conf_threshold": "-1.0",
        "max_detections": "0",
        "qos_depth": "0",
        "diagnostics_period": "0.0",
        "trt_precision": "int4",
        "backend": "cuda",
        "input_timeout": "abc",
        "frame_rate": "14",
    }
    args = ["-p", f"model_path:={model_path}", "--params-file", str(params)]
    for name, value in bad.items():
        args += ["-p", f"{name}:={value}"]
    h = harness_factory(args, publisher=False)
    assert h.state() == "unconfigured" and h.node.poll() is None
    expected = [
        "conf_threshold = -1.0 is out of range: allowed [0, 1]",
        "iou_threshold = 5.0 is out of range: allowed [0, 1]",
        "max_detections = 0 is out of range: allowed [1, 10000]",
        "qos_depth = 0 is out of range: allowed [1, 100]",
        "diagnostics_period = 0.0 is out of range: allowed [0.1, 60]",
        "track_buffer = -3 is out of range: allowed [1, 100000]",
        "trt_precision = 'int4' is not allowed: one of fp16, fp32, int8",
        "backend = 'cuda' is not allowed: one of",
        "qos_reliability = 'sometimes' is not allowed: one of",
        "input_timeout = 'abc' (str) must be a double",
    ]
    for _ in range(2):  # configure keeps failing until the values are fixed
        assert not h.change_state("configure")
        assert h.state() == "unconfigured"
        assert h.ros.spin_until(lambda: "configure failed" in getattr(h.status(), "message", ""))
        assert h.status().level == DiagnosticStatus.ERROR
        for words in expected:
            assert words in h.status().message, h.status().message
    assert (
        "frame_rate" not in h.status().message
    )  # an integer for a double is taken as that double

    ok, reason = _set_parameter(
        h, "conf_threshold", _double(1.5)
    )  # a bad value at run time is refused
    assert not ok and "conf_threshold = 1.5 is out of range" in reason
    fixes = {
        "conf_threshold": _double(0.25),
        "iou_threshold": _double(0.7),
        "max_detections": _integer(300),
        "qos_depth": _integer(1),
        "diagnostics_period": _double(0.25),
        "track_buffer": _integer(30),
        "trt_precision": _string("fp16"),
        "backend": _string("auto"),
        "qos_reliability": _string("best_effort"),
        "input_timeout": _double(5.0),
    }
    for name, value in fixes.items():
        ok, reason = _set_parameter(h, name, value)
        assert ok, f"{name}: {reason}"
    assert h.change_state("configure"), h.status().message
    assert h.change_state("activate")
    assert h.wait_diagnostics(lambda v: v.get("state") == "active")


def test_message_text_in_logs_is_bounded_and_escaped(harness_factory, model_path: Path) -> None:
    h = harness_factory(["-p", f"model_path:={model_path}", "-p", "tracking:=false"])
    assert h.change_state("configure") and h.change_state("activate")
    forged = "cam\n[ERROR] [0.000000000] [yolo_tracker]: forged line"
    sends = {
        "zero_size": {"frame_id": forged, **BAD_FRAMES["zero_size"]},
        "data_too_short": {"frame_id": "f" * (1 << 20), **BAD_FRAMES["data_too_short"]},
        "unsupported_encoding": {
            "height": 2,
            "width": 2,
            "step": 6,
            "data_len": 12,
            "encoding": "e" * 100_000 + "\n[ERROR] [0.000000000] [yolo_tracker]: forged",
        },
    }
    for reason, fields in sends.items():
        h.send_until(lambda _, r=reason: int(h.values().get(f"rejected.{r}", 0)) >= 1, **fields)
    lines = h.log().splitlines()
    assert not [line for line in lines if line.startswith("[ERROR] [0.000000000]")]
    assert "frame_id 'cam\\n[ERROR] [0.000000000] [yolo_tracker]: forged line'" in h.log()
    assert max(len(line) for line in lines) < 1500
    assert any(
        "more characters]" in line and "[rejected.data_too_short:" in line for line in lines
    )


def test_config_file_lists_every_parameter_with_its_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """config/tracker.yaml loads through rcl's parser, names every parameter and repeats the code's
    defaults."""
    import rclpy
    import yaml

    from data_paths import REPO_ROOT
    from yolo_trt_ros.ros.parameters import SPECS
    from yolo_trt_ros.ros.tracker_node import TrackerNode

    config = REPO_ROOT / "config" / "tracker.yaml"
    in_file = yaml.safe_load(config.read_text())[f"/**/{NODE}"]["ros__parameters"]
    defaults = {spec.name: spec.default for spec in SPECS}
    assert set(in_file) == set(defaults)
    assert set(TRACKER_FIELDS) <= set(defaults)  # every TrackerConfig field is a node parameter
    # A copy with one non-default value proves the file reaches the node, also under a namespace
    # (namespace:=robot1).
    changed = tmp_path / "tracker.yaml"
    changed.write_text(
        config.read_text().replace("conf_threshold: 0.25", "conf_threshold: 0.5", 1)
    )
    args = ["--ros-args", "--params-file", str(changed)]
    monkeypatch.setenv(
        "FASTDDS_BUILTIN_TRANSPORTS", "DEFAULT"
    )  # in-process only: a teardown that cannot hang
    context = rclpy.Context()
    rclpy.init(context=context, args=args, domain_id=DOMAIN_ID)
    try:
        for namespace in ("", "robot1"):
            node = TrackerNode(context=context, namespace=namespace)
            for name, default in defaults.items():
                value = node.get_parameter(name).value
                assert value == in_file[name] or name == "conf_threshold"
                assert value == default or name == "conf_threshold"
            assert node.get_parameter("conf_threshold").value == 0.5
            node.destroy_node()
    finally:
        gc.collect()  # rclpy objects go while their context is alive, not in a later test
        rclpy.try_shutdown(context=context)
