"""The ``yolo-trt-ros demo`` (``make demo``): replay -> tracker -> recorder over real ROS 2 topics.

Two child processes, ``image_replay`` and ``yolo_tracker``, in the namespace ``--namespace``; this
process drives the tracker's lifecycle (configure, activate) through its change_state service and
records what it publishes (see recorder.py). With ``topic`` set, the user's camera topic replaces
the replay. With several sources (``make demo-cameras``), each is a camera (``cam0``, ``cam1``,
... or ``camera_names``) replayed by its own ``image_replay`` in ``<namespace>/<camera>`` on
``<camera>/image_raw``, one of them (``compressed_camera``, default the last) as JPEG
sensor_msgs/CompressedImage on ``<camera>/image_raw/compressed``; one ``yolo_tracker`` serves them
all (``input_topics``, ``camera_names``) and a recorder per camera writes ``out/<camera>/``.
Children inherit ``FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA`` unless it is already set
(FastDDS's default transports drop most best-effort camera frames between processes); every child
is stopped with SIGINT, then SIGKILL after a timeout, also on Ctrl-C. Child logs go to
``out/<node>.log`` (a camera's replay: ``out/<camera>/image_replay.log``). A replay none of whose
frames arrives is started again (``REPLAY_STALL_S``).
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from yolo_trt_ros.demo.processes import (
    FASTDDS_TRANSPORTS,
    FASTDDS_TRANSPORTS_ENV,
    ros_env,
    start_node,
    stop_process,
)
from yolo_trt_ros.sources import FrameSource, open_source

SERVICE_TIMEOUT_S = 30.0
DUPLICATE_WAIT_S = 5.0
CONFIGURE_TIMEOUT_S = 120.0
DRAIN_S = 2.0
TOPIC_MODE_VIDEO_FPS = 30.0
PROGRESS_PERIOD_S = 10.0
REPLAY_STALL_S = 20.0
"""A replay of whose frames nothing has arrived this long after it started is started again: Fast
DDS discovery between two processes can stall for good, and the replay then waits for its
subscribers forever; a new process is discovered afresh."""
REPLAY_RESTARTS = 2
"""Restarts of one replay before the demo gives up with a DemoError."""
CAMERA_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
"""A camera name: one ROS name token (it becomes a namespace and a folder)."""


class DemoError(RuntimeError):
    """The demo could not run; the message says which step failed and where its log is."""


@dataclass
class DemoOptions:
    """``sources``: one (the single-camera demo), several (one camera each), or none with
    ``topic``. ``camera_names`` and ``compressed_camera`` apply to several sources."""

    model: Path
    sources: list[Path]
    topic: str | None
    out: Path
    max_frames: int = 0
    rate: float = 0.0
    duration: float = 0.0
    namespace: str = "yolo_demo"
    conf: float = 0.25
    camera_names: list[str] = field(default_factory=list)
    compressed_camera: str | None = None


@dataclass
class _Camera:
    """One camera of the demo: its replayed source (None on a live topic), input topic, output
    folder and namespace (where the tracker publishes its detections and annotated images)."""

    name: str
    source: FrameSource | None
    path: Path | None
    topic: str
    out: Path
    namespace: str
    replay: str
    """The child key of its image_replay, also its log's name under the demo's out folder."""
    compressed: bool = False
    recorder: Any = None

    @property
    def fps(self) -> float:
        return self.source.fps if self.source is not None else TOPIC_MODE_VIDEO_FPS


def run(options: DemoOptions) -> int:
    """Run the demo, print its summary and where the files are; 0 on success, 130 when
    interrupted."""
    if not options.model.is_file():
        raise DemoError(f"model {options.model}: no such file")
    cameras = _cameras(options)
    for camera in cameras:
        camera.out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault(
        FASTDDS_TRANSPORTS_ENV, FASTDDS_TRANSPORTS
    )  # for this process's recorder too
    demo = _Demo(options, cameras)
    limit = f", first {options.max_frames} frames" if options.max_frames else ""
    for camera in cameras:
        if camera.source is None:
            print(f"demo: reading camera topic {camera.topic}")
        elif demo.several:
            print(
                f"demo: camera {camera.name} replays {camera.source.description}{limit} on "
                f"{camera.topic}"
            )
        else:
            print(f"demo: replaying {camera.source.description}{limit}")
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
    _report(summary, options.out, demo.several)
    return 130 if interrupted else 0


def _cameras(options: DemoOptions) -> list[_Camera]:
    """The cameras of ``options``; DemoError for names that do not fit the sources."""
    namespace = "/" + options.namespace.strip("/")
    sources = [open_source(path, options.rate or None) for path in options.sources]
    if len(sources) < 2:
        if options.camera_names or options.compressed_camera is not None:
            raise DemoError("camera names and a compressed camera need several sources")
        topic = options.topic or f"{namespace}/image_raw"
        return [
            _Camera(
                name="",
                source=sources[0] if sources else None,
                path=options.sources[0] if sources else None,
                topic=topic if topic.startswith("/") else "/" + topic,
                out=options.out,
                namespace=namespace,
                replay="image_replay",
            )
        ]
    names = options.camera_names or [f"cam{i}" for i in range(len(sources))]
    if len(names) != len(sources):
        raise DemoError(f"{len(names)} camera names for {len(sources)} sources: give one each")
    bad = [n for n in names if not CAMERA_NAME.fullmatch(n)]
    if bad or len(set(names)) != len(names):
        raise DemoError(
            f"camera names {names} must be distinct and each a letter followed by letters, "
            "digits or _"
        )
    compressed = names[-1] if options.compressed_camera is None else options.compressed_camera
    if compressed not in names:
        raise DemoError(f"compressed camera {compressed!r} is none of the cameras {names}")
    return [
        _Camera(
            name=name,
            source=source,
            path=path,
            topic=f"{namespace}/{name}/image_raw" + ("/compressed" if name == compressed else ""),
            compressed=name == compressed,
            out=options.out / name,
            namespace=f"{namespace}/{name}",
            replay=f"{name}/image_replay",
        )
        for name, source, path in zip(names, sources, options.sources, strict=True)
    ]


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
    def __init__(self, options: DemoOptions, cameras: list[_Camera]) -> None:
        self.options = options
        self.namespace = "/" + options.namespace.strip("/")
        self.cameras = cameras
        self.several = len(cameras) > 1
        self.env = ros_env()
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self._replay_started: dict[str, float] = {}
        self._replay_restarts: dict[str, int] = {}
        self.started = time.monotonic()
        self.executor: Any = None
        self.context: Any = None

    def log(self, name: str) -> Path:
        return self.options.out / f"{name}.log"

    def _start_child(
        self, name: str, module: str, ros_args: list[str], namespace: str | None = None
    ) -> None:
        self.children[name] = start_node(
            module,
            ["-r", f"__ns:={namespace or self.namespace}", *ros_args],
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

    def _camera_parameters(self) -> list[str]:
        """The tracker's input parameters: ``input_topic``, or with several cameras
        ``input_topics`` and ``camera_names``."""
        if not self.several:
            return ["-p", f"input_topic:={self.cameras[0].topic}"]
        topics = ", ".join(f"'{c.topic}'" for c in self.cameras)
        names = ", ".join(f"'{c.name}'" for c in self.cameras)
        return ["-p", f"input_topics:=[{topics}]", "-p", f"camera_names:=[{names}]"]

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
        self.executor = SingleThreadedExecutor(context=self.context)
        for camera in self.cameras:
            camera.recorder = Recorder(
                camera.out,
                camera.topic,
                camera.fps,
                namespace=camera.namespace,
                context=self.context,
            )
            self.executor.add_node(camera.recorder)
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
                    *self._camera_parameters(),
                    "-p",
                    f"conf_threshold:={float(o.conf)}",
                    # The replayed frames are stamped at the replay rate: the tracker's nominal
                    # frame rate.
                    "-p",
                    f"frame_rate:={float(o.rate or max(c.fps for c in self.cameras))}",
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
        for camera in self.cameras:
            if camera.path is not None:
                self._start_replay(camera)

    def _start_replay(self, camera: _Camera) -> None:
        assert camera.path is not None
        # Publish only once the tracker and the recorder are matched (best effort may still miss
        # the first frames while the subscribers' side of discovery completes).
        self._start_child(
            camera.replay,
            "yolo_trt_ros.ros.replay_node",
            [
                "-p",
                f"source:={camera.path.resolve()}",
                "-p",
                f"rate:={float(self.options.rate)}",
                "-p",
                f"max_frames:={self.options.max_frames}",
                "-p",
                "wait_for_subscribers:=2",
                *(
                    ["-p", f"frame_id:={camera.name}", "-r", f"image_raw:={camera.topic}"]
                    if self.several
                    else []
                ),
            ],
            camera.namespace,
        )
        self._replay_started[camera.replay] = time.monotonic()

    def _restart_if_stalled(self, camera: _Camera, now: float) -> None:
        """Start the camera's replay again when it runs but none of its frames has arrived
        ``REPLAY_STALL_S`` after its start; DemoError after ``REPLAY_RESTARTS`` restarts."""
        name = camera.replay
        if (
            self.children[name].poll() is not None
            or camera.recorder.frames_in
            or now - self._replay_started[name] < REPLAY_STALL_S
        ):
            return
        restarts = self._replay_restarts.get(name, 0)
        if restarts >= REPLAY_RESTARTS:
            raise DemoError(
                f"{name}: started {restarts + 1} times, none of its frames arrived within "
                f"{REPLAY_STALL_S:g} s (it never matched its subscribers over DDS): "
                f"{_tail(self.log(name))}"
            )
        print(
            f"demo: {name}: none of its frames arrived within {REPLAY_STALL_S:g} s (DDS "
            "discovery between the processes stalled); starting it again"
        )
        self._replay_restarts[name] = restarts + 1
        stop_process(self.children[name])
        self._start_replay(camera)

    def _frames_out(self) -> int:
        return sum(c.recorder.frames_out for c in self.cameras)

    def wait(self) -> None:
        """Spin the recorders until every replay ends (then drain), or --duration / --max-frames
        / Ctrl-C live."""
        o = self.options
        replays = [c.replay for c in self.cameras if c.replay in self.children]
        next_progress = time.monotonic() + PROGRESS_PERIOD_S
        drain_since: float | None = None
        last_out = -1
        while True:
            self.executor.spin_once(timeout_sec=0.05)
            now = time.monotonic()
            self._check_alive("yolo_tracker")
            for camera in self.cameras:
                if camera.replay in replays:
                    self._restart_if_stalled(camera, now)
            for name in replays:
                code = self.children[name].poll()
                if code is not None and code != 0:
                    raise DemoError(f"{name} exited with status {code}: {_tail(self.log(name))}")
            if replays and all(self.children[name].poll() is not None for name in replays):
                frames_out = self._frames_out()
                if frames_out != last_out:  # still arriving: wait until quiet for DRAIN_S
                    last_out, drain_since = frames_out, now
                elif drain_since is not None and now - drain_since >= DRAIN_S:
                    return
            if not replays and (
                (o.duration and now - self.started >= o.duration)
                or (o.max_frames and self._frames_out() >= o.max_frames)
            ):
                return
            if now >= next_progress:
                next_progress = now + PROGRESS_PERIOD_S
                recorders = [c.recorder for c in self.cameras]
                print(
                    f"demo: {now - self.started:5.0f} s: "
                    f"{sum(r.frames_in for r in recorders)} frames in, {self._frames_out()} out, "
                    f"{sum(sum(r.per_class.values()) for r in recorders)} detections"
                )

    def _camera_summary(self, camera: _Camera) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "source": str(camera.path) if camera.path else None,
            "input_topic": camera.topic,
            "frames_published": _published(self.log(camera.replay)),
        }
        if camera.recorder is not None:
            camera.recorder.close()
            summary.update(camera.recorder.summary())
            camera.recorder.destroy_node()
        return summary

    def stop(self) -> dict[str, Any]:
        """Stop children (replays first), close the recorders, and return the summary."""
        import rclpy

        codes = {name: stop_process(proc) for name, proc in reversed(list(self.children.items()))}
        if self.executor is not None:
            self.executor.shutdown()
        mode = "topic" if self.options.topic else "replay"
        model = str(self.options.model)
        summary: dict[str, Any]
        if self.several:
            summary = {"mode": mode, "model": model, "cameras": {}}
            for c in self.cameras:
                summary["cameras"][c.name] = {
                    "compressed": c.compressed,
                    **self._camera_summary(c),
                    "files": {k: str(v) for k, v in _camera_files(c.out).items()},
                }
        else:
            camera = self._camera_summary(self.cameras[0])
            summary = {
                "mode": mode,
                "source": camera.pop("source"),
                "input_topic": camera.pop("input_topic"),
                "model": model,
                **camera,
            }
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


def _camera_files(out: Path) -> dict[str, Path]:
    from yolo_trt_ros.demo.recorder import DETECTIONS_NAME, VIDEO_NAME

    return {"video": out / VIDEO_NAME, "detections": out / DETECTIONS_NAME}


def _report(summary: dict[str, Any], out: Path, several: bool) -> None:
    """Write ``out/summary.json`` and print the summary: with several cameras, a section each."""
    files = {
        **({} if several else _camera_files(out)),
        "summary": out / "summary.json",
        "logs": out,
    }
    summary["files"] = {k: str(v) for k, v in files.items()}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    if several:
        print(f"\ndemo summary: {len(summary['cameras'])} cameras, one yolo_tracker")
        for name, camera in summary["cameras"].items():
            kind = "CompressedImage (JPEG)" if camera["compressed"] else "Image"
            print(f"  camera {name}: {camera['source']}, {kind}")
            _print_camera(camera, "    ")
            print(f"    files          {', '.join(camera['files'].values())}")
    else:
        print("\ndemo summary")
        _print_camera(summary, "  ")
    print(f"  wall time      {summary['wall_time_s']} s")
    print("files")
    for name, path in files.items():
        print(f"  {name:<12}{path}")


def _print_camera(summary: dict[str, Any], indent: str) -> None:
    """The lines of one camera: frames in and out, detections, tracks, rate, latency."""
    lat = summary.get("latency_ms", {})
    published = summary["frames_published"]
    per_class = (
        ", ".join(f"{n} {c}" for n, c in list(summary.get("per_class", {}).items())[:5]) or "none"
    )
    print(
        f"{indent}frames in      {published if published is not None else '-'} published, "
        f"{summary.get('frames_in', 0)} seen on {summary['input_topic']}"
    )
    # the recorder is one more subscriber of the input topic and can miss a frame the tracker got
    answered_from = published if published is not None else summary.get("frames_in", 0)
    skipped = answered_from - summary.get("frames_out", 0)
    print(
        f"{indent}frames out     {summary.get('frames_out', 0)} Detection2DArray, "
        f"{summary.get('annotated_frames', 0)} annotated images"
        + (
            f" ({skipped} frames skipped: the tracker keeps only the newest frame while busy)"
            if skipped > 0
            else ""
        )
    )
    print(f"{indent}detections     {summary.get('detections', 0)} ({per_class})")
    print(f"{indent}tracks         {summary.get('distinct_track_ids', 0)} distinct IDs")
    print(f"{indent}rate           {summary.get('fps')} fps out")
    print(
        f"{indent}latency        p50 {lat.get('p50')} ms, p99 {lat.get('p99')} ms (header stamp "
        "-> received here)"
    )
