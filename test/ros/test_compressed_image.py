"""CompressedImage -> numpy: JPEG/PNG round trips for every format spelling and data container,
decompression bombs refused before decoding, and every kind of bad data rejected as
ImageRejected."""

from __future__ import annotations

import array
import struct
import zlib
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import cv2
import numpy as np
import pytest

from yolo_trt_ros.errors import ImageRejected
from yolo_trt_ros.ros import compressed_image
from yolo_trt_ros.ros.compressed_image import MAX_COMPRESSED_BYTES, compressed_to_array

CONTAINERS: dict[str, Callable[[bytes], Any]] = {
    "bytes": bytes,
    "array": lambda raw: array.array("B", raw),
    "memoryview": memoryview,
    "list": list,
}
JPEG_FORMATS = [
    "jpeg",
    "jpg",
    " JPEG ",
    "",
    "bgr8; jpeg compressed bgr8",
    "rgb8; jpeg compressed bgr8",
    " BGR8; JPEG Compressed BGR8 ",
]
PNG_FORMATS = [
    "png",
    "PNG",
    "",
    "bgr8; png compressed bgr8",
    "mono8; png compressed mono8",
    "bgra8; png compressed bgra8",
    "mono16; png compressed mono16",
]


def colour(height: int = 48, width: int = 64) -> np.ndarray:
    """A smooth BGR image: JPEG reproduces it within a few levels."""
    y, x = np.mgrid[0:height, 0:width]
    return np.dstack([x * 4, y * 5, (x + y) * 2]).astype(np.uint8)


def grey(height: int = 48, width: int = 64) -> np.ndarray:
    return np.ascontiguousarray(colour(height, width)[:, :, 1])


def encode(image: np.ndarray, ext: str, *params: int) -> bytes:
    ok, buffer = cv2.imencode(ext, image, list(params))
    assert ok
    return buffer.tobytes()


def make_msg(raw: bytes, fmt: str, container: str = "array") -> SimpleNamespace:
    return SimpleNamespace(format=fmt, data=CONTAINERS[container](raw))


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_ihdr(width: int, height: int, depth: int = 8, colour_type: int = 2) -> bytes:
    return png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0))


def handmade_png(
    image: np.ndarray, colour_type: int, declared: tuple[int, int] | None = None
) -> bytes:
    """An 8-bit PNG of ``image`` written without cv2; ``declared`` (width, height) overrides the
    IHDR size (its CRC stays valid)."""
    height, width = image.shape[:2]
    raw = b"".join(b"\0" + image[row].tobytes() for row in range(height))
    width, height = declared or (width, height)
    return (
        compressed_image.PNG_MAGIC
        + png_ihdr(width, height, colour_type=colour_type)
        + png_chunk(b"IDAT", zlib.compress(raw))
        + png_chunk(b"IEND", b"")
    )


def jpeg_segments(raw: bytes) -> list[tuple[int, int, int]]:
    """(marker, offset of FF, offset after the segment) of each marker segment up to SOS."""
    segments, pos = [], 2
    while True:
        marker = raw[pos + 1]
        end = pos + 2 + struct.unpack_from(">H", raw, pos + 2)[0]
        segments.append((marker, pos, end))
        if marker == 0xDA:
            return segments
        pos = end


def sof_offset(raw: bytes) -> int:
    return next(start for marker, start, _ in jpeg_segments(raw) if marker in (0xC0, 0xC2))


def with_jpeg_size(raw: bytes, width: int, height: int) -> bytes:
    """``raw`` with its frame header declaring ``width`` x ``height``."""
    pos = sof_offset(raw) + 5
    return raw[:pos] + struct.pack(">HH", height, width) + raw[pos + 4 :]


def reject(msg: Any, **kwargs: int) -> ImageRejected:
    with pytest.raises(ImageRejected) as info:
        compressed_to_array(msg, **kwargs)
    return info.value


