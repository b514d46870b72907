"""The demo's per-camera summary lines, without processes."""

from __future__ import annotations

from typing import Any

import pytest

from yolo_trt_ros.demo.supervisor import _print_camera


def _camera(published: int | None, seen: int, out: int) -> dict[str, Any]:
    return {
        "frames_published": published,
        "input_topic": "/cam/image_raw",
        "frames_in": seen,
        "frames_out": out,
        "annotated_frames": out,
    }


@pytest.mark.parametrize(
    ("published", "seen", "out", "skipped"),
    [
        (15, 14, 15, None),  # the recorder missed a frame the tracker answered
        (15, 15, 12, 3),
        (15, 14, 12, 3),  # skipped frames count from what was published
        (None, 20, 18, 2),  # a live topic: from what the recorder saw
        (None, 20, 20, None),
    ],
)
def test_skipped_frames_count_from_the_published_frames(
    capsys: pytest.CaptureFixture[str],
    published: int | None,
    seen: int,
    out: int,
    skipped: int | None,
) -> None:
    _print_camera(_camera(published, seen, out), "  ")
    text = capsys.readouterr().out
    assert f"frames out     {out} Detection2DArray" in text
    if skipped is None:
        assert "skipped" not in text
    else:
        assert f"({skipped} frames skipped:" in text
