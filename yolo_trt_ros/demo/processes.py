"""Child ROS processes for the demo (and tests): environment, start, and a stop that cannot
hang."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

# FastDDS's default transports lose most best-effort camera frames between processes on one host;
# LARGE_DATA (TCP + shared memory) delivers them.
FASTDDS_TRANSPORTS_ENV = "FASTDDS_BUILTIN_TRANSPORTS"
FASTDDS_TRANSPORTS = "LARGE_DATA"


def ros_env(domain_id: int | None = None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``base`` (default: this process's environment) with LARGE_DATA unless the user
    chose otherwise.

    LD_LIBRARY_PATH and everything else are kept: the ROS wheels need it in every Python they
    start.
    """
    env = dict(os.environ if base is None else base)
    env.setdefault(FASTDDS_TRANSPORTS_ENV, FASTDDS_TRANSPORTS)
    env["PYTHONUNBUFFERED"] = "1"
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(domain_id)
    return env


def start_node(
    module: str,
    ros_args: Sequence[str],
    env: Mapping[str, str],
    log: Path | IO[bytes] | None = None,
    new_session: bool = False,
) -> subprocess.Popen[bytes]:
    """Run ``python -m <module> --ros-args <ros_args>`` with this interpreter; output to ``log`` if
    given.

    ``new_session``: the child does not get the terminal's Ctrl-C, so its parent decides when and
    in which order to stop it (the parent must then stop it on every exit path).
    """
    log_file = open(log, "wb") if isinstance(log, Path) else None  # noqa: SIM115 - the child keeps its own copy
    out = log if not isinstance(log, Path) else log_file
    try:
        return subprocess.Popen(
            [sys.executable, "-m", module, "--ros-args", *ros_args],
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT if out is not None else None,
            start_new_session=new_session,
        )
    finally:
        if log_file is not None:
            log_file.close()


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> int:
    """SIGINT (a clean ROS shutdown), then SIGKILL after ``timeout`` s: FastDDS can hang at
    exit."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
    return proc.returncode