@pytest.fixture
def no_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_args: object) -> None:
        pytest.fail("cv2.imdecode was called")

    monkeypatch.setattr(compressed_image.cv2, "imdecode", fail)


@pytest.mark.parametrize("container", CONTAINERS)
@pytest.mark.parametrize("fmt", JPEG_FORMATS)
def test_colour_jpeg_round_trip(fmt: str, container: str) -> None:
    source = colour()
    image, encoding = compressed_to_array(
        make_msg(encode(source, ".jpg", cv2.IMWRITE_JPEG_QUALITY, 95), fmt, container)
    )
    assert encoding == "bgr8"
    assert image.shape == source.shape and image.dtype == np.uint8
    assert np.abs(image.astype(int) - source).mean() < 3


@pytest.mark.parametrize("container", CONTAINERS)
def test_grey_and_progressive_jpeg_round_trip(container: str) -> None:
    image, encoding = compressed_to_array(
        make_msg(
            encode(grey(), ".jpg", cv2.IMWRITE_JPEG_QUALITY, 95),
            "mono8; jpeg compressed mono8",
            container,
        )
    )
    assert encoding == "mono8" and image.shape == grey().shape and image.dtype == np.uint8
    assert np.abs(image.astype(int) - grey()).mean() < 3
    progressive = encode(
        colour(), ".jpg", cv2.IMWRITE_JPEG_PROGRESSIVE, 1, cv2.IMWRITE_JPEG_QUALITY, 95
    )
    assert 0xC2 in [marker for marker, _, _ in jpeg_segments(progressive)]
    image, encoding = compressed_to_array(make_msg(progressive, "jpeg", container))
    assert encoding == "bgr8" and image.shape == colour().shape
    assert np.abs(image.astype(int) - colour()).mean() < 3


@pytest.mark.parametrize("container", CONTAINERS)
@pytest.mark.parametrize("fmt", PNG_FORMATS)
def test_png_round_trip_is_exact(fmt: str, container: str) -> None:
    source = colour()
    rgba = np.dstack([source, np.full(source.shape[:2], 77, np.uint8)])
    deep = source.astype(np.uint16) * 257 + 3
    cases = [
        (source, source, "bgr8"),
        (grey(), grey(), "mono8"),
        (rgba, source, "bgr8"),
        (deep, source, "bgr8"),
        (deep[:, :, 0], source[:, :, 0], "mono8"),
    ]
    for original, expected, expected_encoding in cases:
        image, encoding = compressed_to_array(make_msg(encode(original, ".png"), fmt, container))
        assert encoding == expected_encoding
        assert image.dtype == np.uint8 and image.flags.c_contiguous
        np.testing.assert_array_equal(image, expected)


def test_grey_with_alpha_png_is_mono8() -> None:
    pixels = np.dstack([grey(), np.full(grey().shape, 200, np.uint8)])
    image, encoding = compressed_to_array(make_msg(handmade_png(pixels, colour_type=4), "png"))
    assert encoding == "mono8"
    np.testing.assert_array_equal(image, grey())


def test_magic_bytes_choose_the_codec_over_the_format_text() -> None:
    image, encoding = compressed_to_array(
        make_msg(encode(colour(), ".png"), "bgr8; jpeg compressed bgr8")
    )
    assert encoding == "bgr8"
    np.testing.assert_array_equal(image, colour())
    image, _ = compressed_to_array(make_msg(encode(colour(), ".jpg"), "png"))
    assert image.shape == colour().shape


@pytest.mark.parametrize("container", ["bytes", "array", "memoryview"])
def test_buffers_are_decoded_without_a_copy(
    monkeypatch: pytest.MonkeyPatch, container: str
) -> None:
    decode = cv2.imdecode
    seen: list[np.ndarray] = []

    def spy(buffer: np.ndarray, flags: int) -> Any:
        seen.append(buffer)
        return decode(buffer, flags)

    monkeypatch.setattr(compressed_image.cv2, "imdecode", spy)
    msg = make_msg(encode(colour(), ".png"), "png", container)
    compressed_to_array(msg)
    assert np.shares_memory(seen[0], np.frombuffer(msg.data, np.uint8))


