"""sensor_msgs/CompressedImage -> numpy for the detector (duck-typed: no ROS import).

The data's magic bytes choose the codec (JPEG ``FF D8 FF``, PNG ``89 50 4E 47 0D 0A 1A 0A``); the
``format`` text (``jpeg``, ``png``, ``bgr8; jpeg compressed bgr8``, ... as image_transport's
compressed plugin writes it, or empty) only serves to refuse image_transport's
``compressedDepth`` images and to name the frame in messages. The width and height the header
declares (JPEG: the first SOFn frame header; PNG: the IHDR chunk) are checked against
``max_pixels`` before anything is decoded, so a small file declaring a huge image (a
decompression bomb) is rejected without allocating it. The data is wrapped with
``np.frombuffer`` (``bytes``, ``array.array('B')`` as rclpy delivers it and ``memoryview`` without
a copy; a list of ints is converted) and decoded by ``cv2.imdecode`` into a new array.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from yolo_trt_ros.errors import ImageRejected
from yolo_trt_ros.ros.image_conversion import DEFAULT_MAX_PIXELS
from yolo_trt_ros.ros.log_text import printable

MAX_COMPRESSED_BYTES = 64 * 1024 * 1024
"""Longest compressed image read; longer data is rejected (``too_large``) unread."""

MAX_JPEG_SEGMENTS = 1024
"""Most JPEG marker segments walked before the frame header (real files have a few dozen)."""

JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})
"""TEM and RST0..RST7: markers without a length field."""
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
"""SOF0..SOF15; C4 (DHT), C8 (JPG) and CC (DAC) share the range but are not frame headers."""


@dataclass(frozen=True)
class _Header:
    codec: str
    width: int
    height: int
    grey: bool


def is_compressed(topic: str) -> bool:
    """Whether ``topic`` is an image_transport compressed topic (``.../compressed``): its
    messages are sensor_msgs/CompressedImage."""
    return topic.rstrip("/").split("/")[-1] == "compressed"


def compressed_to_array(msg: Any, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, str]:
    """Decode ``msg`` (anything with the sensor_msgs/CompressedImage fields) to (HxWx3 uint8,
    ``"bgr8"``) or, for a grey image, (HxW uint8, ``"mono8"``).

    16-bit images are scaled to 8 bits, alpha is dropped. Raises ImageRejected (reasons:
    ``unsupported_format``, ``too_large``, ``zero_size``, ``bad_data``); a declared size over
    ``max_pixels`` is rejected before decoding.
    """
    fmt = str(msg.format)
    if "compresseddepth" in fmt.lower():
        raise ImageRejected(
            "unsupported_format",
            f"format '{printable(fmt)}' is a compressedDepth image; depth images are not "
            "detector input",
        )
    flat = _byte_array(msg.data)
    header = _read_header(flat, fmt)
    if header.width == 0 or header.height == 0:
        raise ImageRejected(
            "zero_size", f"{header.codec} declares zero size ({header.width}x{header.height})"
        )
    if header.width * header.height > max_pixels:
        raise ImageRejected(
            "too_large",
            f"{header.codec} declares {header.width}x{header.height} pixels, more than the "
            f"limit of {max_pixels}; not decoded",
        )
    try:
        image = cv2.imdecode(flat, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise ImageRejected(
            "bad_data", f"{header.codec} could not be decoded: {printable(exc)}"
        ) from exc
    if image is None:
        raise ImageRejected("bad_data", f"corrupt or truncated {header.codec} ({flat.size} bytes)")
    if image.shape[:2] != (header.height, header.width):
        raise ImageRejected(
            "bad_data",
            f"{header.codec} declares {header.width}x{header.height} but decodes to "
            f"{image.shape[1]}x{image.shape[0]}",
        )
    return _for_detector(image, header)


def _byte_array(data: Any) -> np.ndarray:
    """``data`` as a 1-D uint8 array: a view of a buffer, a conversion of a list of ints."""
    if isinstance(data, list):
        if len(data) > MAX_COMPRESSED_BYTES:
            raise _too_long(len(data))
        try:
            data = bytes(data)
        except (TypeError, ValueError) as exc:
            raise ImageRejected(
                "bad_data", f"data list is not a list of bytes (0..255): {printable(exc)}"
            ) from exc
    try:
        flat = np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError) as exc:
        raise ImageRejected(
            "bad_data",
            f"data is not a byte buffer ({type(data).__name__}): {printable(exc)}",
        ) from exc
    if flat.size > MAX_COMPRESSED_BYTES:
        raise _too_long(flat.size)
    return flat


def _too_long(size: int) -> ImageRejected:
    return ImageRejected(
        "too_large",
        f"compressed data has {size} bytes, more than the limit of {MAX_COMPRESSED_BYTES}; "
        "not decoded",
    )


def _read_header(flat: np.ndarray, fmt: str) -> _Header:
    """The declared size, read from the header of the codec the magic bytes name."""
    head = flat[: len(PNG_MAGIC)].tobytes()
    if head.startswith(JPEG_MAGIC):
        return _jpeg_header(flat.data)
    if head.startswith(PNG_MAGIC):
        return _png_header(flat[:33].tobytes())
    if not head:
        raise ImageRejected("bad_data", f"empty data (format '{printable(fmt)}')")
    if JPEG_MAGIC.startswith(head) or PNG_MAGIC.startswith(head):
        raise ImageRejected(
            "bad_data", f"data of {len(head)} bytes ends inside the signature of an image"
        )
    raise ImageRejected(
        "unsupported_format",
        f"data is neither JPEG nor PNG (format '{printable(fmt)}')",
    )


def _jpeg_header(data: memoryview) -> _Header:
    """Walk the marker segments after SOI to the first SOFn frame header."""
    size = len(data)
    pos = 2
    for _ in range(MAX_JPEG_SEGMENTS):
        if pos >= size:
            raise _bad_jpeg("data ends before the frame header")
        if data[pos] != 0xFF:
            raise _bad_jpeg(f"no marker at byte {pos}")
        while pos < size and data[pos] == 0xFF:
            pos += 1
        if pos >= size:
            raise _bad_jpeg("data ends before the frame header")
        marker = data[pos]
        pos += 1
        if marker in _JPEG_STANDALONE:
            continue
        if marker < 0xC0 or marker in (0xD8, 0xD9, 0xDA):
            raise _bad_jpeg(f"marker {marker:02X} at byte {pos - 1} before the frame header")
        if pos + 2 > size:
            raise _bad_jpeg("data ends before the frame header")
        length = data[pos] << 8 | data[pos + 1]
        if length < 2:
            raise _bad_jpeg(f"segment {marker:02X} at byte {pos - 1} has length {length}")
        if marker in _JPEG_SOF:
            if length < 8 or pos + 8 > size:
                raise _bad_jpeg("frame header is truncated")
            height, width = struct.unpack_from(">HH", data, pos + 3)
            return _Header("JPEG", width, height, grey=data[pos + 7] == 1)
        pos += length
    raise _bad_jpeg(f"more than {MAX_JPEG_SEGMENTS} marker segments before the frame header")


def _bad_jpeg(detail: str) -> ImageRejected:
    return ImageRejected("bad_data", f"corrupt or truncated JPEG: {detail}")


def _png_header(head: bytes) -> _Header:
    """The IHDR chunk, which must follow the signature, with its CRC checked."""
    if len(head) < 33:
        raise ImageRejected("bad_data", f"truncated PNG: {len(head)} bytes, no complete IHDR")
    length, kind = struct.unpack_from(">I4s", head, 8)
    if length != 13 or kind != b"IHDR":
        raise ImageRejected("bad_data", "corrupt PNG: the first chunk is not a 13-byte IHDR")
    (crc,) = struct.unpack_from(">I", head, 29)
    if zlib.crc32(head[12:29]) != crc:
        raise ImageRejected("bad_data", "corrupt PNG: IHDR CRC mismatch")
    width, height, _depth, colour_type = struct.unpack_from(">IIBB", head, 16)
    return _Header("PNG", width, height, grey=colour_type in (0, 4))


def _for_detector(image: np.ndarray, header: _Header) -> tuple[np.ndarray, str]:
    """A decoded image as uint8 BGR or grey: 16 bits -> 8, alpha dropped."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ImageRejected("bad_data", f"{header.codec} decodes to unsupported {image.dtype}")
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels == 1:
        return image.reshape(image.shape[:2]), "mono8"
    if channels == 2 or (header.grey and channels in (3, 4)):
        return np.ascontiguousarray(image[:, :, 0]), "mono8"
    if channels == 3:
        return image, "bgr8"
    if channels == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR), "bgr8"
    raise ImageRejected("bad_data", f"{header.codec} decodes to {channels} channels")
