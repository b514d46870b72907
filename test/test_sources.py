"""Frame sources: video file, image folder, MOTChallenge sequence, and their errors."""

from __future__ import annotations

import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest

import data_paths
from yolo_trt_ros.sources import (
    DEFAULT_FOLDER_FPS,
    ImageFolderSource,
    SourceError,
    VideoSource,
    open_source,
    read_image,
)


def _write_video(path: Path, frames: int, fps: float, size: tuple[int, int] = (64, 48)) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((size[1], size[0], 3), i * 20, np.uint8))
    writer.release()


def test_mot_sequence_folder_uses_seqinfo_rate(mot_dir: Path) -> None:
    source = open_source(mot_dir)
    assert source.fps == 14.0
    assert source.frame_count == 48
    assert source.path == mot_dir / "img1"
    index, frame = next(iter(source))
    assert index == 0
    assert frame.shape == (480, 640, 3) and frame.dtype == np.uint8
    np.testing.assert_array_equal(frame, cv2.imread(str(mot_dir / "img1" / "000001.jpg")))


def test_mot_img1_folder_is_recognised_and_complete(mot_dir: Path) -> None:
    source = open_source(mot_dir / "img1")
    assert source.fps == 14.0
    indices = [i for i, _ in source]
    assert indices == list(range(48))


def test_fps_override(mot_dir: Path) -> None:
    assert open_source(mot_dir, fps=5.0).fps == 5.0


def test_video_rate_and_frames_from_container(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    _write_video(path, 7, 12.5)
    source = open_source(path)
    assert isinstance(source, VideoSource)
    assert source.fps == pytest.approx(12.5)
    assert source.frame_count == 7
    frames = list(source)
    assert [i for i, _ in frames] == list(range(7))
    assert frames[0][1].shape == (48, 64, 3)
    # gray levels survive the lossy codec roughly: frame 3 was filled with 60
    assert abs(float(frames[3][1].mean()) - 60) < 8
    # iterating again starts over (replay loops this way)
    assert next(iter(source))[0] == 0


def test_shared_demo_video(data_dir: Path) -> None:
    source = open_source(data_paths.default_video())
    assert source.fps == pytest.approx(10.0)
    assert (source.width, source.height) == (768, 432)
    first = list(itertools.islice(source, 3))
    assert [i for i, _ in first] == [0, 1, 2]


def test_image_folder_natural_order_and_default_rate(tmp_path: Path) -> None:
    for n in (10, 2, 1):
        cv2.imwrite(
            str(tmp_path / f"f{n}.png"), np.full((8, 8), n, np.uint8)
        )  # gray files come back as BGR
    (tmp_path / "notes.txt").write_text("not an image")
    source = open_source(tmp_path)
    assert isinstance(source, ImageFolderSource)
    assert source.fps == DEFAULT_FOLDER_FPS
    assert [p.name for p in source.files] == ["f1.png", "f2.png", "f10.png"]
    frames = [f for _, f in source]
    assert [int(f[0, 0, 0]) for f in frames] == [1, 2, 10]
    assert all(f.shape == (8, 8, 3) for f in frames)


def test_missing_path_names_it(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="nope.mp4: no such file or directory"):
        open_source(tmp_path / "nope.mp4")


def test_non_video_file_is_rejected(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.mp4"
    bogus.write_bytes(b"this is not a video" * 100)
    with pytest.raises(SourceError, match="bogus.mp4"):
        open_source(bogus)


def test_empty_folder_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no images"):
        open_source(tmp_path)


def test_unreadable_image_in_folder_names_the_file(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "b.png").write_bytes(b"garbage")
    source = open_source(tmp_path)
    with pytest.raises(SourceError, match="b.png: cannot be decoded"):
        list(source)


def test_bad_seqinfo_rate(tmp_path: Path) -> None:
    (tmp_path / "img1").mkdir()
    cv2.imwrite(str(tmp_path / "img1" / "000001.jpg"), np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "seqinfo.ini").write_text("[Sequence]\nname=X\nimDir=img1\nframeRate=abc\n")
    with pytest.raises(SourceError, match="frameRate"):
        open_source(tmp_path)
    (tmp_path / "seqinfo.ini").write_text("[Sequence]\nname=X\nimDir=img1\nframeRate=0\n")
    with pytest.raises(SourceError, match="frame rate must be > 0"):
        open_source(tmp_path / "img1")


def test_read_image_errors(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        read_image(tmp_path / "missing.jpg")
