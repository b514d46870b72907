#!/usr/bin/env bash
# Create or update the development virtualenv (.venv): pinned ROS 2 wheels and Python
# dependencies, the local vision_msgs build, and this package installed editable.
# Idempotent: each step is skipped while its stamp (a hash of its inputs) is current.
#
# Environment: PYTHON (interpreter for a new venv, default python3), VENV (default <repo>/.venv),
# JOBS (parallel compile jobs for vision_msgs, default: number of CPUs).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$(realpath -m "${VENV:-$ROOT/.venv}")"
PYTHON="${PYTHON:-python3}"
STAMPS="$VENV/.stamps"
MSG_SRC="$ROOT/interfaces/vision_msgs"
BUILD_REQS="$ROOT/requirements/build.txt"
REQS=("$ROOT/requirements/ros.txt" "$ROOT/requirements/runtime.txt" "$ROOT/requirements/test.txt")
NODEPS_REQS="$ROOT/requirements/nodeps.txt"

log() { echo "setup_env: $*"; }
die() { echo "setup_env: ERROR: $*" >&2; exit 1; }

hash_files() { cat "$@" | sha256sum | cut -c1-16; }

stamp_current() { [[ -f "$STAMPS/$1" && "$(cat "$STAMPS/$1")" == "$2" ]]; }
write_stamp() { mkdir -p "$STAMPS"; echo "$2" > "$STAMPS/$1"; }

check_python() {
  command -v "$PYTHON" >/dev/null 2>&1 \
    || die "'$PYTHON' not found. Install Python >= 3.10 (Debian/Ubuntu: sudo apt install python3 python3-venv) or set PYTHON=/path/to/python3.X"
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || die "Python >= 3.10 is required, '$PYTHON' is $("$PYTHON" -c 'import platform; print(platform.python_version())'). Set PYTHON=python3.10 (or newer)."
  "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1 \
    || die "the venv module is incomplete for '$PYTHON'. Debian/Ubuntu: sudo apt install python3-venv (or python3.X-venv)"
}

check_build_tools() {
  command -v cmake >/dev/null 2>&1 \
    || die "cmake not found; it is needed to build vision_msgs. Debian/Ubuntu: sudo apt install cmake build-essential"
  local ver
  ver="$(cmake --version | head -n1 | awk '{print $3}')"
  [[ "$(printf '%s\n3.16\n' "$ver" | sort -V | head -n1)" == 3.16 ]] \
    || die "cmake >= 3.16 is required to build vision_msgs, found $ver"
  command -v cc >/dev/null 2>&1 && command -v c++ >/dev/null 2>&1 \
    || die "a C and C++ compiler (cc, c++) are needed to build vision_msgs. Debian/Ubuntu: sudo apt install build-essential"
  "$VENV/bin/python" - <<'EOF' || die "Python development headers (Python.h) are missing. Debian/Ubuntu: sudo apt install python3-dev (or python3.X-dev)"
import os, sys, sysconfig
sys.exit(not os.path.isfile(os.path.join(sysconfig.get_paths()["include"], "Python.h")))
EOF
}

# -S: no site import, so the ROS wheels' re-exec hook does not run (fast).
venv_python_version() { "$VENV/bin/python" -S -c 'import platform; print(platform.python_version())'; }
venv_site() { echo "$VENV/lib/python$("$VENV/bin/python" -S -c 'import sys; print("%d.%d" % sys.version_info[:2])')/site-packages"; }

# pip, without the warnings this machine's pip.conf produces for absent local mirrors.
pip_install() {
  "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q "$@" \
    2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
}

create_venv() {
  if [[ -x "$VENV/bin/python" ]]; then
    return
  fi
  check_python
  log "creating $VENV with $("$PYTHON" --version 2>&1)"
  "$PYTHON" -m venv "$VENV"
}

install_requirements() {
  local key
  key="$(hash_files "$BUILD_REQS" "${REQS[@]}" "$NODEPS_REQS")-$(venv_python_version)"
  if stamp_current requirements "$key"; then
    return
  fi
  log "installing pinned requirements (ROS 2 wheels, runtime, test)"
  pip_install -r "$BUILD_REQS"
  local args=() req
  for req in "${REQS[@]}"; do args+=(-r "$req"); done
  pip_install "${args[@]}"
  pip_install --no-deps -r "$NODEPS_REQS"
  fix_wheel_cmake_paths
  write_stamp requirements "$key"
}

