"""Annotator: boxes and labels land where expected, input untouched, colours fixed per class."""

from __future__ import annotations

import itertools
import warnings

import cv2
import numpy as np
import pytest

from yolo_trt_ros.detection import annotate
from yolo_trt_ros.detection.annotate import Annotator, class_color, label_text

NAMES = ["person", "bicycle", "car"]


class _Dets:
    """Stand-in with the Detections fields (the annotator is duck-typed)."""

    def __init__(self, boxes, scores, class_ids) -> None:
        self.boxes, self.scores, self.class_ids = boxes, scores, class_ids

    def __len__(self) -> int:
        return len(self.boxes)


def test_label_text() -> None:
    assert label_text("person", 0.8749) == "person 0.87"
    assert label_text("car", 0.5, track_id=12) == "car #12 0.50"


def test_colours_are_deterministic_and_distinct() -> None:
    assert class_color(0) == class_color(0) == class_color(20)
    assert len({class_color(i) for i in range(20)}) == 20


def test_box_drawn_on_a_copy_and_only_near_the_box() -> None:
    image = np.full((200, 300, 3), 40, np.uint8)
    before = image.copy()
    out = Annotator(line_width=2)(
        image,
        "bgr8",
        _Dets(
            np.array([[100, 80, 200, 160]], np.float32), np.array([0.9], np.float32), np.array([2])
        ),
        NAMES,
    )
    np.testing.assert_array_equal(image, before)
    assert not np.shares_memory(out, image)
    changed = np.any(out != before, axis=2)
    color = class_color(2)
    assert tuple(out[120, 100]) == color and tuple(out[120, 200]) == color  # left and right edges
    assert tuple(out[160, 150]) == color  # bottom edge
    assert not changed[100:140, 110:190].any()  # inside the box stays untouched
    ys, xs = np.nonzero(changed)
    assert ys.min() < 80  # label sits above the box
    assert xs.min() >= 98 and xs.max() <= 260 and ys.max() <= 162


def test_label_goes_inside_when_box_touches_top() -> None:
    image = np.zeros((100, 100, 3), np.uint8)
    out = Annotator(line_width=1)(
        image,
        "bgr8",
        _Dets(np.array([[10, 0, 90, 90]], np.float32), np.array([0.5], np.float32), np.array([0])),
        NAMES,
    )
    assert np.any(out[2:12, 12:40] != 0)  # label background inside the box's top edge


def test_label_text_rendered_matches_reference() -> None:
    image = np.zeros((120, 300, 3), np.uint8)
    annotator = Annotator(line_width=3)
    with_track = annotator(
        image,
        "bgr8",
        _Dets(
            np.array([[20, 60, 150, 110]], np.float32), np.array([0.75], np.float32), np.array([0])
        ),
        NAMES,
        track_ids=[7],
    ).copy()
    without = annotator(
        image,
        "bgr8",
        _Dets(
            np.array([[20, 60, 150, 110]], np.float32), np.array([0.75], np.float32), np.array([0])
        ),
        NAMES,
    )
    width_of = lambda img: np.ptp(np.nonzero(np.any(img[:55] != 0, axis=(0, 2)))[0]) + 1  # noqa: E731
    text_w = lambda text: cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 1.0, 2)[0][0]  # noqa: E731
    assert width_of(with_track) == pytest.approx(text_w("person #7 0.75"), abs=4)
    assert width_of(without) == pytest.approx(text_w("person 0.75"), abs=4)
    untracked = annotator(
        image,
        "bgr8",
        _Dets(
            np.array([[20, 60, 150, 110]], np.float32), np.array([0.75], np.float32), np.array([0])
        ),
        NAMES,
        track_ids=[0],
    )
    assert width_of(untracked) == pytest.approx(text_w("person 0.75"), abs=4)


@pytest.mark.parametrize(
    ("encoding", "shape", "expect"),
    [
        ("rgb8", (50, 60, 3), (30, 20, 10)),
        ("bgra8", (50, 60, 4), (10, 20, 30)),
        ("rgba8", (50, 60, 4), (30, 20, 10)),
        ("mono8", (50, 60), (10, 10, 10)),
    ],
)
def test_other_encodings_become_bgr(encoding: str, shape: tuple, expect: tuple) -> None:
    image = np.zeros(shape, np.uint8)
    image[...] = (10, 20, 30, 255)[: shape[2]] if len(shape) == 3 else 10
    out = Annotator()(
        image,
        encoding,
        _Dets(np.empty((0, 4), np.float32), np.empty(0, np.float32), np.empty(0, np.int64)),
        NAMES,
    )
    assert out.shape == (50, 60, 3)
    assert tuple(out[25, 30]) == expect


