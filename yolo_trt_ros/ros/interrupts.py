"""Ctrl-C handling shared by the package's node executables."""

from __future__ import annotations

import signal


def ignore_interrupts() -> None:
    """Ignore SIGINT from now on: for a node executable that has begun to shut down.

    Ctrl-C in the terminal of ``ros2 launch`` reaches each node twice (from the terminal, then
    forwarded by launch), and rclpy hands each one on to Python as a KeyboardInterrupt. The
    second would cut the node's cleanup short (threads, DDS entities) and end the process as
    killed by SIGINT, which launch reports as "process has died".
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
