"""Class names from Ultralytics ONNX metadata or from a names file (.txt one per line, .yaml
``names:``)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import yaml


def names_from_metadata(metadata: dict[str, str]) -> list[str] | None:
    """Names from the Ultralytics ``names`` metadata (a dict literal string), or None when absent.

    Parsed with ``ast.literal_eval`` (never ``eval``); raises ValueError when present but
    malformed.
    """
    raw = metadata.get("names")
    if raw is None:
        return None
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError) as exc:
        raise ValueError(f"metadata 'names' is not a Python literal: {raw[:80]!r}") from exc
    return _name_list(value, "metadata 'names'")


def load_names_file(path: str | Path) -> list[str]:
    """Names from a text file (one per line, blank lines ignored) or a YAML file (.yaml/.yml) whose
    ``names`` is a list or an {id: name} mapping (an Ultralytics dataset YAML works); a top-level
    YAML list works too.

    Raises ValueError naming the file and the problem.
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"names file {path}: is a directory, not a names file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"names file {path}: cannot be read: {exc}") from exc
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"names file {path}: invalid YAML: {exc}") from exc
        if isinstance(data, dict):
            if "names" not in data:
                raise ValueError(f"names file {path}: no 'names' key")
            data = data["names"]
        names = _name_list(data, f"names file {path}")
    else:
        names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise ValueError(f"names file {path}: no class names")
    return names


def fallback_names(num_classes: int) -> list[str]:
    """Placeholder names ``class_<i>`` for a model without names."""
    return [f"class_{i}" for i in range(num_classes)]


def _name_list(value: Any, where: str) -> list[str]:
    if isinstance(value, dict):
        keys = sorted(value) if all(isinstance(k, int) for k in value) else None
        if keys is None or keys != list(range(len(keys))):
            raise ValueError(f"{where}: mapping keys must be the integers 0..n-1")
        value = [value[k] for k in keys]
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, (str, int, float)) for v in value
    ):
        raise ValueError(f"{where}: expected a list of names or an {{id: name}} mapping")
    return [str(v) for v in value]