def test_padded_view_input_and_buffer_reuse() -> None:
    base = np.random.default_rng(1).integers(0, 256, (40, 70, 3), np.uint8)
    view = base[:, :50]  # strided rows like a padded Image
    annotator = Annotator()
    empty = _Dets(np.empty((0, 4), np.float32), np.empty(0, np.float32), np.empty(0, np.int64))
    first = annotator(view, "bgr8", empty, NAMES)
    np.testing.assert_array_equal(first, view)
    second = annotator(view, "bgr8", empty, NAMES)
    assert second is first
    assert annotator(np.zeros((10, 10, 3), np.uint8), "bgr8", empty, NAMES).shape == (10, 10, 3)


def test_unknown_class_id_uses_number() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    out = Annotator(line_width=2)(
        image,
        "bgr8",
        _Dets(
            np.array([[10, 40, 190, 90]], np.float32), np.array([0.5], np.float32), np.array([99])
        ),
        NAMES,
    )
    assert np.any(out != 0)


def _disjoint(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1])


def test_line_thickness_kept_for_normal_images_and_bounded_for_elongated_ones() -> None:
    assert annotate.line_thickness(480, 640) == 2 and annotate.line_thickness(1080, 1920) == 4
    assert annotate.line_thickness(1, 21_900_000) == annotate.line_thickness(21_900_000, 1) == 1
    assert annotate.line_thickness(40, 100_000) == 4
    assert annotate.line_thickness(480, 640, requested=3) == 3
    assert annotate.line_thickness(10**6, 10**6, requested=10**6) == 32767  # OpenCV's limit


@pytest.mark.parametrize("shape", [(1, 21_900_000, 3), (21_900_000, 1, 3)], ids=["wide", "tall"])
def test_extremely_elongated_image_is_annotated(shape: tuple[int, int, int]) -> None:
    image = np.zeros(shape, np.uint8)
    long_side = max(shape[:2])
    start, end = long_side // 3, long_side // 2
    box = [start, 0, end, 1] if shape[0] == 1 else [0, start, 1, end]
    out = Annotator()(
        image,
        "bgr8",
        _Dets(np.array([box], np.float32), np.array([0.9], np.float32), np.array([0])),
        NAMES,
    )
    assert out.shape == shape
    pixels = out.reshape(long_side, 3)
    drawn = np.flatnonzero(pixels[:, 0] | pixels[:, 1] | pixels[:, 2])  # any channel set
    assert (
        len(drawn) and drawn.min() >= start - 32 and drawn.max() <= end + 2
    )  # box and label, nothing else


def test_out_of_range_box_coordinates_are_clipped_without_warnings() -> None:
    boxes = np.array([[-1e12, -1e12, 1e12, 1e12], [np.nan, 10, 3e9, 60]], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = Annotator(line_width=3)(
            np.zeros((200, 200, 3), np.uint8),
            "bgr8",
            _Dets(boxes, np.array([0.5, 0.6], np.float32), np.array([0, 1])),
            NAMES,
        )
    assert tuple(out[150, 0]) == class_color(0)  # left edge of the first box, clipped to the image


@pytest.mark.parametrize("count", [2, 5])
def test_labels_of_boxes_with_the_same_corner_do_not_overlap(count: int) -> None:
    sizes = [(40 + 7 * i, 14) for i in range(count)]
    rects = annotate.place_labels([(50, 60)] * count, sizes, (320, 240))
    assert [tuple(r[2:] - r[:2]) for r in rects] == sizes
    assert all(_disjoint(a, b) for a, b in itertools.combinations(rects, 2))
    assert (rects[:, :2] >= 0).all() and (rects[:, 2] <= 320).all() and (rects[:, 3] <= 240).all()
    assert tuple(rects[0]) == (50, 60 + 1 - 14, 90, 61)  # the first keeps its place above the box


def test_label_placement_stays_in_the_image_and_is_bounded() -> None:
    rects = annotate.place_labels([(300, 230)] * 3, [(60, 14)] * 3, (320, 240))
    assert all(_disjoint(a, b) for a, b in itertools.combinations(rects, 2))
    assert (rects[:, 0] == 260).all() and (rects[:, 1] >= 0).all() and (rects[:, 3] <= 240).all()
    crowded = annotate.place_labels([(0, 0)] * 5, [(30, 10)] * 5, (100, 25), max_tries=2)
    assert (
        len(crowded) == 5 and (crowded[:, 3] <= 25).all()
    )  # no room left: falls back, never fails


def test_overlapping_boxes_keep_every_label_visible() -> None:
    names = ["cat", "dog", "cow", "ant", "bee"]
    boxes = np.tile(np.array([[60, 100, 160, 220]], np.float32), (5, 1))
    out = Annotator(line_width=3)(
        np.zeros((300, 300, 3), np.uint8),
        "bgr8",
        _Dets(boxes, np.full(5, 0.5, np.float32), np.arange(5)),
        names,
    )
    (text_w, text_h), baseline = cv2.getTextSize("cat 0.50", cv2.FONT_HERSHEY_SIMPLEX, 1.0, 2)
    for class_id in range(5):
        background = np.all(out == class_color(class_id), axis=2).sum()
        assert background > 0.4 * text_w * (text_h + baseline)  # the label's background shows
