#!/usr/bin/env bash
# Run every benchmark; results (JSON) go to $BENCH_OUT (default /tmp/yolo_trt_ros_bench). Parts that need the reference
# environment (.venv-ref: torch + Ultralytics, made by bench/setup_ref_env.sh) run only when it exists.
# The machine should be otherwise idle: the load average is printed before each part.
#   bash bench/run_all.sh            (or: make bench)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV=${VENV:-.venv}
REF=.venv-ref
OUT=${BENCH_OUT:-/tmp/yolo_trt_ros_bench}
mkdir -p "$OUT"
export FASTDDS_BUILTIN_TRANSPORTS=${FASTDDS_BUILTIN_TRANSPORTS:-LARGE_DATA}

part() { echo; echo "=== $1 (load: $(cut -d' ' -f1-3 /proc/loadavg))"; }

part "coco8 mAP, ours"
"$VENV/bin/python" bench/coco8_map.py --no-reference --json "$OUT/coco8_map_ours.json"
part "stage timings (node defaults: tracking on)"
"$VENV/bin/python" bench/bench_stages.py --passes 5 --json "$OUT/stages.json"
part "stage timings, detection only"
"$VENV/bin/python" bench/bench_stages.py --passes 5 --no-tracking --json "$OUT/stages_detect_only.json"
part "stage timings, with a subscriber process"
"$VENV/bin/python" bench/bench_stages.py --passes 5 --subscriber process --json "$OUT/stages_subscribed.json"
if [ -x "$REF/bin/python" ]; then
  part "coco8 mAP, ours vs Ultralytics val"
  "$REF/bin/python" bench/coco8_map.py --json "$OUT/coco8_map.json"
  part "Ultralytics predict vs our Detector vs ROS end to end"
  "$REF/bin/python" bench/bench_vs_ultralytics.py --passes 5 --ros-runs 3 --ros-python "$VENV/bin/python" \
    --json "$OUT/vs_ultralytics.json"
else
  part "ROS end to end (no $REF: Ultralytics comparison skipped; bash bench/setup_ref_env.sh makes it)"
  "$VENV/bin/python" bench/ros_throughput.py --json "$OUT/ros_throughput.json"
fi
