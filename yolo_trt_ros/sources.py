"""Frame sources for replay and offline runs: a video file, an image folder or a MOTChallenge
sequence.

Every source yields ``(index, frame)`` pairs, ``index`` counting from 0 and ``frame`` a BGR uint8
HxWx3 array, and knows its frame rate. Iterating a source again starts it over (that is how replay
loops).
"""

from __future__ import annotations

import configparser
import math
import re
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

DEFAULT_FOLDER_FPS = 30.0
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
)


class SourceError(RuntimeError):
    """A source that cannot be opened or read; the message names the path and the problem."""


class FrameSource:
    """Base of all sources: ``fps``, ``frame_count`` (None when unknown), ``description`` and
    iteration."""

    path: Path
    fps: float
    frame_count: int | None
    description: str

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        raise NotImplementedError


class VideoSource(FrameSource):
    """A video file decoded with OpenCV; the frame rate comes from the container unless ``fps`` is
    given."""

    def __init__(self, path: str | Path, fps: float | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"video {self.path}: no such file")
        capture = self._open()
        try:
            ok, frame = capture.read()
            if not ok or frame is None:
                raise SourceError(f"video {self.path}: no frame could be decoded")
            container_fps = capture.get(cv2.CAP_PROP_FPS)
            count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        finally:
            capture.release()
        if fps is None:
            fps = (
                container_fps
                if math.isfinite(container_fps) and container_fps > 0
                else DEFAULT_FOLDER_FPS
            )
        self.fps = _check_fps(fps, self.path)
        self.frame_count = count if count > 0 else None
        self.height, self.width = frame.shape[:2]
        self.description = f"video {self.path} ({self.width}x{self.height}, {self.fps:g} fps)"

    def _open(self) -> cv2.VideoCapture:
        capture = cv2.VideoCapture(str(self.path))
        if not capture.isOpened():
            raise SourceError(
                f"video {self.path}: OpenCV cannot open it (not a video, or codec missing)"
            )
        return capture

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        capture = self._open()
        try:
            index = 0
            while True:
                ok, frame = capture.read()
                if not ok or frame is None:
                    return
                yield index, frame
                index += 1
        finally:
            capture.release()


class ImageFolderSource(FrameSource):
    """Image files of one folder in natural sort order (``2.jpg`` before ``10.jpg``)."""

    def __init__(
        self, folder: str | Path, fps: float | None = None, what: str = "image folder"
    ) -> None:
        self.path = Path(folder)
        if not self.path.is_dir():
            raise SourceError(f"{what} {self.path}: no such directory")
        self.files = sorted(
            (
                p
                for p in self.path.iterdir()
                if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
            ),
            key=_natural_key,
        )
        if not self.files:
            raise SourceError(
                f"{what} {self.path}: no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) in it"
            )
        self.fps = _check_fps(DEFAULT_FOLDER_FPS if fps is None else fps, self.path)
        self.frame_count = len(self.files)
        self.description = f"{what} {self.path} ({self.frame_count} images, {self.fps:g} fps)"

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        for index, file in enumerate(self.files):
            yield index, read_image(file)


def read_image(path: str | Path) -> np.ndarray:
    """Read one image file as BGR uint8 (OpenCV converts gray and 16-bit files); SourceError if
    unreadable."""
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"image {path}: no such file")
    frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if frame is None:
        raise SourceError(f"image {path}: cannot be decoded (not an image, or truncated)")
    return frame


def read_seqinfo(seq_dir: str | Path) -> dict[str, str]:
    """The ``[Sequence]`` section of a MOTChallenge ``seqinfo.ini`` (keys lower-cased)."""
    ini = Path(seq_dir) / "seqinfo.ini"
    parser = configparser.ConfigParser()
    try:
        parser.read_string(ini.read_text())
        return dict(parser["Sequence"])
    except (OSError, UnicodeDecodeError, configparser.Error, KeyError) as exc:
        raise SourceError(f"MOT sequence {ini}: unreadable seqinfo.ini ({exc})") from exc


def open_mot_sequence(path: str | Path, fps: float | None = None) -> ImageFolderSource:
    """A MOTChallenge sequence, given as the sequence folder or its image folder (``img1/``).

    The frame rate comes from ``seqinfo.ini`` ``frameRate`` unless ``fps`` is given.
    """
    path = Path(path)
    seq_dir = path if (path / "seqinfo.ini").is_file() else path.parent
    info = read_seqinfo(seq_dir)
    image_dir = seq_dir / info.get("imdir", "img1")
    if path != seq_dir and path.resolve() != image_dir.resolve():
        raise SourceError(
            f"MOT sequence {seq_dir}: seqinfo.ini names image folder {image_dir.name!r}, not "
            f"{path.name!r}"
        )
    if fps is None:
        try:
            fps = float(info["framerate"])
        except (KeyError, ValueError) as exc:
            raise SourceError(
                f"MOT sequence {seq_dir}: seqinfo.ini has no valid frameRate"
            ) from exc
    return ImageFolderSource(image_dir, fps, what=f"MOT sequence {info.get('name', seq_dir.name)}")


def open_source(path: str | Path, fps: float | None = None) -> FrameSource:
    """Open ``path`` as a video file, a MOTChallenge sequence (or its ``img1/``) or an image
    folder.

    ``fps`` overrides the rate read from the source (container, ``seqinfo.ini``); folders default
    to 30 fps.
    """
    path = Path(path).expanduser()
    if path.is_file():
        return VideoSource(path, fps)
    if path.is_dir():
        if (path / "seqinfo.ini").is_file() or (path.parent / "seqinfo.ini").is_file():
            return open_mot_sequence(path, fps)
        return ImageFolderSource(path, fps)
    raise SourceError(f"source {path}: no such file or directory")


def _check_fps(fps: float, path: Path) -> float:
    if not (math.isfinite(fps) and fps > 0):
        raise SourceError(f"source {path}: frame rate must be > 0, got {fps}")
    return float(fps)


def _natural_key(path: Path) -> list[object]:
    return [
        int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)
    ]
