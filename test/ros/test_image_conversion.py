"""Image <-> numpy conversion: content, zero-copy views, padded rows, and every rejection
reason."""

from __future__ import annotations

import array
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from camera_raw import camera_raw
from yolo_trt_ros.detection.encodings import CAMERA_RAW, ENCODINGS, bytes_per_pixel, to_bgr8
from yolo_trt_ros.errors import ImageRejected
from yolo_trt_ros.ros.image_conversion import array_to_image, image_frame, image_to_array

SUPPORTED_ENCODINGS = (*ENCODINGS, *CAMERA_RAW)

try:
    from sensor_msgs.msg import Image
except ImportError:  # the plain tests also run without ROS, on a stand-in with the same fields
    Image = None


def make_msg(
    arr: np.ndarray, encoding: str, pad: int = 0, data_type=array.array
) -> SimpleNamespace:
    """A message as rclpy delivers it: rows of ``step`` bytes (optionally padded) in ``data``."""
    height, width = arr.shape[:2]
    rows = arr.reshape(height, -1)
    padded = np.zeros((height, rows.shape[1] + pad), np.uint8)
    padded[:, : rows.shape[1]] = rows
    raw = padded.tobytes()
    data = array.array("B", raw) if data_type is array.array else data_type(raw)
    return SimpleNamespace(
        height=height,
        width=width,
        step=padded.shape[1],
        encoding=encoding,
        is_bigendian=0,
        data=data,
    )


def sample(encoding: str, height: int = 7, width: int = 5) -> np.ndarray:
    channels = bytes_per_pixel(encoding)
    shape = (height, width) if channels == 1 else (height, width, channels)
    return np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)


@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
@pytest.mark.parametrize("data_type", [array.array, bytes, bytearray])
def test_view_matches_original_without_copy(encoding: str, data_type) -> None:
    original = sample(encoding)
    msg = make_msg(original, encoding, data_type=data_type)
    view = image_to_array(msg)
    assert view.shape == original.shape
    assert view.dtype == np.uint8
    np.testing.assert_array_equal(view, original)
    assert np.shares_memory(view, np.frombuffer(msg.data, np.uint8))


@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
def test_padded_rows_are_a_strided_view(encoding: str) -> None:
    original = sample(encoding, height=6, width=9)
    msg = make_msg(original, encoding, pad=13)
    view = image_to_array(msg)
    np.testing.assert_array_equal(view, original)
    assert np.shares_memory(view, np.frombuffer(msg.data, np.uint8))
    assert view.strides[0] == msg.step


def test_trailing_bytes_beyond_step_height_are_ignored() -> None:
    original = sample("bgr8")
    msg = make_msg(original, "bgr8")
    msg.data.extend(b"\x07" * 11)
    np.testing.assert_array_equal(image_to_array(msg), original)


def test_view_of_real_frame(mot_dir) -> None:
    frame = cv2.imread(str(mot_dir / "img1" / "000001.jpg"))
    assert frame.shape == (480, 640, 3)
    msg = make_msg(frame, "bgr8")
    view = image_to_array(msg)
    np.testing.assert_array_equal(view, frame)
    assert np.shares_memory(view, np.frombuffer(msg.data, np.uint8))


@pytest.mark.parametrize(
    ("change", "reason", "words"),
    [
        ({"encoding": "nv12"}, "unsupported_encoding", "nv12"),
        ({"encoding": "32FC1"}, "unsupported_encoding", "32FC1"),
        ({"encoding": "mono16"}, "unsupported_encoding", "mono16"),
        ({"width": 0}, "zero_size", "zero size"),
        ({"height": 0}, "zero_size", "zero size"),
        ({"width": 100000, "height": 100000, "step": 300000}, "too_large", "100000x100000"),
        ({"step": 14}, "step_too_small", "step 14"),
        ({"height": 8}, "data_too_short", "data has 105"),
        ({"step": 16}, "data_too_short", "16*7"),
        ({"data": [1, 2, 3]}, "bad_data", "byte buffer"),
    ],
)
def test_bad_input_is_rejected_with_reason(change: dict, reason: str, words: str) -> None:
    msg = make_msg(sample("bgr8"), "bgr8")  # 7 rows x 15 bytes
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(ImageRejected) as info:
        image_to_array(msg)
    assert info.value.reason == reason
    assert words in str(info.value)


def test_frames_of_the_pipeline_are_views_or_bgr8_copies_of_camera_raw(mot_dir) -> None:
    frame = cv2.imread(str(mot_dir / "img1" / "000001.jpg"))
    msg = make_msg(frame, "bgr8", pad=3)
    view, encoding = image_frame(msg)
    assert encoding == "bgr8" and np.shares_memory(view, np.frombuffer(msg.data, np.uint8))
    for raw_encoding in CAMERA_RAW:
        raw = camera_raw(frame, raw_encoding)
        msg = make_msg(raw, raw_encoding, pad=3)
        image, encoding = image_frame(msg)
        assert encoding == "bgr8" and image.shape == frame.shape
        np.testing.assert_array_equal(image, to_bgr8(raw, raw_encoding)[0])
        assert not np.shares_memory(image, np.frombuffer(msg.data, np.uint8))


def test_max_pixels_is_configurable() -> None:
    msg = make_msg(sample("mono8", 10, 10), "mono8")
    assert image_to_array(msg, max_pixels=100).shape == (10, 10)
    with pytest.raises(ImageRejected, match="limit of 99"):
        image_to_array(msg, max_pixels=99)


@pytest.mark.parametrize("encoding", SUPPORTED_ENCODINGS)
def test_array_to_image_round_trip(encoding: str) -> None:
    original = sample(encoding, 4, 6)
    msg = array_to_image(original[:, ::-1], encoding, SimpleNamespace())  # non-contiguous input
    assert (msg.height, msg.width, msg.encoding, msg.is_bigendian) == (4, 6, encoding, 0)
    assert msg.step == 6 * (1 if original.ndim == 2 else original.shape[2])
    assert isinstance(msg.data, array.array) and msg.data.typecode == "B"
    np.testing.assert_array_equal(image_to_array(msg), original[:, ::-1])


@pytest.mark.skipif(Image is None, reason="sensor_msgs not installed")
def test_array_to_image_fills_a_real_message() -> None:
    original = sample("bgr8", 3, 2)
    msg = array_to_image(original, "bgr8", Image())
    assert isinstance(msg, Image)
    np.testing.assert_array_equal(image_to_array(msg), original)


def test_array_to_image_refuses_mismatched_arrays() -> None:
    with pytest.raises(ValueError, match="does not match"):
        array_to_image(np.zeros((2, 2, 3), np.uint8), "bgra8", SimpleNamespace())
    with pytest.raises(ValueError, match="does not match"):
        array_to_image(np.zeros((2, 2, 3), np.float32), "bgr8", SimpleNamespace())
    with pytest.raises(ValueError, match="unsupported encoding"):
        array_to_image(np.zeros((2, 2), np.uint8), "mono16", SimpleNamespace())
