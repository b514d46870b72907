"""Ultralytics-compatible letterbox into a preallocated model input tensor."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from yolo_trt_ros.detection.encodings import ENCODINGS, checked_frame


@dataclass(frozen=True)
class LetterboxTransform:
    """Geometry of one letterbox: original image -> model input.

    ``scale`` is Ultralytics' ratio r; ``resized_hw`` is the size the image was resized to (each
    side rounded, so the exact per-axis gains are ``resized / src``, as Ultralytics ``scale_boxes``
    uses); ``pad_x``/``pad_y`` are the left/top padding in input pixels.
    """

    scale: float
    pad_x: float
    pad_y: float
    src_hw: tuple[int, int]
    resized_hw: tuple[int, int]

    def _gains(self) -> np.ndarray:
        gx = self.resized_hw[1] / self.src_hw[1]
        gy = self.resized_hw[0] / self.src_hw[0]
        return np.array([gx, gy, gx, gy], np.float32)

    def to_original(self, boxes: np.ndarray) -> np.ndarray:
        """Input-tensor xyxy boxes (N, 4) -> original-image xyxy, clipped to the image (new float32
        array)."""
        pad = np.array([self.pad_x, self.pad_y, self.pad_x, self.pad_y], np.float32)
        out = (np.asarray(boxes, np.float32) - pad) / self._gains()
        h, w = self.src_hw
        np.clip(out[:, 0::2], 0, w, out=out[:, 0::2])
        np.clip(out[:, 1::2], 0, h, out=out[:, 1::2])
        return out

    def to_input(self, boxes: np.ndarray) -> np.ndarray:
        """Original-image xyxy boxes (N, 4) -> input-tensor xyxy (new float32 array)."""
        pad = np.array([self.pad_x, self.pad_y, self.pad_x, self.pad_y], np.float32)
        return np.asarray(boxes, np.float32) * self._gains() + pad


def letterbox_geometry(
    src_hw: tuple[int, int], dst_hw: tuple[int, int], stride: int | None = None
) -> LetterboxTransform:
    """Ultralytics ``LetterBox(scaleup=True, center=True)`` geometry for one image size.

    ``stride`` None: ``auto=False`` (pad to ``dst_hw``); else ``auto=True`` (pad only to the
    input ``rect_input_hw`` gives).
    """
    h, w = src_hw
    r = min(dst_hw[0] / h, dst_hw[1] / w)
    new_w, new_h = max(round(w * r), 1), max(round(h * r), 1)
    dw, dh = dst_hw[1] - new_w, dst_hw[0] - new_h
    if stride is not None:
        dw, dh = dw % stride, dh % stride
    return LetterboxTransform(
        r, float(round(dw / 2 - 0.1)), float(round(dh / 2 - 0.1)), (h, w), (new_h, new_w)
    )


def rect_input_hw(
    src_hw: tuple[int, int], dst_hw: tuple[int, int], stride: int
) -> tuple[int, int]:
    """Input size of Ultralytics' ``auto`` letterbox: the image scaled to fit ``dst_hw``, each side
    padded by ``(dst - resized) % stride`` (640x480 -> 640x480, 768x432 -> 640x384 at 640, 32)."""
    t = letterbox_geometry(src_hw, dst_hw)
    (new_h, new_w), (dh, dw) = t.resized_hw, dst_hw
    return new_h + (dh - new_h) % stride, new_w + (dw - new_w) % stride


class Letterbox:
    """Letterbox images into one preallocated (1, 3, H, W) RGB 0..1 tensor of ``dtype`` (float32 or
    float16).

    H, W is ``input_hw``; with a ``stride`` (a dynamic-H/W model's largest stride) it is instead
    the smallest padded rectangle per source size (``rect_input_hw``), reallocated only when that
    size changes.

    The padding (``pad_value``/255) is written only when the source size changes; each frame writes
    just the image region: resize (cv2.INTER_LINEAR, skipped at scale 1) into a reused buffer,
    split channels, then one scale-and- convert per plane straight into the tensor. The returned
    tensor is a read-only view that the next call overwrites.
    """

    def __init__(
        self,
        input_hw: tuple[int, int],
        dtype: type | np.dtype = np.float32,
        pad_value: int = 114,
        stride: int | None = None,
    ):
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.stride = stride
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float16):
            raise ValueError(f"Letterbox dtype must be float32 or float16, got {self.dtype}")
        self.pad_value = pad_value
        self._tensor = np.empty((1, 3, *self.input_hw), self.dtype)
        self._output = self._tensor.view()
        self._output.flags.writeable = False
        self._transform: LetterboxTransform | None = None
        self._resized = np.empty(0, np.uint8)
        self._planes: list[np.ndarray] = []
        self._lut16 = (
            (np.arange(256) / 255).astype(np.float16)[None] if self.dtype == np.float16 else None
        )

    def __call__(
        self, image: np.ndarray, encoding: str = "bgr8"
    ) -> tuple[np.ndarray, LetterboxTransform]:
        """Letterbox ``image`` (HxWx3 bgr8/rgb8, HxWx4 bgra8/rgba8, HxW or HxWx1 mono8; uint8, any
        strides)."""
        image = checked_frame(image, encoding)
        t = self._transform
        if t is None or t.src_hw != image.shape[:2]:
            t = self._transform = letterbox_geometry(image.shape[:2], self.input_hw, self.stride)
            if self.stride is not None:
                hw = rect_input_hw(image.shape[:2], self.input_hw, self.stride)
                if self._tensor.shape[2:] != hw:
                    self._tensor = np.empty((1, 3, *hw), self.dtype)
                    self._output = self._tensor.view()
                    self._output.flags.writeable = False
            self._tensor.fill(self.pad_value / 255)
        resized = self._resize(image, t.resized_hw)
        y, x = int(t.pad_y), int(t.pad_x)
        region = self._tensor[0, :, y : y + t.resized_hw[0], x : x + t.resized_hw[1]]
        if resized.ndim == 2:
            self._normalize(resized, region[0])
            np.copyto(region[1], region[0])
            np.copyto(region[2], region[0])
        else:
            planes = self._split(resized)
            for dst, src in zip(region, ENCODINGS[encoding].rgb, strict=True):
                self._normalize(planes[src], dst)
        return self._output, t

    def _resize(self, image: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
        if image.shape[:2] == hw:
            return image
        shape = hw + image.shape[2:]
        if self._resized.shape != shape:
            self._resized = np.empty(shape, np.uint8)
        return cv2.resize(image, (hw[1], hw[0]), dst=self._resized, interpolation=cv2.INTER_LINEAR)

    def _split(self, image: np.ndarray) -> list[np.ndarray]:
        if len(self._planes) != image.shape[2] or self._planes[0].shape != image.shape[:2]:
            self._planes = [np.empty(image.shape[:2], np.uint8) for _ in range(image.shape[2])]
        cv2.split(image, self._planes)  # writes into the preallocated planes
        return self._planes

    def _normalize(self, src: np.ndarray, dst: np.ndarray) -> None:
        if self._lut16 is None:
            np.multiply(src, np.float32(1 / 255), out=dst)
        else:  # numpy's float16 arithmetic is slow; a 256-entry table through cv2.LUT is not
            cv2.LUT(src, self._lut16, dst=dst)
