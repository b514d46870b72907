#!/usr/bin/env bash
# Reference environment for benchmarks and parity checks: torch (CPU use) + Ultralytics (with what its track()
# needs) + supervision and TrackEval for bench/eval_trackers.py + our package.
# Idempotent: re-running only installs what is missing. Kept out of the node's runtime and the default tests.
# Usage: bash bench/setup_ref_env.sh   (creates .venv-ref in the repo root)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-ref
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PY="$PWD/$VENV/bin/python"
have() { "$PY" -c "import $1" >/dev/null 2>&1; }
# torch/torchvision: pip takes these pinned wheels from the machine's local wheel store (no multi-GB download).
have torchvision || "$PY" -m pip install torch==2.14.1 torchvision==0.29.1
have ultralytics || "$PY" -m pip install 'ultralytics>=8.4,<8.5'
have onnxruntime || "$PY" -m pip install 'onnxruntime==1.32.0'  # the main venv's (requirements/runtime.txt)
have onnx || "$PY" -m pip install 'onnx==1.23.2'  # Ultralytics checks for it when loading .onnx models
# track() imports lap (not an Ultralytics install requirement; it autoinstalls it only when allowed to).
have lap || "$PY" -m pip install 'lap==0.5.13'
# bench/eval_trackers.py: supervision's ByteTrack and TrackEval; TrackEval's own requirements pin old versions, so
# it goes in without them (it needs only numpy and scipy).
have scipy || "$PY" -m pip install 'scipy==1.17.1'  # normally already pulled in by ultralytics
have supervision || "$PY" -m pip install 'supervision==0.30.*'
have trackeval || "$PY" -m pip install --no-deps 'trackeval==1.3.0'
# Ultralytics pulls opencv-python (GUI build); the headless build serves both it and us.
"$PY" -m pip show -q opencv-python-headless pytest >/dev/null 2>&1 || "$PY" -m pip install opencv-python-headless pytest
"$PY" -m pip show -q yolo_trt_ros >/dev/null 2>&1 || "$PY" -m pip install -e . --no-deps
(cd / && "$PY" -c "import importlib.metadata as m, torch, torchvision, ultralytics, onnxruntime, cv2, numpy, lap, scipy, supervision, trackeval; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'ultralytics', ultralytics.__version__, 'onnxruntime', onnxruntime.__version__, 'opencv', cv2.__version__, 'numpy', numpy.__version__, 'lap', m.version('lap'), 'scipy', scipy.__version__, 'supervision', supervision.__version__, 'trackeval', m.version('trackeval'))")
