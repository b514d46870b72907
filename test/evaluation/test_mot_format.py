"""MOTChallenge result rows: writing, reading, round trip."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from yolo_trt_ros.evaluation.mot_format import (
    MotRow,
    clip_boxes,
    parse_row,
    read_rows,
    rows_from_boxes,
    write_rows,
)


def test_rows_from_xyxy_boxes() -> None:
    rows = rows_from_boxes(
        3, np.array([[10, 20, 40, 80], [0.5, 1.5, 2.5, 3.5]]), np.array([0.9, 0.3])
    )
    assert rows[0] == MotRow(3, -1, 10.0, 20.0, 30.0, 60.0, pytest.approx(0.9))
    assert rows[1].w == pytest.approx(2.0) and rows[1].h == pytest.approx(2.0)
    assert rows[0].format() == "3,-1,10.00,20.00,30.00,60.00,0.9000,-1,-1,-1"


def test_rows_clipped_to_the_image() -> None:
    boxes = np.array([[-5, 10, 50, 500], [600, -2, 700, 30], [10, 20, 40, 80]])
    rows = rows_from_boxes(1, boxes, np.ones(3), image_size=(640, 480))
    assert [(r.x, r.y, r.x + r.w, r.y + r.h) for r in rows] == [
        (0, 10, 50, 480),
        (600, 0, 640, 30),
        (10, 20, 40, 80),
    ]
    np.testing.assert_array_equal(clip_boxes(boxes, (640, 480))[0], [0, 10, 50, 480])
    assert rows_from_boxes(1, boxes, np.ones(3))[0].x == -5  # no image size: boxes as given


def test_round_trip_with_ids(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 600, (5, 2))
    boxes = np.hstack([xy, xy + rng.uniform(1, 100, (5, 2))])
    scores = rng.uniform(0, 1, 5)
    rows = rows_from_boxes(1, boxes, scores, track_ids=[1, 2, 3, 4, 5]) + rows_from_boxes(
        2, boxes[:2], scores[:2]
    )
    path = tmp_path / "results.txt"
    with open(path, "w") as f:
        assert write_rows(f, rows) == 7
    back = read_rows(path)
    assert [(r.frame, r.track_id) for r in back] == [
        (1, 1),
        (1, 2),
        (1, 3),
        (1, 4),
        (1, 5),
        (2, -1),
        (2, -1),
    ]
    for a, b in zip(rows, back, strict=True):
        np.testing.assert_allclose([b.x, b.y, b.w, b.h], [a.x, a.y, a.w, a.h], atol=0.006)
        assert b.conf == pytest.approx(a.conf, abs=6e-5)
    assert path.read_text().splitlines()[0].endswith(",-1,-1,-1")


def test_reads_mot_ground_truth(mot_dir: Path) -> None:
    rows = read_rows(mot_dir / "gt" / "gt_frames001-048.txt")
    assert len(rows) == 592
    assert rows[0] == MotRow(1, 1, 17.0, 150.0, 77.0, 191.0, 1.0)


def test_frames_start_at_one() -> None:
    with pytest.raises(ValueError, match="start at 1"):
        rows_from_boxes(0, np.zeros((1, 4)), np.zeros(1))


def test_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="2 boxes but 1 scores"):
        rows_from_boxes(1, np.zeros((2, 4)), np.zeros(1))
    with pytest.raises(ValueError, match="1 boxes but 2 track ids"):
        rows_from_boxes(1, np.zeros((1, 4)), np.zeros(1), track_ids=[1, 2])


def test_bad_rows_name_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("1,-1,1,2,3,4,0.5,-1,-1,-1\n\n2,x,1,2,3,4,0.5\n")
    with pytest.raises(ValueError, match=r"bad.txt:3: .*non-numeric"):
        read_rows(path)
    with pytest.raises(ValueError, match="at least 7 fields"):
        parse_row("1,2,3")


def test_write_rows_to_stream() -> None:
    buf = io.StringIO()
    write_rows(buf, rows_from_boxes(5, np.array([[0, 0, 1, 1]]), np.array([1.0])))
    assert buf.getvalue() == "5,-1,0.00,0.00,1.00,1.00,1.0000,-1,-1,-1\n"
