"""Camera names and kinds from their topics."""

from __future__ import annotations

import pytest

from yolo_trt_ros.ros.camera import camera_name
from yolo_trt_ros.ros.compressed_image import is_compressed


@pytest.mark.parametrize(
    "topic, name",
    [
        ("/front/image_raw", "front"),
        ("front/image_raw", "front"),
        ("/arm/camera/color/image_raw/compressed", "arm/camera/color"),
        ("/stereo/left/image_rect_color", "stereo/left"),
        ("/cam1/image", "cam1"),
        ("/cam1/frames", "cam1/frames"),
        ("image_raw", "camera3"),
        ("/image_raw/compressed", "camera3"),
        ("~/input", "input"),
    ],
)
def test_a_camera_is_named_after_its_topic_namespace(topic: str, name: str) -> None:
    assert camera_name(topic, 3) == name


def test_compressed_topics_follow_image_transport() -> None:
    assert is_compressed("/front/image_raw/compressed")
    assert is_compressed("compressed/")
    assert not is_compressed("/front/compressed_images")
    assert not is_compressed("/front/image_raw")
