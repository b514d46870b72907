"""The ``yolo-trt-ros demo`` (``make demo``): replay -> tracker -> recorder over real ROS 2 topics.

Two child processes, ``image_replay`` and ``yolo_tracker``, in the namespace ``--namespace``; this
process drives the tracker's lifecycle (configure, activate) through its change_state service and
records what it publishes (see recorder.py). With ``topic`` set, the user's camera topic replaces
the replay. Children inherit ``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA`` unless it is already set
(FastDDS's default transports drop most best-effort camera frames between processes); every child
is stopped with SIGINT, then SIGKILL after a timeout, also on Ctrl-C. Child logs go to
``out/<node>.log``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yolo_trt_ros.demo.processes import (
    FASTDDS_TRANSPORTS,
    FASTDDS_TRANSPORTS_ENV,
    ros_env,
    start_node,
    stop_process,
)
from yolo_trt_ros.sources import open_source

SERVICE_TIMEOUT_S = 30.0
DUPLICATE_WAIT_S = 5.0
CONFIGURE_TIMEOUT_S = 120.0
DRAIN_S = 2.0
TOPIC_MODE_VIDEO_FPS = 30.0
PROGRESS_PERIOD_S = 10.0


class DemoError(RuntimeError):
    """The demo could not run; the message says which step failed and where its log is."""


@dataclass
class DemoOptions:
    model: Path
    source: Path | None
    topic: str | None
    out: Path
    max_frames: int = 0
    rate: float = 0.0
    duration: float = 0.0
    namespace: str = "yolo_demo"
    conf: float = 0.25


def run(options: DemoOptions) -> int:
    """Run the demo, print its summary and where the files are; 0 on success, 130 when
    interrupted."""
    if not options.model.is_file():
        raise DemoError(f"model {options.model}: no such file")
    source = (
        open_source(options.source, options.rate or None) if options.source is not None else None
    )
    options.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault(
        FASTDDS_TRANSPORTS_ENV, FASTDDS_TRANSPORTS
    )  # for this process's recorder too
    demo = _Demo(options, source.fps if source else TOPIC_MODE_VIDEO_FPS)
    if source:
        print(
            f"demo: replaying {source.description}"
            f"{f', first {options.max_frames} frames' if options.max_frames else ''}"
        )
    else:
        print(f"demo: reading camera topic {demo.input_topic}")
    interrupted = False
    try:
        with _terminate_as_interrupt():
            demo.start()
            demo.wait()
    except KeyboardInterrupt:
        interrupted = True
        print("demo: interrupted, stopping the nodes")
    finally:
        previous = signal.signal(
            signal.SIGINT, signal.SIG_IGN
        )  # a second Ctrl-C must not orphan the children
        try:
            summary = demo.stop()
        finally:
            signal.signal(signal.SIGINT, previous)
    _report(summary, options.out)
    return 130 if interrupted else 0


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGINT (Ctrl-C), SIGTERM and SIGHUP stop the demo (children are in their own session).
    SIGINT too: a process started in the background of a shell inherits it ignored."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, interrupt) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class _Demo:
    def __init__(self, options: DemoOptions, video_fps: float) -> None:
        self.options = options
        self.namespace = "/" + options.namespace.strip("/")
        topic = options.topic or f"{self.namespace}/image_raw"
        self.input_topic = topic if topic.startswith("/") else "/" + topic
        self.video_fps = video_fps
        self.env = ros_env()
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.started = time.monotonic()
        self.recorder: Any = None
        self.executor: Any = None
        self.context: Any = None

    def log(self, name: str) -> Path:
        return self.options.out / f"{name}.log"

    def _start_child(self, name: str, module: str, ros_args: list[str]) -> None:
        self.children[name] = start_node(
            module,
            ["-r", f"__ns:={self.namespace}", *ros_args],
            self.env,
            self.log(name),
            new_session=True,
        )

    def _check_alive(self, name: str) -> None:
        proc = self.children[name]
        if proc.poll() is not None:
            raise DemoError(
                f"{name} exited with status {proc.returncode}: {_tail(self.log(name))}"
            )

    def _check_unique(self, client: Any, wait_s: float = 0.0) -> None:
        """Fail when a second yolo_tracker of the same name is on the graph (another demo in this
        namespace).

        Discovery can take seconds on a loaded machine: after a failed transition, look for
        ``wait_s``.
        """
        deadline = time.monotonic() + wait_s
        while client.get_node_names_and_namespaces().count(("yolo_tracker", self.namespace)) < 2:
            if time.monotonic() >= deadline:
                return
            time.sleep(0.2)
        raise DemoError(
            f"another yolo_tracker runs as {self.namespace}/yolo_tracker on ROS_DOMAIN_ID "
            f"{self.env.get('ROS_DOMAIN_ID', '0')}: stop it, or pass another --namespace"
        )

    def start(self) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.signals import SignalHandlerOptions

        from yolo_trt_ros.demo.recorder import Recorder
        from yolo_trt_ros.ros.lifecycle_client import LifecycleClient, LifecycleError

        o = self.options
        self.context = rclpy.Context()
        rclpy.init(
            context=self.context, signal_handler_options=SignalHandlerOptions.NO
        )  # Ctrl-C is ours
        self.recorder = Recorder(
            o.out, self.input_topic, self.video_fps, namespace=self.namespace, context=self.context
        )
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.recorder)
        client = LifecycleClient(
            f"{self.namespace}/yolo_tracker", node_name="yolo_demo_lifecycle", context=self.context
        )
        try:
            self._start_child(
                "yolo_tracker",
                "yolo_trt_ros.ros.tracker_node",
                [
                    "-p",
                    f"model_path:={o.model.resolve()}",
                    "-p",
                    f"input_topic:={self.input_topic}",
                    "-p",
                    f"conf_threshold:={float(o.conf)}",
                    # The replayed frames are stamped at the replay rate: the tracker's nominal
                    # frame rate.
                    "-p",
                    f"frame_rate:={float(o.rate or self.video_fps)}",
                ],
            )
            if not client.wait_for_services(SERVICE_TIMEOUT_S):
                self._check_alive("yolo_tracker")
                raise DemoError(
                    "yolo_tracker lifecycle services did not appear within "
                    f"{SERVICE_TIMEOUT_S:.0f} s"
                )
            for transition, timeout in (
                ("configure", CONFIGURE_TIMEOUT_S),
                ("activate", SERVICE_TIMEOUT_S),
            ):
                if not client.change_state(transition, timeout):
                    self._check_unique(client, wait_s=DUPLICATE_WAIT_S)
                    raise DemoError(
                        f"yolo_tracker: {transition} failed: {_tail(self.log('yolo_tracker'))}"
                    )
            self._check_unique(client)
            print(f"demo: yolo_tracker is {client.get_state()} (model {o.model})")
        except LifecycleError as exc:
            raise DemoError(f"yolo_tracker: {exc}: {_tail(self.log('yolo_tracker'))}") from exc
        finally:
            client.destroy_node()
        if o.source is not None:
            # Publish only once the tracker and the recorder are matched (best effort may still
            # miss the first frames while the subscribers' side of discovery completes).
            self._start_child(
                "image_replay",
                "yolo_trt_ros.ros.replay_node",
                [
                    "-p",
                    f"source:={o.source.resolve()}",
                    "-p",
                    f"rate:={float(o.rate)}",
                    "-p",
                    f"max_frames:={o.max_frames}",
                    "-p",
                    "wait_for_subscribers:=2",
                ],
            )

    def wait(self) -> None:
        """Spin the recorder until the replay ends (then drain), or --duration / --max-frames /
        Ctrl-C live."""
        o = self.options
        replay = self.children.get("image_replay")
        next_progress = time.monotonic() + PROGRESS_PERIOD_S
        drain_since: float | None = None
        last_out = -1
        while True:
            self.executor.spin_once(timeout_sec=0.05)
            now = time.monotonic()
            self._check_alive("yolo_tracker")
            if replay is not None and replay.poll() is not None:
                if replay.returncode != 0:
                    raise DemoError(
                        f"image_replay exited with status {replay.returncode}: "
                        f"{_tail(self.log('image_replay'))}"
                    )
                if (
                    self.recorder.frames_out != last_out
                ):  # still arriving: wait until quiet for DRAIN_S
                    last_out, drain_since = self.recorder.frames_out, now
                elif drain_since is not None and now - drain_since >= DRAIN_S:
                    return
            if replay is None and (
                (o.duration and now - self.started >= o.duration)
                or (o.max_frames and self.recorder.frames_out >= o.max_frames)
            ):
                return
            if now >= next_progress:
                next_progress = now + PROGRESS_PERIOD_S
                r = self.recorder
                print(
                    f"demo: {now - self.started:5.0f} s: {r.frames_in} frames in, {r.frames_out} "
                    "out, "
                    f"{sum(r.per_class.values())} detections"
                )

    def stop(self) -> dict[str, Any]:
        """Stop children (replay first), close the recorder, and return the summary."""
        import rclpy

        codes = {name: stop_process(proc) for name, proc in reversed(list(self.children.items()))}
        summary: dict[str, Any] = {
            "mode": "topic" if self.options.topic else "replay",
            "source": str(self.options.source) if self.options.source else None,
            "input_topic": self.input_topic,
            "model": str(self.options.model),
            "frames_published": _published(self.log("image_replay")),
        }
        if self.recorder is not None:
            self.executor.shutdown()
            self.recorder.close()
            summary.update(self.recorder.summary())
            self.recorder.destroy_node()
        if self.context is not None:
            rclpy.try_shutdown(context=self.context)
        summary.update(
            {
                "wall_time_s": round(time.monotonic() - self.started, 1),
                "exit_codes": codes,
                FASTDDS_TRANSPORTS_ENV: self.env.get(FASTDDS_TRANSPORTS_ENV),
                "ros_domain_id": int(self.env.get("ROS_DOMAIN_ID", "0") or 0),
            }
        )
        return summary


def _published(log: Path) -> int | None:
    """Frames image_replay says it published (its last log line), None without a replay."""
    match = (
        re.search(r"published (\d+) frames", log.read_text(errors="replace"))
        if log.is_file()
        else None
    )
    return int(match.group(1)) if match else None


def _tail(log: Path, lines: int = 5) -> str:
    text = log.read_text(errors="replace").strip().splitlines() if log.is_file() else []
    return f"see {log}" + ("; last lines:\n  " + "\n  ".join(text[-lines:]) if text else "")


def _report(summary: dict[str, Any], out: Path) -> None:
    files = {
        "video": out / "annotated.mp4",
        "detections": out / "detections.jsonl",
        "summary": out / "summary.json",
        "logs": out,
    }
    summary["files"] = {k: str(v) for k, v in files.items()}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    lat = summary.get("latency_ms", {})
    published = summary["frames_published"]
    per_class = (
        ", ".join(f"{n} {c}" for n, c in list(summary.get("per_class", {}).items())[:5]) or "none"
    )
    print("\ndemo summary")
    print(
        f"  frames in      {published if published is not None else '-'} published, "
        f"{summary.get('frames_in', 0)} seen on {summary['input_topic']}"
    )
    skipped = summary.get("frames_in", 0) - summary.get("frames_out", 0)
    print(
        f"  frames out     {summary.get('frames_out', 0)} Detection2DArray, "
        f"{summary.get('annotated_frames', 0)} annotated images"
        + (
            f" ({skipped} frames skipped: the tracker keeps only the newest frame while busy)"
            if skipped > 0
            else ""
        )
    )
    print(f"  detections     {summary.get('detections', 0)} ({per_class})")
    print(f"  tracks         {summary.get('distinct_track_ids', 0)} distinct IDs")
    print(f"  rate           {summary.get('fps')} fps out")
    print(
        f"  latency        p50 {lat.get('p50')} ms, p99 {lat.get('p99')} ms (header stamp -> "
        "received here)"
    )
    print(f"  wall time      {summary['wall_time_s']} s")
    print("files")
    for name, path in files.items():
        print(f"  {name:<12}{path}")
