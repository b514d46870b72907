#!/usr/bin/env bash
# Run every section of BENCHMARKS.md. JSON or Markdown results (where a script writes them) and each section's
# printed output go to $BENCH_OUT (default /tmp/yolo_trt_ros_bench). Sections that need the reference environment
# (.venv-ref: torch + Ultralytics, made by bench/setup_ref_env.sh) or an NVIDIA GPU (pycuda, nvcc) run where those
# are available and print "skipped: <why>, run <command>" otherwise. The machine should be otherwise idle: the load
# average is printed before each part.
#
#   bash bench/run_all.sh [--dry-run] [--quick] [SECTION...]        (or: make bench)
#     SECTION   coco8 stages vs-ultralytics cameras tracker-speed tracker-accuracy id-stability gpu (default: all)
#     --dry-run print the commands instead of running them
#     --quick   shortest options: checks that every part runs; its numbers mean nothing
# Environment: VENV (main venv, default .venv), REF (reference venv, default .venv-ref), GPU_PYTHON (interpreter with
# pycuda for the GPU section, default $VENV/bin/python), YOLO_TRT_ROS_DATA (default ../shared/data).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=${VENV:-.venv}
REF=${REF:-.venv-ref}
OUT=${BENCH_OUT:-/tmp/yolo_trt_ros_bench}
DATA=$(realpath -m "${YOLO_TRT_ROS_DATA:-../shared/data}")
MODEL="$DATA/models/yolov8n-coco-fp32.onnx"
GPU_PYTHON=${GPU_PYTHON:-$VENV/bin/python}
export FASTDDS_BUILTIN_TRANSPORTS=${FASTDDS_BUILTIN_TRANSPORTS:-LARGE_DATA}
export YOLO_TRT_ROS_DATA="$DATA"

ALL=(coco8 stages vs-ultralytics cameras tracker-speed tracker-accuracy id-stability gpu)
DRY=0
QUICK=0
SECTIONS=()
for arg in "$@"; do
  case "$arg" in
    --dry-run) DRY=1 ;;
    --quick) QUICK=1 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) [[ " ${ALL[*]} " == *" $arg "* ]] || { echo "run_all: unknown section '$arg' (${ALL[*]})" >&2; exit 2; }
       SECTIONS+=("$arg") ;;
  esac
