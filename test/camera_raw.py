"""Camera-raw frames made from BGR images, independently of OpenCV's conversions: a Bayer mosaic
and YUV 4:2:2 (BT.601 video range, the chroma of each pixel pair averaged)."""

from __future__ import annotations

import numpy as np

_CHANNEL = {"b": 0, "g": 1, "r": 2}


def bayer(bgr: np.ndarray, pattern: str) -> np.ndarray:
    """``bgr`` seen through a Bayer filter of ``pattern`` in ROS order ("rggb": R G on even rows,
    G B on odd rows): HxW uint8."""
    out = np.empty(bgr.shape[:2], np.uint8)
    for i, color in enumerate(pattern):
        dy, dx = divmod(i, 2)
        out[dy::2, dx::2] = bgr[dy::2, dx::2, _CHANNEL[color]]
    return out


def yuv422(bgr: np.ndarray, order: str) -> np.ndarray:
    """``bgr`` (even width) packed as "uyvy" or "yuyv": HxWx2 uint8."""
    b, g, r = np.moveaxis(bgr.astype(np.float64), 2, 0)
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    planes = {
        "y0": y[:, 0::2],
        "y1": y[:, 1::2],
        "u": (u[:, 0::2] + u[:, 1::2]) / 2,
        "v": (v[:, 0::2] + v[:, 1::2]) / 2,
    }
    names = ("u", "y0", "v", "y1") if order == "uyvy" else ("y0", "u", "y1", "v")
    packed = np.stack([planes[n] for n in names], axis=2).reshape(bgr.shape[0], -1, 2)
    return np.clip(np.rint(packed), 0, 255).astype(np.uint8)


def camera_raw(bgr: np.ndarray, encoding: str) -> np.ndarray:
    """``bgr`` as a camera of ``encoding`` (a key of ``encodings.CAMERA_RAW``) delivers it."""
    if encoding.startswith("bayer_"):
        return bayer(bgr, encoding[len("bayer_") : len("bayer_") + 4])
    return yuv422(bgr, {"yuv422": "uyvy", "yuv422_yuy2": "yuyv"}.get(encoding, encoding))
