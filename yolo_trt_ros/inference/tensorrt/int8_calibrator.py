"""INT8 calibration for the engine builder: letterboxed real images fed to a TensorRT calibrator.

``CalibrationImages`` is plain (OpenCV + the pipeline's Letterbox); ``make_calibrator`` wraps it in
a ``tensorrt.IInt8MinMaxCalibrator`` (what Ultralytics uses for YOLO) or
``IInt8EntropyCalibrator2`` that copies each batch to the GPU with pycuda. The calibration cache
(``CalibrationCache``) lets later builds skip calibration; it is used only when its key (ONNX
sha256, calibration images, input shape, calibrator, TensorRT version) matches, so a retrained
model or a new image set is calibrated again. An exception while reading a batch ends calibration
(TensorRT cannot take it) and is kept in ``error``; the builder raises it after the build.
(TensorRT deprecates implicit INT8 calibration from 10.1 and removes it in 11, where INT8 needs
Q/DQ nodes in the ONNX.)
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from yolo_trt_ros.detection.letterbox import Letterbox
from yolo_trt_ros.inference.tensorrt.engine_cache import write_atomic

if TYPE_CHECKING:
    from typing_extensions import Buffer

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
FLOAT32 = np.dtype(np.float32)
CALIBRATORS = ("minmax", "entropy")
"""INT8 calibration algorithms: TensorRT's IInt8MinMaxCalibrator and IInt8EntropyCalibrator2."""


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

    def digest(self) -> str:
        """sha256 of what calibration reads: batch shape, dtype and each image's name, size and
        modification time."""
        digest = hashlib.sha256(f"{list(self.shape)} {self._letterbox.dtype.str}\n".encode())
        for path in self.files:
            stat = path.stat()
            digest.update(f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()

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


def calibration_key(
    onnx_sha256: str, images: CalibrationImages, calibrator: str, tensorrt_version: str
) -> dict[str, str]:
    """What a calibration cache was computed from; a cache is reused only for an equal key."""
    return {
        "onnx_sha256": onnx_sha256,
        "images": images.digest(),
        "calibrator": calibrator,
        "tensorrt_version": tensorrt_version,
    }


class CalibrationCache:
    """TensorRT's calibration table in ``path`` with its key in ``<path>.json``."""

    def __init__(self, path: Path, key: Mapping[str, str], log: logging.Logger):
        self.path = path
        self.key_path = path.with_name(path.name + ".json")
        self.key = dict(key)
        self._log = log

    def read(self) -> bytes | None:
        """The cached table when its key matches, else None (logged: calibrate)."""
        if not self.path.is_file():
            return None
        try:
            recorded = json.loads(self.key_path.read_text())
        except (OSError, ValueError):
            recorded = None
        if recorded != self.key:
            changed = (
                ", ".join(k for k in self.key if recorded.get(k) != self.key[k])
                if isinstance(recorded, dict)
                else f"no readable key {self.key_path.name}"
            )
            self._log.info(
                "INT8 calibration: cache %s is stale (%s), calibrating again", self.path, changed
            )
            return None
        self._log.info("INT8 calibration: using cache %s", self.path)
        return self.path.read_bytes()

    def write(self, table: bytes) -> None:
        write_atomic(self.path, table)
        write_atomic(self.key_path, (json.dumps(self.key, indent=2) + "\n").encode())
        self._log.info("INT8 calibration: cache written to %s", self.path)


def make_calibrator(
    algorithm: str, images: CalibrationImages, cache: CalibrationCache, log: logging.Logger
) -> Any:
    """A TensorRT calibrator (``algorithm`` from CALIBRATORS) over ``images`` with ``cache``.

    Besides TensorRT's methods it has ``error`` (the exception that ended ``get_batch``, or None)
    and ``free()``, which frees its device buffer (call it after the build). Needs the CUDA context
    current.
    """
    import tensorrt as trt

    bases = {"minmax": trt.IInt8MinMaxCalibrator, "entropy": trt.IInt8EntropyCalibrator2}
    if algorithm not in bases:
        raise ValueError(f"calibrator must be one of {', '.join(CALIBRATORS)}, got {algorithm!r}")
    return _calibrator_class(bases[algorithm])(images, cache, log)


def _calibrator_class(base: Any) -> Any:
    import pycuda.driver as cuda

    class _Calibrator(base):
        def __init__(
            self, images: CalibrationImages, cache: CalibrationCache, log: logging.Logger
        ) -> None:
            base.__init__(self)
            self._images = images
            self._batches = iter(images)
            self._cache = cache
            self._log = log
            self._device: Any = cuda.mem_alloc(images.batch_nbytes)
            self.batches_used = 0
            self.error: Exception | None = None

        def get_batch_size(self) -> int:
            return self._images.batch_size

        def get_batch(self, names: list[str]) -> list[int]:
            # An exception must not reach TensorRT (it would end calibration silently).
            try:
                batch = next(self._batches, None)
                if batch is None:
                    return []
                cuda.memcpy_htod(self._device, batch)
            except Exception as exc:  # noqa: BLE001 - kept and raised by the builder
                self.error = exc
                return []
            self.batches_used += 1
            if self.batches_used % 50 == 0:
                self._log.info(
                    "INT8 calibration: %d/%d batches", self.batches_used, len(self._images)
                )
            return [int(self._device)]

        def read_calibration_cache(self) -> bytes | None:  # None: calibrate (documented use)
            table = self._cache.read()
            if table is None:
                self._log.info(
                    "INT8 calibration: %d images from %s",
                    len(self._images.files),
                    self._images.folder,
                )
            return table

        def write_calibration_cache(self, cache: Buffer) -> None:
            if self.error is not None:
                self._log.warning("INT8 calibration failed: not caching its table")
                return
            self._cache.write(bytes(memoryview(cache)))

        def free(self) -> None:
            self._device.free()

    return _Calibrator
