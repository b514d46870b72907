"""sensor_msgs/Image <-> numpy without cv_bridge (duck-typed: no ROS import).

``image_to_array`` returns a zero-copy view of the message buffer. rclpy (rosidl_generator_py)
hands a received ``uint8[]`` field to Python as an ``array.array('B')``; ``np.frombuffer`` wraps it
through the buffer protocol without copying (``bytes``, ``bytearray`` and ``memoryview`` work the
same way). Rows padded to ``step`` bytes become a strided view (``reshape(height, step)[:, :width *
channels]``), still without a copy. The view is only valid while the message lives and must be
treated as read-only: copy before drawing on it. ``image_frame`` converts camera-raw encodings
(Bayer, YUV 4:2:2) into a bgr8 copy. All supported encodings are 8-bit, so ``is_bigendian`` does
not matter; 16-bit and float encodings are rejected.
"""

from __future__ import annotations

import array
from typing import Any, TypeVar

import numpy as np

from yolo_trt_ros.detection.encodings import bytes_per_pixel, to_bgr8
from yolo_trt_ros.errors import ImageRejected

DEFAULT_MAX_PIXELS = 8192 * 8192

MsgT = TypeVar("MsgT")


def image_to_array(msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """View ``msg`` (anything with the sensor_msgs/Image fields) as an HxWxC uint8 array, C the
    bytes per pixel (HxW for one).

    Raises ImageRejected (reasons: ``unsupported_encoding``, ``zero_size``, ``too_large``,
    ``step_too_small``, ``data_too_short``, ``bad_data``) instead of reading past the buffer or
    allocating absurd arrays.
    """
    encoding = msg.encoding
    channels = bytes_per_pixel(encoding)
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height == 0 or width == 0:
        raise ImageRejected("zero_size", f"image has zero size ({width}x{height})")
    if height * width > max_pixels:
        raise ImageRejected(
            "too_large",
            f"image claims {width}x{height} pixels, more than the limit of {max_pixels}",
        )
    row_bytes = width * channels
    if step < row_bytes:
        raise ImageRejected(
            "step_too_small", f"step {step} < width*channels = {width}*{channels} for {encoding}"
        )
    try:
        flat = np.frombuffer(msg.data, dtype=np.uint8)
    except (TypeError, ValueError) as exc:
        raise ImageRejected(
            "bad_data", f"data is not a byte buffer ({type(msg.data).__name__}): {exc}"
        ) from exc
    if step * height > flat.size:
        raise ImageRejected(
            "data_too_short",
            f"step*height = {step}*{height} = {step * height} bytes but data has {flat.size}",
        )
    rows = flat[: step * height].reshape(height, step)
    if step != row_bytes:
        rows = rows[:, :row_bytes]
    return rows.reshape(height, width) if channels == 1 else rows.reshape(height, width, channels)


def array_to_image(arr: np.ndarray, encoding: str, msg: MsgT) -> MsgT:
    """Fill ``msg`` (a sensor_msgs/Image) from an HxWxC / HxW uint8 array, C the bytes per pixel
    of ``encoding``; one memcpy into the message buffer."""
    channels = bytes_per_pixel(encoding)
    expected_ndim = 2 if channels == 1 else 3
    if (
        arr.dtype != np.uint8
        or arr.ndim != expected_ndim
        or (channels > 1 and arr.shape[2] != channels)
    ):
        raise ValueError(f"array {arr.dtype} {arr.shape} does not match encoding {encoding}")
    height, width = arr.shape[:2]
    data = array.array("B")
    data.frombytes(np.ascontiguousarray(arr).data)
    image: Any = msg
    image.height, image.width, image.step = height, width, width * channels
    image.encoding = encoding
    image.is_bigendian = 0
    image.data = data
    return msg


def image_frame(msg: Any) -> tuple[np.ndarray, str]:
    """The frame pipeline's converter for a sensor_msgs/Image: (``image_to_array`` view,
    encoding), or (bgr8 copy, ``"bgr8"``) for a camera-raw encoding."""
    return to_bgr8(image_to_array(msg), str(msg.encoding))
