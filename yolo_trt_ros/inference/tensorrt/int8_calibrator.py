"""INT8 calibration for the engine builder: letterboxed real images fed to TensorRT's entropy
calibrator.

``CalibrationImages`` is plain (OpenCV + the pipeline's Letterbox); ``make_entropy_calibrator``
wraps it in a ``tensorrt.IInt8EntropyCalibrator2`` that copies each batch to the GPU with pycuda
and reads/writes a calibration cache, so later builds skip calibration. (TensorRT deprecates
implicit INT8 calibration from 10.1 and removes it in 11, where INT8 needs Q/DQ nodes in the ONNX.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from yolo_trt_ros.detection.letterbox import Letterbox

if TYPE_CHECKING:
    import tensorrt as trt
    from typing_extensions import Buffer

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
FLOAT32 = np.dtype(np.float32)


class CalibrationImages:
    """Batches (batch, 3, H, W) of letterboxed images from ``folder`` (sorted, at most
    ``max_images``)."""

    def __init__(
        self,
        folder: str | Path,
        input_hw: tuple[int, int],
        batch_size: int = 1,
        dtype: np.dtype = FLOAT32,
        max_images: int = 1000,
    ):
        folder = Path(folder)
        if not folder.is_dir():
            raise ValueError(f"calibration folder {folder}: not a directory")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[
            :max_images
        ]
        if len(files) < batch_size:
            raise ValueError(
                f"calibration folder {folder}: {len(files)} images ({', '.join(IMAGE_SUFFIXES)}), "
                f"need at least {batch_size}"
            )
        self.folder = folder
        self.files = files
        self.batch_size = batch_size
        self.shape = (batch_size, 3, int(input_hw[0]), int(input_hw[1]))
        self._letterbox = Letterbox(self.shape[2:], dtype)

    @property
    def batch_nbytes(self) -> int:
        return int(np.prod(self.shape)) * self._letterbox.dtype.itemsize

    def __len__(self) -> int:
        return len(self.files) // self.batch_size

    def __iter__(self) -> Iterator[np.ndarray]:
        batch = np.empty(self.shape, self._letterbox.dtype)
        for i, path in enumerate(self.files[: len(self) * self.batch_size]):
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                raise ValueError(f"calibration image {path} cannot be decoded")
            tensor, _ = self._letterbox(image, "bgr8")
            batch[i % self.batch_size] = tensor[0]
            if i % self.batch_size == self.batch_size - 1:
                yield batch


def make_entropy_calibrator(
    images: CalibrationImages, cache_path: Path, log: logging.Logger
) -> tuple[trt.IInt8Calibrator, Callable[[], None]]:
    """An IInt8EntropyCalibrator2 over ``images`` with calibration cache ``cache_path`` (read if
    present), and the function that frees its device buffer (call it after the build). Needs the
    CUDA context current."""
    import pycuda.driver as cuda
    import tensorrt as trt

    class _EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self._batches = iter(images)
            self._device: Any = cuda.mem_alloc(images.batch_nbytes)
            self.batches_used = 0

        def get_batch_size(self) -> int:
            return images.batch_size

        def get_batch(self, names: list[str]) -> list[int]:
            batch = next(self._batches, None)
            if batch is None:
                return []
            cuda.memcpy_htod(self._device, batch)
            self.batches_used += 1
            if self.batches_used % 50 == 0:
                log.info("INT8 calibration: %d/%d batches", self.batches_used, len(images))
            return [int(self._device)]

        def read_calibration_cache(
            self,
        ) -> bytes | None:  # None: no cache, calibrate (TensorRT's documented use)
            if cache_path.is_file():
                log.info("INT8 calibration: using cache %s (delete it to recalibrate)", cache_path)
                return cache_path.read_bytes()
            log.info("INT8 calibration: %d images from %s", len(images.files), images.folder)
            return None

        def write_calibration_cache(self, cache: Buffer) -> None:
            cache_path.write_bytes(bytes(memoryview(cache)))
            log.info("INT8 calibration: cache written to %s", cache_path)

        def free(self) -> None:
            self._device.free()

    calibrator = _EntropyCalibrator()
    return calibrator, calibrator.free
