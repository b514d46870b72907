"""Class names from Ultralytics ONNX metadata and from names files."""

from __future__ import annotations

from pathlib import Path

import pytest

from yolo_trt_ros.detection.class_names import fallback_names, load_names_file, names_from_metadata
from yolo_trt_ros.inference.onnxruntime import OnnxRuntimeBackend


def test_names_from_real_model_metadata(model_path: Path) -> None:
    backend = OnnxRuntimeBackend(model_path)
    names = names_from_metadata(backend.metadata)
    assert names is not None and len(names) == 80
    assert (names[0], names[5], names[27], names[79]) == ("person", "bus", "tie", "toothbrush")


def test_names_metadata_variants() -> None:
    assert names_from_metadata({}) is None
    assert names_from_metadata({"names": "{1: 'b', 0: 'a', 2: 'c d'}"}) == ["a", "b", "c d"]
    assert names_from_metadata({"names": "['x', 'y']"}) == ["x", "y"]


@pytest.mark.parametrize(
    "raw",
    [
        "__import__('os').system('echo pwned')",  # literal_eval refuses code: never eval
        "{0: 'a', 2: 'c'}",  # gap in ids
        "{'a': 0}",
        "42",
        "{0: 'a',",
        "[['nested']]",
    ],
)
def test_bad_metadata_names_raise(raw: str) -> None:
    with pytest.raises(ValueError, match="metadata 'names'"):
        names_from_metadata({"names": raw})


def test_text_names_file(tmp_path: Path) -> None:
    path = tmp_path / "coco.names"
    path.write_text("person\n\n  traffic light \nbicycle\n\n")
    assert load_names_file(path) == ["person", "traffic light", "bicycle"]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("names: [cat, dog]\n", ["cat", "dog"]),
        ("names:\n  - cat\n  - dog\n", ["cat", "dog"]),
        (
            "path: ../datasets/x\ntrain: images/train\nnames:\n  0: cat\n  1: dog\n  2: 'no'\n",
            ["cat", "dog", "no"],
        ),
        ("- a\n- b\n", ["a", "b"]),
        ("names: {1: b, 0: a}\n", ["a", "b"]),
    ],
)
def test_yaml_names_file(tmp_path: Path, text: str, expected: list[str]) -> None:
    path = tmp_path / "data.yaml"
    path.write_text(text)
    assert load_names_file(path) == expected


@pytest.mark.parametrize(
    "name, text, match",
    [
        ("empty.txt", "\n\n", "no class names"),
        ("no_names.yaml", "train: x\n", "no 'names' key"),
        ("bad.yaml", "names: [a, b\n", "invalid YAML"),
        ("gap.yaml", "names: {0: a, 5: b}\n", "0..n-1"),
        ("scalar.yml", "names: 3\n", "list of names"),
        ("empty.yaml", "names: []\n", "no class names"),
    ],
)
def test_bad_names_files(tmp_path: Path, name: str, text: str, match: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as info:
        load_names_file(path)
    assert str(path) in str(info.value)


def test_missing_names_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot be read") as info:
        load_names_file(tmp_path / "nope.txt")
    assert "nope.txt" in str(info.value)
    with pytest.raises(ValueError, match=f"names file {tmp_path}: is a directory"):
        load_names_file(tmp_path)


def test_fallback_names() -> None:
    assert fallback_names(3) == ["class_0", "class_1", "class_2"]
