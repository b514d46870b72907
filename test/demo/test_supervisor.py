"""The demo supervisor: its per-camera summary lines (no processes), and a replay started again
when its frames never arrive (real processes, in-process supervisor)."""

from __future__ import annotations

import json
import os
import signal
import threading
import zlib
from pathlib import Path
from typing import Any

import pytest

from ros_processes import kill_processes_with
from yolo_trt_ros.demo import processes, supervisor
from yolo_trt_ros.demo.supervisor import _print_camera

DOMAIN_ID = 1 + zlib.crc32(Path(__file__).name.encode()) % 200


def _camera(published: int | None, seen: int, out: int) -> dict[str, Any]:
    return {
        "frames_published": published,
        "input_topic": "/cam/image_raw",
        "frames_in": seen,
        "frames_out": out,
        "annotated_frames": out,
    }


@pytest.mark.parametrize(
    ("published", "seen", "out", "skipped"),
    [
        (15, 14, 15, None),  # the recorder missed a frame the tracker answered
        (15, 15, 12, 3),
        (15, 14, 12, 3),  # skipped frames count from what was published
        (None, 20, 18, 2),  # a live topic: from what the recorder saw
        (None, 20, 20, None),
    ],
)
def test_skipped_frames_count_from_the_published_frames(
    capsys: pytest.CaptureFixture[str],
    published: int | None,
    seen: int,
    out: int,
    skipped: int | None,
) -> None:
    _print_camera(_camera(published, seen, out), "  ")
    text = capsys.readouterr().out
    assert f"frames out     {out} Detection2DArray" in text
    if skipped is None:
        assert "skipped" not in text
    else:
        assert f"({skipped} frames skipped:" in text


@pytest.mark.ros
def test_a_replay_whose_frames_never_arrive_is_started_again(
    model_path: Path,
    mot_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The first image_replay waits for more subscribers than there are, as one does when Fast
    DDS discovery stalls; the demo starts it again, and the new one publishes every frame."""
    monkeypatch.setenv("ROS_DOMAIN_ID", str(DOMAIN_ID))
    monkeypatch.setattr(supervisor, "REPLAY_STALL_S", 8.0)  # a new replay's frames arrive in ~2 s
    replays: list[list[str]] = []

    def start_node(module: str, ros_args: list[str], *args: Any, **kwargs: Any) -> Any:
        if module.endswith("replay_node"):
            replays.append(list(ros_args))
            if len(replays) == 1:
                ros_args = [*ros_args, "-p", "wait_for_subscribers:=5"]
        return processes.start_node(module, ros_args, *args, **kwargs)

    monkeypatch.setattr(supervisor, "start_node", start_node)
    out = tmp_path / "out"
    options = supervisor.DemoOptions(
        model=model_path,
        sources=[mot_dir],
        topic=None,
        out=out,
        max_frames=20,
        rate=10.0,
        namespace=f"supervisor_test_{os.getpid()}",
    )
    # without the restart the demo would wait forever: SIGTERM (the demo's Ctrl-C) after 120 s
    watchdog = threading.Timer(120.0, os.kill, (os.getpid(), signal.SIGTERM))
    watchdog.start()
    try:
        code = supervisor.run(options)
    finally:
        watchdog.cancel()
        kill_processes_with(options.namespace)
    assert code == 0
    text = capsys.readouterr().out
    assert "image_replay: none of its frames arrived within 8 s" in text, text
    assert "starting it again" in text and len(replays) >= 2 and replays[0] == replays[-1]
    summary = json.loads((out / "summary.json").read_text())
    # every frame published once both subscribers matched; best effort may lose the first ones
    # while their side of the match completes, so only some need to arrive
    assert summary["frames_published"] == 20 and summary["frames_in"] > 0, summary
    assert summary["exit_codes"]["image_replay"] == 0
