"""Encodings: camera-raw frames (Bayer, YUV 4:2:2) converted to bgr8, each table entry checked
against frames made without OpenCV (test/camera_raw.py)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from camera_raw import camera_raw
from yolo_trt_ros.detection.encodings import CAMERA_RAW, ENCODINGS, bytes_per_pixel, to_bgr8
from yolo_trt_ros.errors import ImageRejected

BGR = (30, 120, 220)


@pytest.mark.parametrize("encoding", CAMERA_RAW)
def test_a_flat_color_comes_back_as_that_color(encoding: str) -> None:
    flat = np.empty((8, 10, 3), np.uint8)
    flat[:] = BGR
    image, converted = to_bgr8(camera_raw(flat, encoding), encoding)
    assert converted == "bgr8" and image.shape == flat.shape and image.dtype == np.uint8
    inner = image[2:-2, 2:-2].reshape(-1, 3).astype(int)
    assert np.abs(inner - BGR).max() <= 1, np.unique(inner, axis=0)


@pytest.fixture(scope="module")
def frame(mot_dir: Path) -> np.ndarray:
    return cv2.imread(str(mot_dir / "img1" / "000001.jpg"))


@pytest.mark.parametrize("encoding", CAMERA_RAW)
def test_a_real_frame_is_recovered_only_with_its_own_conversion(
    encoding: str, frame: np.ndarray
) -> None:
    """Same-size encodings read the bytes differently: only the right conversion gives the frame
    back (a Bayer pattern or YUV byte order mixed up costs colors)."""
    raw = camera_raw(frame, encoding)

    def error(read_as: str) -> float:
        return float(np.abs(to_bgr8(raw, read_as)[0].astype(int) - frame).mean())

    own = CAMERA_RAW[encoding]
    errors = {
        other: error(other)
        for other, entry in CAMERA_RAW.items()
        if entry.bytes_per_pixel == own.bytes_per_pixel and entry.to_bgr != own.to_bgr
    }
    assert error(encoding) < 2.0
    assert errors and min(errors.values()) > 10.0, errors


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_other_frames_pass_unchanged(encoding: str) -> None:
    image = np.zeros((2, 2, ENCODINGS[encoding].channels), np.uint8)
    assert to_bgr8(image, encoding) == (image, encoding)


def test_yuv422_of_odd_width_is_rejected() -> None:
    with pytest.raises(ImageRejected, match="odd width 5") as info:
        to_bgr8(np.zeros((4, 5, 2), np.uint8), "yuv422")
    assert info.value.reason == "bad_layout"


def test_bytes_per_pixel_of_either_table_and_the_refusal_names_both() -> None:
    assert [bytes_per_pixel(e) for e in ("bgra8", "mono8", "bayer_grbg8", "yuv422_yuy2")] == [
        4,
        1,
        1,
        2,
    ]
    with pytest.raises(ImageRejected, match="unsupported encoding 'mono16'") as info:
        bytes_per_pixel("mono16")
    assert info.value.reason == "unsupported_encoding"
    assert all(name in str(info.value) for name in [*ENCODINGS, *CAMERA_RAW])