done
((${#SECTIONS[@]})) || SECTIONS=("${ALL[@]}")
want() { [[ " ${SECTIONS[*]} " == *" $1 "* ]]; }
# full options, or the shortest ones with --quick
pick() { if ((QUICK)); then echo "$2"; else echo "$1"; fi; }

part() { echo; echo "=== $1 (load: $(cut -d' ' -f1-3 /proc/loadavg))"; }
skipped() { echo "skipped: $1, run: $2"; }
# run LOG CMD...: run (or print) a command, its output also saved as $OUT/LOG
run() {
  local log="$1"; shift
  if ((DRY)); then printf '%q ' "$@"; echo; return; fi
  "$@" 2>&1 | tee "$OUT/$log"
}
have_ref() { [[ -x "$REF/bin/python" ]]; }
NO_REF="no $REF (torch + Ultralytics)"
MAKE_REF="bash bench/setup_ref_env.sh, then bash bench/run_all.sh"

mkdir -p "$OUT"

if want coco8; then
  part "coco8 mAP, ours"
  run coco8_map_ours.txt "$VENV/bin/python" bench/coco8_map.py --no-reference --json "$OUT/coco8_map_ours.json"
  part "coco8 mAP, ours vs Ultralytics val"
  if have_ref; then
    run coco8_map.txt "$REF/bin/python" bench/coco8_map.py --json "$OUT/coco8_map.json"
    part "coco8 mAP on the dynamic-shape model, square and rectangular input, ours vs Ultralytics val"
    for variant in square: rect:--rect; do
      IFS=: read -r name option <<<"$variant"
      # shellcheck disable=SC2086  # no option or one
      run "coco8_map_dynamic_$name.txt" "$REF/bin/python" bench/coco8_map.py \
        --model "$DATA/models/yolov8n-coco-dynamic.onnx" $option --json "$OUT/coco8_map_dynamic_$name.json"
    done
  else
    skipped "$NO_REF" "$MAKE_REF coco8"
  fi
  part "rectangular vs square input: person AP on MOT16-05"
  # shellcheck disable=SC2046
  run rect_accuracy.txt "$VENV/bin/python" bench/rect_accuracy_mot.py $(pick "" "--frames 5")
fi

if want stages; then
  passes=$(pick 5 1)
  for variant in "tracking on:stages:" \
                 "detection only:stages_detect_only:--no-tracking" \
                 "tracking on, subscriber process:stages_subscribed:--subscriber process" \
                 "detection only, subscriber process:stages_detect_only_subscribed:--no-tracking --subscriber process"
  do
    IFS=: read -r title name options <<<"$variant"
    part "stage timings, $title"
    # shellcheck disable=SC2086  # options are words
    run "$name.txt" "$VENV/bin/python" bench/bench_stages.py --passes "$passes" $options --json "$OUT/$name.json"
  done
fi

if want vs-ultralytics; then
  part "decode time per output layout"
  # shellcheck disable=SC2046
  run decode.txt "$VENV/bin/python" bench/bench_decode.py $(pick "" "--repeats 1") --json "$OUT/decode.json"
  part "Ultralytics predict/track vs our Detector/FramePipeline vs ROS end to end"
  if have_ref; then
    # shellcheck disable=SC2046
    run vs_ultralytics.txt "$REF/bin/python" bench/bench_vs_ultralytics.py \
      --model "$DATA/models/yolov8n-coco-dynamic.onnx" "$MODEL" "$DATA/models/yolov8n-coco-reconstructed.pt" \
      $(pick "--passes 5 --ros-runs 3" "--passes 1 --ros-runs 1 --duration 3") \
      --ros-python "$VENV/bin/python" --json "$OUT/vs_ultralytics.json"
  else
    skipped "$NO_REF: Ultralytics comparison; the ROS end-to-end rate alone follows" "$MAKE_REF vs-ultralytics"
    # shellcheck disable=SC2046
    run ros_throughput.txt "$VENV/bin/python" bench/ros_throughput.py $(pick "" "--duration 3 --warmup 2") \
      --json "$OUT/ros_throughput.json"
  fi
fi

if want cameras; then
  part "several cameras: one node (defaults, batches, one run, static model) vs one node per camera"
  # shellcheck disable=SC2046
  run cameras.txt "$VENV/bin/python" bench/bench_cameras.py \
    $(pick "--cameras 1 2 4" "--cameras 2 --duration 3 --warmup 3") --json "$OUT/cameras.json"
fi

if want tracker-speed; then
  part "tracking: time per update(), ours vs Ultralytics vs supervision"
  if have_ref; then
    # shellcheck disable=SC2046
    run tracker_speed.txt "$REF/bin/python" bench/bench_tracker.py --parts --baseline-ref 81dd03b \
      $(pick "--rounds 8 --objects 20 50 200" "--rounds 2 --objects 20")
  else
    skipped "$NO_REF" "$MAKE_REF tracker-speed"
  fi
fi

if want tracker-accuracy; then
  part "tracking accuracy on MOT16-05 (TrackEval), ours vs Ultralytics vs supervision"
  if have_ref; then
    # shellcheck disable=SC2046
    run tracker_accuracy.txt "$REF/bin/python" bench/eval_trackers.py $(pick "" "--skip-detector")
  else
    skipped "$NO_REF" "$MAKE_REF tracker-accuracy"
  fi
fi

if want id-stability; then
  part "ID stability when the detector flips classes (car-detection.mp4): distinct track IDs"
  video="$DATA/videos/car-detection.mp4"
  max_frames=$(pick "" "--max-frames 20")
  for mode in default class-aware; do
    options=()
    if [[ $mode == class-aware ]]; then options=(--class-aware); fi
    # shellcheck disable=SC2086
    run "cars_$mode.txt" "$VENV/bin/yolo-trt-ros" track "$video" --model "$MODEL" --out "$OUT/cars_$mode" \
      --backend onnxruntime "${options[@]}" $max_frames
    ((DRY)) || echo "yolo_trt_ros, $mode: distinct track IDs" \
      "$("$VENV/bin/python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["distinct_track_ids"])' \
          "$OUT/cars_$mode/summary.json")"
  done
  if have_ref; then
    run cars_ultralytics.txt env YOLO_AUTOINSTALL=False "$REF/bin/python" - "$MODEL" "$video" "$(pick 0 20)" <<'EOF'
import sys
from itertools import islice

from ultralytics import YOLO

model, video, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]) or None
ids = set()
results = YOLO(model, task="detect").track(source=video, tracker="bytetrack.yaml", stream=True, verbose=False)
for r in islice(results, limit):
    if r.boxes.id is not None:
        ids.update(r.boxes.id.int().tolist())
print(f"Ultralytics track(), bytetrack.yaml: distinct track IDs {len(ids)}")
EOF
  else
    skipped "$NO_REF: Ultralytics track() row" "$MAKE_REF id-stability"
  fi
fi

if want gpu; then
  part "GPU path (pycuda kernels, fake engine): correctness, timings, upload variants"
  if [[ -x /usr/local/cuda/bin/nvcc ]]; then export PATH="$PATH:/usr/local/cuda/bin"; fi
  why=""
  if ! command -v nvcc >/dev/null; then
    why="nvcc not found"
  elif ! gpu=$("$GPU_PYTHON" -c 'import pycuda.driver as d; d.init(); print(d.Device(0).name())' 2>&1); then
    why="no GPU usable through pycuda with $GPU_PYTHON ($(tail -n 1 <<<"$gpu"))"
  fi
  if [[ -n $why ]]; then
    skipped "$why" \
      "on a GPU machine with pycuda and nvcc (BENCHMARKS.md, GPU path): GPU_PYTHON=python3 bash bench/run_all.sh gpu"
  else
    ((DRY)) || echo "GPU: $gpu"
    run gpu_check.txt "$GPU_PYTHON" -m pytest test/inference/tensorrt/test_gpu_check.py -m gpu -rP -p no:cacheprovider
    # shellcheck disable=SC2046
    run gpu.txt "$GPU_PYTHON" bench/bench_gpu.py $(pick "" "--iters 5 --warmup 1 --paced-runs 2") \
      --markdown "$OUT/gpu.md"
    # shellcheck disable=SC2046
    run gpu_batch.txt "$GPU_PYTHON" bench/bench_gpu_batch.py $(pick "" "--iters 5 --warmup 1")
    # shellcheck disable=SC2046
    run gpu_upload_variants.txt "$GPU_PYTHON" bench/gpu_upload_variants.py $(pick "" "--iters 5 --warmup 1") \
      --markdown "$OUT/gpu_upload_variants.md"
  fi
fi
