"""ros/interrupts.py: after ignore_interrupts(), SIGINT no longer interrupts the process."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import os, signal, time
{setup}
os.kill(os.getpid(), signal.SIGINT)
time.sleep(0.1)
print("still running")
"""


def run(setup: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT.format(setup=setup)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_sigint_is_ignored_from_then_on() -> None:
    # the child as a terminal starts it: Ctrl-C raises KeyboardInterrupt
    default = "signal.signal(signal.SIGINT, signal.default_int_handler)"
    interrupted = run(default)
    assert interrupted.returncode != 0 and "KeyboardInterrupt" in interrupted.stderr
    ignore = "from yolo_trt_ros.ros.interrupts import ignore_interrupts\nignore_interrupts()"
    ignored = run(f"{default}\n{ignore}")
    assert ignored.returncode == 0 and ignored.stdout == "still running\n", ignored.stderr
