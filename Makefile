# Entry points for developers and CI. `make demo` and `make test` set up .venv on first use.
#   make setup                 create/update .venv (tools/setup_env.sh; fast when nothing changed)
#   make test                  lint, then the whole test suite, type check included (needs the data set, see DATA)
#   make lint                  ruff check (pyflakes, pycodestyle, isort, bugbear, pyupgrade, simplify) + ruff format --check
#   make test-fast             the tests without ROS processes, a GPU or the reference env, on every core
#   make demo                  replay a video through the tracker node, results in $(OUT)
#   make demo-cameras          the same with three cameras (two videos, MOT16-05; the last as JPEG
#                              CompressedImage) in one node, results in $(CAMERAS_OUT)/<camera>/
#   make bench                 run every section of BENCHMARKS.md (bench/run_all.sh; BENCH_ARGS="--quick" or sections)
#   make clean / distclean     remove build outputs / also the virtualenv
# Data: ../shared/data by default; override with YOLO_TRT_ROS_DATA=/path (variable or environment).

SHELL := /bin/bash
VENV ?= .venv
YOLO_TRT_ROS_DATA ?= ../shared/data
MODEL ?= $(YOLO_TRT_ROS_DATA)/models/yolov8n-coco-fp32.onnx
SOURCE ?= $(YOLO_TRT_ROS_DATA)/videos/one-by-one-person-detection.mp4
OUT ?= demo_out
CAMERAS_MODEL ?= $(YOLO_TRT_ROS_DATA)/models/yolov8n-coco-dynamic.onnx
CAMERAS_SOURCES ?= $(YOLO_TRT_ROS_DATA)/videos/one-by-one-person-detection.mp4 \
	$(YOLO_TRT_ROS_DATA)/videos/car-detection.mp4 $(YOLO_TRT_ROS_DATA)/mot/MOT16-05
CAMERAS_OUT ?= demo_cameras_out
CAMERAS_ARGS ?=
PYTEST_ARGS ?= -q
BENCH_ARGS ?=
PYTEST := $(VENV)/bin/python -m pytest

# FastDDS' default transports drop most large best-effort frames over loopback.
export FASTDDS_BUILTIN_TRANSPORTS ?= LARGE_DATA
override YOLO_TRT_ROS_DATA := $(abspath $(YOLO_TRT_ROS_DATA))
export YOLO_TRT_ROS_DATA
export VENV
# Tests start many Python processes: let them reuse compiled bytecode.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: setup lint test test-fast demo demo-cameras bench clean distclean check-data

setup:
	@bash tools/setup_env.sh

check-data:
	@if [ ! -d "$(YOLO_TRT_ROS_DATA)" ]; then \
	  echo "ERROR: test data not found at '$(YOLO_TRT_ROS_DATA)'." >&2; \
	  echo "       Put the shared data set beside the repo (../shared/data) or run" >&2; \
	  echo "       'make $(MAKECMDGOALS) YOLO_TRT_ROS_DATA=/path/to/data'." >&2; \
	  exit 1; \
	fi

test: setup check-data lint
	$(PYTEST) $(PYTEST_ARGS) test

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test-fast: setup check-data
	$(PYTEST) $(PYTEST_ARGS) -n auto --dist loadfile -m "not ros and not gpu and not reference" test

demo: setup check-data
	@for f in "$(MODEL)" "$(SOURCE)"; do \
	  [ -f "$$f" ] || { echo "ERROR: '$$f' not found (set MODEL=... / SOURCE=...)" >&2; exit 1; }; \
	done
	$(VENV)/bin/yolo-trt-ros demo --model "$(MODEL)" --source "$(SOURCE)" --out "$(OUT)"

demo-cameras: setup check-data
	@for f in "$(CAMERAS_MODEL)" $(CAMERAS_SOURCES); do \
	  [ -e "$$f" ] || { echo "ERROR: '$$f' not found (set CAMERAS_MODEL=... / CAMERAS_SOURCES=...)" >&2; exit 1; }; \
	done
	$(VENV)/bin/yolo-trt-ros demo --model "$(CAMERAS_MODEL)" $(addprefix --source ,$(CAMERAS_SOURCES)) \
	  --out "$(CAMERAS_OUT)" $(CAMERAS_ARGS)

bench: setup check-data
	bash bench/run_all.sh $(BENCH_ARGS)

clean:
	rm -rf build install log $(OUT) $(CAMERAS_OUT) .pytest_cache .mypy_cache .ruff_cache *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
