"""Letterbox vs an independent straightforward implementation, transform geometry and buffer
reuse."""

from __future__ import annotations

import functools

import cv2
import numpy as np
import pytest

from yolo_trt_ros.detection.letterbox import (
    Letterbox,
    LetterboxTransform,
    letterbox_geometry,
    rect_input_hw,
)


def reference_letterbox(
    bgr: np.ndarray, input_hw: tuple[int, int], stride: int | None = None
) -> np.ndarray:
    """Ultralytics LetterBox(center=True) + BGR->RGB, /255, CHW, written out plainly (float64):
    ``auto=False`` padding up to ``input_hw``, or with ``stride`` ``auto=True``: padding only up
    to the next multiple of the stride."""
    h, w = bgr.shape[:2]
    r = min(input_hw[0] / h, input_hw[1] / w)
    new_w, new_h = max(int(round(w * r)), 1), max(int(round(h * r)), 1)
    img = (
        bgr
        if (new_w, new_h) == (w, h)
        else cv2.resize(bgr, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    )
    dw, dh = input_hw[1] - new_w, input_hw[0] - new_h
    if stride is not None:
        dw, dh = dw % stride, dh % stride
    dw, dh = dw / 2, dh / 2
    top, bottom = int(round(dh - 0.1)), int(round(dh + 0.1))
    left, right = int(round(dw - 0.1)), int(round(dw + 0.1))
    img = cv2.copyMakeBorder(
        img, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(114, 114, 114)
    )
    assert stride is not None or img.shape[:2] == input_hw
    return img[:, :, ::-1].transpose(2, 0, 1)[None].astype(np.float64) / 255.0


def encode(
    bgr: np.ndarray, encoding: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``bgr`` in ``encoding`` (numpy channel indexing only), plus the BGR image the reference
    should see."""
    alpha = rng.integers(0, 256, bgr.shape[:2] + (1,), dtype=np.uint8)
    if encoding == "bgr8":
        return bgr, bgr
    if encoding == "rgb8":
        return np.ascontiguousarray(bgr[:, :, ::-1]), bgr
    if encoding == "bgra8":
        return np.concatenate([bgr, alpha], axis=2), bgr
    if encoding == "rgba8":
        return np.concatenate([bgr[:, :, ::-1], alpha], axis=2), bgr
    gray = bgr[:, :, 1].copy()
    return gray, np.repeat(gray[:, :, None], 3, axis=2)


@functools.cache
def _random_image(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    ramp = (np.add.outer(np.arange(h), np.arange(w)) % 256).astype(np.uint8)
    noise[:, :, 0] = ramp
    return noise


def random_image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """Smooth-ish random image (noise + gradients) so resampling errors would show; a fresh copy
    of the one generated per (h, w, seed)."""
    return _random_image(h, w, seed).copy()


def assert_within(got: np.ndarray, expected: np.ndarray, atol: float, err_msg: str = "") -> None:
    """``assert_allclose(got, expected, rtol=0, atol=atol)`` for finite arrays, computed as one
    maximum of the absolute differences (cheap on full-size tensors)."""
    assert got.shape == expected.shape, err_msg
    error = np.abs(got - expected).max(initial=0.0)
    assert error <= atol, f"{err_msg} max absolute difference {error} > atol {atol}"


SIZES = [
    (480, 640),
    (640, 480),
    (1, 1),
    (1000, 17),
    (17, 1000),
    (1080, 1920),
    (333, 517),
    (640, 640),
    (2, 3000),
]
ENCODINGS = ["bgr8", "rgb8", "bgra8", "rgba8", "mono8"]


@functools.lru_cache(maxsize=2)
def expected_letterbox(size: tuple[int, int], input_hw: tuple[int, int], mono: bool) -> np.ndarray:
    """``reference_letterbox`` of ``random_image(*size)`` as the reference sees it in any color
    encoding (``mono``: in mono8), computed once for the encodings that share it."""
    _, bgr = encode(random_image(*size), "mono8" if mono else "bgr8", np.random.default_rng(1))
    expected = reference_letterbox(bgr, input_hw)
    expected.flags.writeable = False
    return expected


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("input_hw", [(640, 640), (320, 256)])
def test_letterbox_matches_reference(
    encoding: str, size: tuple[int, int], input_hw: tuple[int, int]
) -> None:
    rng = np.random.default_rng(1)
    image, _ = encode(random_image(*size), encoding, rng)
    tensor, _ = Letterbox(input_hw)(image, encoding)
    assert tensor.shape == (1, 3, *input_hw) and tensor.dtype == np.float32
    expected = expected_letterbox(size, input_hw, encoding == "mono8")
    assert_within(tensor, expected, atol=1 / 255 + 1e-6)


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("size", [(480, 640), (640, 480), (1000, 17)])
def test_letterbox_matches_reference_exactly_where_no_resampling_differs(
    encoding: str, size
) -> None:
    """Same OpenCV resize underneath: values agree to float rounding, not just within one gray
    level."""
    image, bgr = encode(random_image(*size, seed=3), encoding, np.random.default_rng(2))
    tensor, _ = Letterbox((640, 640))(image, encoding)
    assert_within(tensor, reference_letterbox(bgr, (640, 640)), atol=1e-6)


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("size", [(480, 640), (640, 480), (999, 17)])
def test_letterbox_float16(encoding: str, size: tuple[int, int]) -> None:
    image, bgr = encode(random_image(*size, seed=5), encoding, np.random.default_rng(4))
    tensor, _ = Letterbox((640, 640), dtype=np.float16)(image, encoding)
    assert tensor.dtype == np.float16
    # float16 has 11 significant bits: 0..1 values are within 2^-11 of the float64 value
    assert_within(tensor, reference_letterbox(bgr, (640, 640)), atol=2**-11)


def test_non_contiguous_views() -> None:
    big = random_image(700, 900, seed=7)
    lb = Letterbox((640, 640))
    cases = {
        "row-padded crop": (big[100:580, 50:690], "bgr8", big[100:580, 50:690]),
        "every other column": (big[:480, ::2], "bgr8", big[:480, ::2]),
        "reversed channels": (big[:480, :640, ::-1], "rgb8", big[:480, :640]),
        "flipped rows": (big[::-1, :640], "bgr8", big[::-1, :640]),
    }
    readonly = np.frombuffer(big.tobytes(), np.uint8).reshape(
        big.shape
    )  # like an Image message's bytes
    cases["read-only buffer"] = (readonly[:480, :640], "bgr8", big[:480, :640])
    for name, (view, encoding, bgr) in cases.items():
        assert not view.flags.c_contiguous or not view.flags.writeable, name
        tensor, _ = lb(view, encoding)
        ref = reference_letterbox(np.ascontiguousarray(bgr), (640, 640))
        assert_within(tensor, ref, atol=1 / 255 + 1e-6, err_msg=name)


def test_mono_hxwx1_equals_hxw() -> None:
    gray = random_image(480, 640)[:, :, 2].copy()
    lb = Letterbox((640, 640))
    a = lb(gray, "mono8")[0].copy()
    b = lb(gray[:, :, None], "mono8")[0]
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[0, 0], a[0, 2])


def test_buffer_reused_and_padding_refreshed_when_size_changes() -> None:
    lb = Letterbox((640, 640))
    portrait, landscape = random_image(640, 480, seed=1), random_image(480, 640, seed=2)
    first, _ = lb(portrait)
    for image in (landscape, portrait, landscape, random_image(100, 100, seed=3)):
        tensor, _ = lb(image)
        assert tensor is first  # one preallocated buffer, no per-frame allocation
        assert_within(tensor, reference_letterbox(image, (640, 640)), atol=1e-6)
    with pytest.raises(ValueError):
        first[0, 0, 0, 0] = 1.0  # read-only: callers cannot corrupt the cached padding


def test_encoding_change_with_same_size() -> None:
    lb = Letterbox((320, 320))
    bgr = random_image(300, 200)
    for encoding in ENCODINGS + ["bgr8"]:
        image, ref_bgr = encode(bgr, encoding, np.random.default_rng(0))
        np.testing.assert_allclose(
            lb(image, encoding)[0], reference_letterbox(ref_bgr, (320, 320)), atol=1e-6
        )


@pytest.mark.parametrize(
    "image, encoding, match",
    [
        (np.zeros((4, 4, 3), np.uint16), "bgr8", "uint8"),
        (np.zeros((4, 4, 3), np.float32), "bgr8", "uint8"),
        (np.zeros((4, 4, 4), np.uint8), "bgr8", "shape"),
        (np.zeros((4, 4, 3), np.uint8), "bgra8", "shape"),
        (np.zeros((4, 4, 3), np.uint8), "mono8", "shape"),
        (np.zeros((4, 4), np.uint8), "rgb8", "shape"),
        (np.zeros((0, 4, 3), np.uint8), "bgr8", "shape"),
        (np.zeros((4, 4, 3), np.uint8), "nv12", "unsupported encoding 'nv12'"),
        (np.zeros((4, 4, 2), np.uint8), "yuv422", "convert camera-raw frames with to_bgr8"),
        (np.zeros((4, 4, 3, 1), np.uint8), "bgr8", "shape"),
    ],
)
def test_bad_images_raise_value_error(image: np.ndarray, encoding: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Letterbox((64, 64))(image, encoding)


def test_bad_dtype_rejected() -> None:
    with pytest.raises(ValueError, match="float32 or float16"):
        Letterbox((64, 64), dtype=np.uint8)


@pytest.mark.parametrize(
    "src_hw, dst_hw, scale, pad_xy, resized_hw",
    [
        ((480, 640), (640, 640), 1.0, (0, 80), (480, 640)),
        ((1080, 810), (640, 640), 640 / 1080, (80, 0), (640, 480)),  # bus.jpg
        ((720, 1280), (640, 640), 0.5, (0, 140), (360, 640)),  # zidane.jpg
        ((1000, 17), (640, 640), 0.64, (314, 0), (640, 11)),  # dw = 314.5 -> left 314, right 315
        ((1, 1), (320, 256), 256.0, (0, 32), (256, 256)),
        (
            (3000, 2),
            (640, 640),
            640 / 3000,
            (319, 0),
            (640, 1),
        ),  # width rounds to 0 -> kept at 1 px
    ],
)
def test_geometry_hand_computed(src_hw, dst_hw, scale, pad_xy, resized_hw) -> None:
    t = letterbox_geometry(src_hw, dst_hw)
    assert t.scale == pytest.approx(scale)
    assert (t.pad_x, t.pad_y) == pad_xy
    assert t.resized_hw == resized_hw
    assert t.src_hw == src_hw


def test_geometry_padding_always_fills_the_input() -> None:
    rng = np.random.default_rng(0)
    for _ in range(500):
        src = (int(rng.integers(1, 4000)), int(rng.integers(1, 4000)))
        dst = (int(rng.integers(32, 1300)), int(rng.integers(32, 1300)))
        t = letterbox_geometry(src, dst)
        rh, rw = t.resized_hw
        assert rh == dst[0] or rw == dst[1], (src, dst)
        # the remaining padding (bottom/right) is the other half, never negative, never more than 1
        # px off centre
        for pad, size, full in ((t.pad_y, rh, dst[0]), (t.pad_x, rw, dst[1])):
            other = full - size - pad
            assert 0 <= pad <= other <= pad + 1, (src, dst)


def test_transform_round_trip_and_clipping() -> None:
    t = letterbox_geometry((480, 640), (320, 256))
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, [640, 480], size=(100, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 200, size=(100, 2))], axis=1)
    boxes = np.minimum(boxes, [640, 480, 640, 480]).astype(np.float32)
    np.testing.assert_allclose(t.to_original(t.to_input(boxes)), boxes, atol=1e-3)
    outside = np.array([[-50, -10, 700, 500]], np.float32)
    np.testing.assert_allclose(t.to_original(t.to_input(outside)), [[0, 0, 640, 480]], atol=1e-3)
    assert t.to_original(np.zeros((0, 4), np.float32)).shape == (0, 4)


def test_transform_maps_a_drawn_rectangle_back() -> None:
    """A white rectangle in the original image is found in the tensor and mapped back to where it
    was drawn."""
    for src_hw, input_hw in (
        ((480, 640), (640, 640)),
        ((1080, 810), (640, 640)),
        ((300, 900), (320, 256)),
    ):
        image = np.zeros((*src_hw, 3), np.uint8)
        x1, y1 = src_hw[1] // 4, src_hw[0] // 3
        x2, y2 = src_hw[1] * 3 // 4, src_hw[0] * 2 // 3
        image[y1:y2, x1:x2] = 255
        tensor, t = Letterbox(input_hw)(image)
        ys, xs = np.nonzero(tensor[0, 0] > 0.5)
        found = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32)
        tolerance = 1.5 / min(t.resized_hw[0] / src_hw[0], t.resized_hw[1] / src_hw[1])
        np.testing.assert_allclose(t.to_original(found), [[x1, y1, x2, y2]], atol=tolerance)


def test_transform_is_frozen() -> None:
    t = LetterboxTransform(1.0, 0.0, 80.0, (480, 640), (480, 640))
    with pytest.raises(AttributeError):
        t.scale = 2.0  # type: ignore[misc]


@pytest.mark.parametrize(
    "src_hw, dst_hw, stride, rect_hw",
    [
        ((480, 640), (640, 640), 32, (480, 640)),  # VGA camera: no padding at all
        ((432, 768), (640, 640), 32, (384, 640)),  # 640x360 image, height padded to 384
        ((720, 1280), (640, 640), 32, (384, 640)),
        ((1000, 300), (640, 640), 32, (640, 192)),
        ((100, 100), (640, 640), 32, (640, 640)),  # upscaled
        ((333, 517), (640, 640), 32, (416, 640)),  # 412 -> 416
        ((333, 517), (640, 640), 64, (448, 640)),  # P6 model: stride 64
        ((480, 640), (320, 256), 32, (192, 256)),  # non-square nominal size
    ],
)
def test_rect_input_hw_hand_computed(src_hw, dst_hw, stride, rect_hw) -> None:
    assert rect_input_hw(src_hw, dst_hw, stride) == rect_hw


@pytest.mark.parametrize("encoding", ["bgr8", "rgba8", "mono8"])
@pytest.mark.parametrize("size", SIZES)
def test_rect_letterbox_matches_reference(encoding: str, size: tuple[int, int]) -> None:
    image, bgr = encode(random_image(*size, seed=7), encoding, np.random.default_rng(6))
    tensor, t = Letterbox((640, 640), stride=32)(image, encoding)
    ref = reference_letterbox(bgr, (640, 640), 32)
    assert tensor.shape == ref.shape == (1, 3, *rect_input_hw(size, (640, 640), 32))
    assert tensor.shape[2] % 32 == 0 and tensor.shape[3] % 32 == 0
    assert_within(tensor, ref, atol=1 / 255 + 1e-6)
    # the transform maps the image corners onto the edges of the unpadded region
    corners = t.to_input(np.array([[0, 0, size[1], size[0]]], np.float32))[0]
    np.testing.assert_allclose(
        corners, [t.pad_x, t.pad_y, t.pad_x + t.resized_hw[1], t.pad_y + t.resized_hw[0]]
    )


def test_rect_geometry_scale_is_that_of_the_nominal_size() -> None:
    for src_hw in [(480, 640), (432, 768), (333, 517), (1000, 300)]:
        square, rect = (
            letterbox_geometry(src_hw, (640, 640)),
            letterbox_geometry(src_hw, (640, 640), 32),
        )
        assert (rect.scale, rect.resized_hw) == (square.scale, square.resized_hw)
        h, w = rect_input_hw(src_hw, (640, 640), 32)
        assert (rect.pad_x, rect.pad_y) == (
            round((w - rect.resized_hw[1]) / 2 - 0.1),
            round((h - rect.resized_hw[0]) / 2 - 0.1),
        )


def test_rect_buffer_reallocated_only_when_the_input_size_changes() -> None:
    lb = Letterbox((640, 640), stride=32)
    vga, wide = random_image(480, 640, seed=1), random_image(432, 768, seed=2)
    first, _ = lb(vga)
    assert first.shape == (1, 3, 480, 640) and lb(vga)[0] is first
    second, _ = lb(wide)
    assert second.shape == (1, 3, 384, 640)
    assert lb(random_image(720, 1280, seed=3))[0] is second  # same rectangle: same buffer
    np.testing.assert_allclose(
        second,
        reference_letterbox(random_image(720, 1280, seed=3), (640, 640), 32),
        rtol=0,
        atol=1 / 255 + 1e-6,
    )
    np.testing.assert_allclose(
        lb(vga)[0], reference_letterbox(vga, (640, 640), 32), rtol=0, atol=1e-6
    )
    with pytest.raises(ValueError):
        second[0, 0, 0, 0] = 1.0