# The ros-* wheels were built in manylinux containers; their exported CMake targets name the
# container's Python and numpy include directories. Point them at this venv's.
fix_wheel_cmake_paths() {
  local py_inc np_inc files
  py_inc="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
  np_inc="$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')"
  mapfile -t files < <(grep -rlE '/opt/python/cp[0-9]+-cp[0-9]+' --include='*.cmake' "$VENV/share" 2>/dev/null || true)
  ((${#files[@]})) || return 0
  sed -i -E \
    -e "s#/opt/python/cp[0-9]+-cp[0-9]+/lib/python[0-9.]+/site-packages/numpy/_core/include#${np_inc}#g" \
    -e "s#/opt/python/cp[0-9]+-cp[0-9]+/include/python[0-9.]+#${py_inc}#g" \
    "${files[@]}"
  if grep -rlE '/opt/python/' --include='*.cmake' "$VENV/share" >/dev/null 2>&1; then
    die "unhandled /opt/python paths remain in $VENV/share/*/cmake: $(grep -rlE '/opt/python/' --include='*.cmake' "$VENV/share" | head -3)"
  fi
}

# Rebuilt when the messages or the pinned ROS wheels change.
vision_msgs_key() { (cd "$MSG_SRC" && hash_files CMakeLists.txt package.xml msg/*.msg "$ROOT/requirements/ros.txt"); }
vision_msgs_current() {
  stamp_current vision_msgs "$(vision_msgs_key)" && [[ -f "$(venv_site)/vision_msgs/msg/__init__.py" ]]
}

build_vision_msgs() {
  local key site build
  key="$(vision_msgs_key)"
  site="$(venv_site)"
  log "building vision_msgs into $VENV (about a minute)"
  build="$VENV/.build/vision_msgs"
  rm -rf "$build" "$site/vision_msgs" "$VENV/share/vision_msgs" "$VENV/include/vision_msgs" \
    "$VENV"/lib/libvision_msgs__*.so
  mkdir -p "$build"
  local jobs="${JOBS:-$(nproc 2>/dev/null || echo 2)}"
  (
    export VIRTUAL_ENV="$VENV" PATH="$VENV/bin:$PATH" AMENT_PREFIX_PATH="$VENV"
    cmake -S "$MSG_SRC" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
      -DCMAKE_INSTALL_PREFIX="$VENV" -DCMAKE_PREFIX_PATH="$VENV" \
      -DPython3_EXECUTABLE="$VENV/bin/python" >"$build/configure.log" 2>&1 \
      || { tail -n 40 "$build/configure.log" >&2; exit 1; }
    cmake --build "$build" -j "$jobs" >"$build/build.log" 2>&1 \
      || { grep -m 20 -iE 'error' "$build/build.log" >&2; tail -n 20 "$build/build.log" >&2; exit 1; }
    cmake --install "$build" >"$build/install.log" 2>&1 \
      || { tail -n 20 "$build/install.log" >&2; exit 1; }
  ) || die "vision_msgs build failed (logs in $build)"
  "$VENV/bin/python" -c 'from vision_msgs.msg import Detection2DArray; Detection2DArray()' \
    || die "vision_msgs was built but cannot be imported"
  write_stamp vision_msgs "$key"
}

install_package() {
  local key
  key="$(cd "$ROOT" && hash_files setup.py setup.cfg package.xml)"
  if stamp_current package "$key" && [[ -x "$VENV/bin/yolo-trt-ros" ]]; then
    return
  fi
  log "installing yolo_trt_ros (editable)"
  PYTHONWARNINGS=ignore pip_install --no-deps --no-build-isolation -e "$ROOT"   # quiet: setuptools editable notice
  [[ -x "$VENV/bin/yolo-trt-ros" ]] \
    || die "pip install -e . left no console scripts in $VENV/bin (pip $("$VENV/bin/python" -m pip --version))"
  write_stamp package "$key"
}

create_venv
if ! vision_msgs_current; then
  check_build_tools   # before the long pip step, so that a missing tool is reported at once
fi
install_requirements
vision_msgs_current || build_vision_msgs
install_package
log "ready: $VENV"
