#!/usr/bin/env bash
# Prepare mypy's view of TensorRT for `mypy` (mypy.ini): install mypy if missing, install tensorrt-stubs 10.13
# with --no-deps into a scratch folder (its dependency is TensorRT itself, which cannot be installed), and write a
# patched copy of its .pyi files to .cache/trt-stubs (mypy_path). The stubs as published do not parse:
#   - parameters named `in` (a Python keyword)            -> renamed `in_`
#   - INetworkDefinition.add_scale_nd: `channel_axis` without default after defaulted parameters -> `= ...`
#   - `import tensorrt_libs` (a package that only ships TensorRT's shared libraries) -> removed
#   - the module constant `bool: DataType` shadows the builtin in every `-> bool` annotation of
#     tensorrt_bindings/tensorrt.pyi (mypy then sees `not parser.parse(...)` as always false) -> builtins.bool
# mypy.ini then sets ignore_errors for tensorrt.* / tensorrt_bindings.*, so only our code is checked, against
# the stubs' classes: a call of a method TensorRT 10 lacks is an error (test/test_typecheck.py checks that).
#
# Environment: PYTHON (default <repo>/.venv/bin/python). Idempotent (stamp file).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
STUBS="tensorrt-stubs==10.13.0.35.1"
MYPY="mypy==2.4.1"
OUT="$ROOT/.cache/trt-stubs"
STAMP="$OUT/.prepared"
PATCH_LEVEL=2

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$STUBS patch $PATCH_LEVEL" ]] && "$PY" -c 'import mypy' 2>/dev/null; then
  exit 0
fi
"$PY" -c 'import mypy' 2>/dev/null || "$PY" -m pip install --disable-pip-version-check --no-input -q "$MYPY"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$PY" -m pip install --disable-pip-version-check --no-input -q --no-deps --target "$tmp/site" "$STUBS"
rm -rf "$OUT"
mkdir -p "$OUT"
cp -r "$tmp/site/tensorrt" "$tmp/site/tensorrt_bindings" "$OUT/"
"$PY" - "$OUT" <<'PYEOF'
import re
import sys
from pathlib import Path

for pyi in Path(sys.argv[1]).rglob("*.pyi"):
    text = pyi.read_text()
    text = re.sub(r"(?<=[(,] )in(?=: )|(?<=\()in(?=: )", "in_", text)
    text = re.sub(r"(def add_scale_nd\(.*channel_axis: int)\)", r"\1 = ...)", text)
    text = re.sub(r"^import tensorrt_libs as tensorrt_libs\n", "", text, flags=re.M)
    if pyi.name == "tensorrt.pyi":
        text = re.sub(r"(?:(?<=-> )|(?<=: )|(?<=\[)|(?<=, ))bool\b", "builtins.bool", text)
        text = text.replace("import typing\n", "import builtins\nimport typing\n", 1)
    pyi.write_text(text)
PYEOF
echo "$STUBS patch $PATCH_LEVEL" > "$STAMP"
echo "prepare_trt_stubs: patched $STUBS in $OUT"
