"""Read an ONNX model's graph inputs/outputs and metadata without the onnx package or a runtime.

The engine builder and the engine cache need the input name/shape (for the optimization profile)
and the Ultralytics metadata (class names, imgsz) before, or instead of, running TensorRT's parser.
This walks the protobuf wire format and skips everything else (weights included) by length, so it
is fast on any model size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

Dim = int | str | None
"""A dimension: its size, its symbolic name, or None when unnamed and unknown."""

_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5
# Field numbers of onnx.proto (ModelProto, GraphProto, ValueInfoProto, TypeProto, ...).
_MODEL_GRAPH, _MODEL_METADATA = 7, 14
_GRAPH_INITIALIZER, _GRAPH_INPUT, _GRAPH_OUTPUT = 5, 11, 12
_TENSOR_NAME = 8


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output: name, dims and ONNX element type (1 float, 10 float16, ...)."""

    name: str
    shape: tuple[Dim, ...]
    elem_type: int


@dataclass(frozen=True)
class OnnxInfo:
    """Graph inputs (initializers excluded), outputs and ``metadata_props`` of an ONNX model."""

    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    metadata: dict[str, str] = field(default_factory=dict)


class OnnxFormatError(ValueError):
    """The file is not a readable ONNX model."""


def read_onnx_info(path: str | Path) -> OnnxInfo:
    """Parse ``path``; raises OnnxFormatError (naming the file) when it is not a valid ONNX
    protobuf."""
    path = Path(path)
    data = path.read_bytes()
    if not data:
        raise OnnxFormatError(f"{path}: empty file, not an ONNX model")
    try:
        return _parse_model(memoryview(data))
    except (IndexError, ValueError, UnicodeDecodeError) as exc:
        raise OnnxFormatError(f"{path}: not a valid ONNX model ({exc})") from None


def _parse_model(data: memoryview) -> OnnxInfo:
    graph: memoryview | None = None
    metadata: dict[str, str] = {}
    for num, wire, _, value in _fields(data):
        if num == _MODEL_GRAPH and wire == _BYTES:
            graph = value
        elif num == _MODEL_METADATA and wire == _BYTES:
            entry = dict(_strings(value))
            metadata[entry.get(1, "")] = entry.get(2, "")
    if graph is None:
        raise ValueError("no graph")
    initializers: set[str] = set()
    inputs: list[TensorSpec] = []
    outputs: list[TensorSpec] = []
    for num, wire, _, value in _fields(graph):
        if wire != _BYTES:
            continue
        if num == _GRAPH_INITIALIZER:
            initializers.update(s for n, s in _strings(value) if n == _TENSOR_NAME)
        elif num == _GRAPH_INPUT:
            inputs.append(_value_info(value))
        elif num == _GRAPH_OUTPUT:
            outputs.append(_value_info(value))
    return OnnxInfo([i for i in inputs if i.name not in initializers], outputs, metadata)


def _value_info(data: memoryview) -> TensorSpec:
    name, elem_type = "", 0
    dims: list[Dim] = []
    for num, wire, _, value in _fields(data):
        if num == 1 and wire == _BYTES:
            name = bytes(value).decode()
        elif num == 2 and wire == _BYTES:  # TypeProto
            for tnum, twire, _, tvalue in _fields(value):
                if tnum == 1 and twire == _BYTES:  # tensor_type
                    elem_type, dims = _tensor_type(tvalue)
    return TensorSpec(name, tuple(dims), elem_type)


def _tensor_type(data: memoryview) -> tuple[int, list[Dim]]:
    elem_type = 0
    dims: list[Dim] = []
    for num, wire, number, value in _fields(data):
        if num == 1 and wire == _VARINT:
            elem_type = number
        elif num == 2 and wire == _BYTES:  # TensorShapeProto
            dims = [_dim(v) for n, w, _, v in _fields(value) if n == 1 and w == _BYTES]
    return elem_type, dims


def _dim(data: memoryview) -> Dim:
    for num, wire, number, value in _fields(data):
        if num == 1 and wire == _VARINT:
            return number if number < 1 << 63 else number - (1 << 64)
        if num == 2 and wire == _BYTES:
            return bytes(value).decode()
    return None


def _strings(data: memoryview) -> Iterator[tuple[int, str]]:
    for num, wire, _, value in _fields(data):
        if wire == _BYTES and num in (1, 2, _TENSOR_NAME):
            yield num, bytes(value).decode()


def _fields(data: memoryview) -> Iterator[tuple[int, int, int, memoryview]]:
    """Yield (field number, wire type, varint value, length-delimited bytes) for each field of a
    message."""
    pos, end = 0, len(data)
    while pos < end:
        key, pos = _varint(data, pos)
        num, wire = key >> 3, key & 7
        if wire == _VARINT:
            value, pos = _varint(data, pos)
            yield num, wire, value, data[0:0]
        elif wire == _BYTES:
            size, pos = _varint(data, pos)
            if pos + size > end:
                raise ValueError("truncated field")
            yield num, wire, size, data[pos : pos + size]
            pos += size
        elif wire in (_FIXED64, _FIXED32):
            pos += 8 if wire == _FIXED64 else 4
        else:
            raise ValueError(f"unsupported wire type {wire}")


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    result, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")
