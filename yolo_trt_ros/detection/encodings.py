"""The image encodings the package reads (sensor_msgs/Image names): one table, and the check of a
frame."""

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


def lookup(encoding: str) -> Encoding:
    """The entry of ``encoding``; ImageRejected ("unsupported_encoding") naming the supported
    ones."""
    entry = ENCODINGS.get(encoding)
    if entry is None:
        raise ImageRejected(
            "unsupported_encoding",
            f"unsupported encoding '{encoding}' (supported: {', '.join(ENCODINGS)})",
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
