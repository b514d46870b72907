"""The image encodings the package reads (sensor_msgs/Image names): those the letterbox reads
(``ENCODINGS``), the camera-raw ones converted to bgr8 as a message is read (``CAMERA_RAW``), and
the check of a frame."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from yolo_trt_ros.errors import ImageRejected


@dataclass(frozen=True)
class Encoding:
    channels: int
    rgb: tuple[int, int, int]
    """The source channel of the model's R, G and B planes."""
    to_bgr: int | None
    """The ``cv2.cvtColor`` code to BGR (None: BGR already)."""


ENCODINGS = {
    "bgr8": Encoding(3, (2, 1, 0), None),
    "rgb8": Encoding(3, (0, 1, 2), cv2.COLOR_RGB2BGR),
    "bgra8": Encoding(4, (2, 1, 0), cv2.COLOR_BGRA2BGR),
    "rgba8": Encoding(4, (0, 1, 2), cv2.COLOR_RGBA2BGR),
    "mono8": Encoding(1, (0, 0, 0), cv2.COLOR_GRAY2BGR),
}


@dataclass(frozen=True)
class CameraRaw:
    """An encoding the letterbox does not read, converted to bgr8 first."""

    bytes_per_pixel: int
    to_bgr: int
    """The ``cv2.cvtColor`` code to BGR."""


CAMERA_RAW = {
    # Bayer mosaics, named by ROS after the first two pixels of the first row and by OpenCV after
    # the second and third pixels of the second row: ROS rggb is OpenCV BG (as cv_bridge converts).
    "bayer_rggb8": CameraRaw(1, cv2.COLOR_BayerBG2BGR),
    "bayer_bggr8": CameraRaw(1, cv2.COLOR_BayerRG2BGR),
    "bayer_gbrg8": CameraRaw(1, cv2.COLOR_BayerGR2BGR),
    "bayer_grbg8": CameraRaw(1, cv2.COLOR_BayerGB2BGR),
    # YUV 4:2:2, two pixels in four bytes: U Y0 V Y1 (UYVY), Y0 U Y1 V (YUYV); "yuv422" and
    # "yuv422_yuy2" are the names before Jazzy's sensor_msgs
    "uyvy": CameraRaw(2, cv2.COLOR_YUV2BGR_UYVY),
    "yuv422": CameraRaw(2, cv2.COLOR_YUV2BGR_UYVY),
    "yuyv": CameraRaw(2, cv2.COLOR_YUV2BGR_YUY2),
    "yuv422_yuy2": CameraRaw(2, cv2.COLOR_YUV2BGR_YUY2),
}


def bytes_per_pixel(encoding: str) -> int:
    """Bytes per pixel in an image message of ``encoding`` (either table); ImageRejected
    ("unsupported_encoding") naming every encoding read."""
    if encoding in ENCODINGS:
        return ENCODINGS[encoding].channels
    if encoding in CAMERA_RAW:
        return CAMERA_RAW[encoding].bytes_per_pixel
    raise ImageRejected(
        "unsupported_encoding",
        f"unsupported encoding '{encoding}' (supported: {', '.join([*ENCODINGS, *CAMERA_RAW])})",
    )


def to_bgr8(image: np.ndarray, encoding: str) -> tuple[np.ndarray, str]:
    """A camera-raw frame (H x W x bytes per pixel, as read from its message) demosaiced or
    converted into a new bgr8 array; any other frame as it is. ImageRejected ("bad_layout") for a
    YUV 4:2:2 frame of odd width."""
    raw = CAMERA_RAW.get(encoding)
    if raw is None:
        return image, encoding
    if raw.bytes_per_pixel == 2 and image.shape[1] % 2:
        raise ImageRejected(
            "bad_layout", f"{encoding} image has odd width {image.shape[1]}: 4:2:2 pairs pixels"
        )
    return cv2.cvtColor(image, raw.to_bgr), "bgr8"


def lookup(encoding: str) -> Encoding:
    """The entry of ``encoding`` in ``ENCODINGS``; ImageRejected ("unsupported_encoding") naming
    them, and ``to_bgr8`` for a camera-raw encoding."""
    entry = ENCODINGS.get(encoding)
    if entry is None:
        hint = "; convert camera-raw frames with to_bgr8 first" if encoding in CAMERA_RAW else ""
        raise ImageRejected(
            "unsupported_encoding",
            f"unsupported encoding '{encoding}' (supported: {', '.join(ENCODINGS)}){hint}",
        )
    return entry


def checked_frame(image: np.ndarray, encoding: str) -> np.ndarray:
    """``image`` as a uint8 HxWxC (HxW for mono8) array of ``encoding``; ImageRejected
    ("bad_layout") otherwise."""
    channels = lookup(encoding).channels
    if image.dtype != np.uint8:
        raise ImageRejected("bad_layout", f"{encoding} image must be uint8, got {image.dtype}")
    if channels == 1 and image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    expected = image.ndim == 2 if channels == 1 else image.ndim == 3 and image.shape[2] == channels
    if not expected or image.shape[0] == 0 or image.shape[1] == 0:
        layout = "HxW" if channels == 1 else f"HxWx{channels}"
        raise ImageRejected(
            "bad_layout", f"{encoding} image has shape {image.shape}, expected {layout}"
        )
    return image