@pytest.mark.usefixtures("no_decode")
def test_png_bomb_is_rejected_without_decoding() -> None:
    tiny = np.zeros((2, 2, 3), np.uint8)
    bomb = handmade_png(tiny, colour_type=2, declared=(100_000, 100_000))
    assert len(bomb) < 100
    error = reject(make_msg(bomb, "png"))
    assert error.reason == "too_large" and "100000x100000" in str(error)


@pytest.mark.usefixtures("no_decode")
def test_jpeg_bomb_is_rejected_without_decoding() -> None:
    bomb = with_jpeg_size(encode(colour(8, 8), ".jpg"), 65500, 65500)
    error = reject(make_msg(bomb, "jpeg"))
    assert error.reason == "too_large" and "65500x65500" in str(error)
    progressive = encode(colour(8, 8), ".jpg", cv2.IMWRITE_JPEG_PROGRESSIVE, 1)
    assert reject(make_msg(with_jpeg_size(progressive, 65500, 65500), "")).reason == "too_large"


def test_handmade_png_with_its_true_size_decodes() -> None:
    tiny = colour(2, 2)
    image, _ = compressed_to_array(make_msg(handmade_png(tiny[:, :, ::-1], colour_type=2), "png"))
    np.testing.assert_array_equal(image, tiny)


def test_max_pixels_is_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    msg = make_msg(encode(colour(), ".jpg"), "jpeg")
    image, _ = compressed_to_array(msg, max_pixels=64 * 48)
    assert image.shape == (48, 64, 3)
    monkeypatch.setattr(compressed_image.cv2, "imdecode", lambda *_: pytest.fail("decoded"))
    assert reject(msg, max_pixels=64 * 48 - 1).reason == "too_large"


@pytest.mark.usefixtures("no_decode")
def test_too_long_data_is_rejected_unread() -> None:
    raw = compressed_image.JPEG_MAGIC + bytes(MAX_COMPRESSED_BYTES)
    error = reject(make_msg(raw, "jpeg", "memoryview"))
    assert error.reason == "too_large" and str(MAX_COMPRESSED_BYTES) in str(error)


@pytest.mark.usefixtures("no_decode")
def test_declared_zero_size() -> None:
    assert (
        reject(make_msg(with_jpeg_size(encode(colour(), ".jpg"), 64, 0), "jpeg")).reason
        == "zero_size"
    )
    zero_png = handmade_png(colour(2, 2), colour_type=2, declared=(0, 2))
    assert reject(make_msg(zero_png, "png")).reason == "zero_size"


@pytest.mark.parametrize(
    "fmt", ["16UC1; compressedDepth png", "32FC1; compressedDepth rvl", "16UC1; compressedDepth"]
)
def test_compressed_depth_is_not_detector_input(fmt: str) -> None:
    error = reject(make_msg(encode(colour(), ".png"), fmt))
    assert error.reason == "unsupported_format" and "depth" in str(error)


@pytest.mark.parametrize("ext", [".bmp", ".tiff"])
def test_other_codecs_are_unsupported(ext: str) -> None:
    error = reject(make_msg(encode(colour(), ext), "bgr8; tiff compressed bgr8"))
    assert error.reason == "unsupported_format" and "tiff compressed" in str(error)


def test_gif_and_random_bytes_are_unsupported() -> None:
    gif = b"GIF89a" + bytes([8, 0, 8, 0, 0, 0, 0]) + b"\x3b"
    assert reject(make_msg(gif, "gif")).reason == "unsupported_format"
    noise = np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8)
    noise[0] = 0x42
    assert reject(make_msg(noise.tobytes(), "jpeg")).reason == "unsupported_format"


def test_empty_data_and_bare_signatures_are_bad_data() -> None:
    for raw in (b"", b"\xff", b"\xff\xd8", compressed_image.PNG_MAGIC[:5]):
        assert reject(make_msg(raw, "jpeg")).reason == "bad_data"


@pytest.mark.parametrize("codec", [".jpg", ".png"])
def test_truncated_data_is_bad_data(codec: str) -> None:
    raw = encode(colour(), codec)
    for cut in (3, 8, 12, 20, 30, 100, len(raw) // 2, len(raw) - 20, len(raw) - 1):
        assert reject(make_msg(raw[:cut], "")).reason == "bad_data", cut


@pytest.mark.usefixtures("no_decode")
def test_jpeg_without_frame_header_is_bad_data() -> None:
    raw = encode(colour(), ".jpg")
    _, start, end = next(s for s in jpeg_segments(raw) if s[0] == 0xC0)
    error = reject(make_msg(raw[:start] + raw[end:], "jpeg"))
    assert error.reason == "bad_data" and "JPEG" in str(error)


@pytest.mark.usefixtures("no_decode")
def test_png_header_faults_are_rejected_before_decoding() -> None:
    raw = encode(colour(), ".png")
    wrong_crc = raw[:29] + bytes([raw[29] ^ 1]) + raw[30:]
    renamed = compressed_image.PNG_MAGIC + png_chunk(b"iHDR", raw[16:29]) + raw[33:]
    not_first = compressed_image.PNG_MAGIC + png_chunk(b"tEXt", b"a\0b") + raw[8:]
    for bad in (wrong_crc, renamed, not_first):
        assert reject(make_msg(bad, "png")).reason == "bad_data"


def test_jpeg_marker_walk_follows_the_standard() -> None:
    raw = encode(colour(), ".jpg")
    segments = jpeg_segments(raw)
    sof = sof_offset(raw)
    filled = raw[:sof] + b"\xff\xff\xff" + raw[sof:]
    standalone = raw[:2] + b"\xff\xd0\xff\x01" + raw[2:]
    tables = b"".join(raw[start:end] for marker, start, end in segments if marker == 0xC4)
    tables_first = raw[:2] + tables + raw[2:].replace(tables, b"")
    assert tables_first.index(b"\xff\xc4") < sof_offset(tables_first)
    for variant in (filled, standalone, tables_first):
        image, _ = compressed_to_array(make_msg(variant, "jpeg"))
        assert image.shape == (48, 64, 3)


@pytest.mark.usefixtures("no_decode")
def test_jpeg_marker_walk_faults_are_rejected_before_decoding() -> None:
    raw = encode(colour(), ".jpg")
    sof = sof_offset(raw)
    garbage = [raw[:sof] + junk + raw[sof:] for junk in (b"\x00", b"\xc0")]
    short_length = raw[: sof + 2] + b"\x00\x01" + raw[sof + 4 :]
    many = raw[:2] + b"\xff\xfe\x00\x02" * (compressed_image.MAX_JPEG_SEGMENTS + 1) + raw[2:]
    reserved = raw[:2] + b"\xff\x02\x00\x02" + raw[2:]
    second_soi = raw[:2] + b"\xff\xd8" + raw[2:]
    scan_first = raw[:2] + b"\xff\xda\x00\x02" + raw[2:]
    end_first = raw[:2] + b"\xff\xd9\x00\x02" + raw[2:]
    cut_frame_header = raw[: sof + 8]
    for bad in (
        *garbage,
        short_length,
        many,
        reserved,
        second_soi,
        scan_first,
        end_first,
        cut_frame_header,
    ):
        assert reject(make_msg(bad, "jpeg")).reason == "bad_data"


def test_garbage_entropy_data_is_bad_data_or_decodes() -> None:
    raw = encode(colour(), ".jpg")
    _, _, scan = jpeg_segments(raw)[-1]
    rng = np.random.default_rng(2)
    for _ in range(20):
        noise = rng.integers(0, 256, len(raw) - scan - 2, dtype=np.uint8).tobytes()
        try:
            image, _ = compressed_to_array(make_msg(raw[:scan] + noise + b"\xff\xd9", "jpeg"))
        except ImageRejected as error:
            assert error.reason == "bad_data"
        else:
            assert image.shape == (48, 64, 3) and image.dtype == np.uint8


def test_decoded_size_must_match_the_declared_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compressed_image.cv2, "imdecode", lambda *_: np.zeros((4, 4, 3), np.uint8))
    error = reject(make_msg(encode(colour(), ".jpg"), "jpeg"))
    assert error.reason == "bad_data" and "64x48" in str(error)


def test_decoder_error_is_bad_data(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(*_args: object) -> None:
        raise cv2.error("imdecode failed\nwith a second line")

    monkeypatch.setattr(compressed_image.cv2, "imdecode", fail)
    error = reject(make_msg(encode(colour(), ".png"), "png"))
    assert error.reason == "bad_data" and "\n" not in str(error)


def test_decoder_none_is_bad_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compressed_image.cv2, "imdecode", lambda *_: None)
    assert reject(make_msg(encode(colour(), ".png"), "png")).reason == "bad_data"


@pytest.mark.parametrize("data", [[0xFF, 0xD8, 300], [0xFF, 0xD8, "x"], "\xff\xd8\xff", None])
def test_non_byte_data_is_bad_data(data: object) -> None:
    assert reject(SimpleNamespace(format="jpeg", data=data)).reason == "bad_data"


def mutations(raw: bytes, rng: np.random.Generator) -> tuple[bytes, int]:
    """``raw`` with a few bytes flipped, inserted, deleted or cut, and the first offset touched."""
    data = bytearray(raw)
    first = len(data)
    for _ in range(int(rng.integers(1, 4))):
        pos = int(rng.integers(0, len(data)))
        first = min(first, pos)
        kind = int(rng.integers(0, 4))
        if kind == 0:
            data[pos] = int(rng.integers(0, 256))
        elif kind == 1:
            data[pos:pos] = rng.integers(0, 256, int(rng.integers(1, 8)), dtype=np.uint8).tobytes()
        elif kind == 2:
            del data[pos : pos + int(rng.integers(1, 8))]
        else:
            del data[pos:]
    return bytes(data), first


def test_fuzzed_jpeg_and_png_raise_only_image_rejected() -> None:
    rng = np.random.default_rng(3)
    small = colour(24, 32)
    sources = [
        (encode(small, ".jpg"), 0),
        (encode(small, ".jpg", cv2.IMWRITE_JPEG_PROGRESSIVE, 1), 0),
        (encode(small[:, :, 0], ".jpg"), 0),
        (encode(small, ".png"), 33),
        (encode(np.dstack([small, small[:, :, :1]]), ".png"), 33),
    ]
    sources = [(raw, header_end or jpeg_segments(raw)[-1][2]) for raw, header_end in sources]
    decoded = 0
    for i in range(400):
        raw, header_end = sources[i % len(sources)]
        mutated, first = mutations(raw, rng)
        try:
            image, encoding = compressed_to_array(make_msg(mutated, ""))
        except ImageRejected as error:
            assert error.reason in ("bad_data", "unsupported_format", "too_large", "zero_size")
            continue
        decoded += 1
        assert image.dtype == np.uint8
        assert (encoding, image.ndim) in (("bgr8", 3), ("mono8", 2))
        if encoding == "bgr8":
            assert image.shape[2] == 3
        if first >= header_end:
            assert image.shape[:2] == small.shape[:2]
    assert decoded > 0


def test_messages_are_bounded_and_printable() -> None:
    fmt = "evil\n[ERROR] forged line\x1b[31m" * 100
    noise = b"\n\x1b[2J" * 1000
    error = reject(SimpleNamespace(format=fmt, data=noise))
    assert error.reason == "unsupported_format"
    text = str(error)
    assert "\n" not in text and "\x1b" not in text and len(text) < 400
    assert "forged line" in text
