"""launch/tracker.launch.py and config/tracker.rviz.

The syntax/argument checks run everywhere (ast, no ``launch`` needed); the launch-description test needs a real
ROS 2 install with ``launch`` and ``launch_ros`` and skips without them.
"""

from __future__ import annotations

import ast
import importlib.util
import py_compile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
LAUNCH_FILE = REPO / "launch" / "tracker.launch.py"
RVIZ_FILE = REPO / "config" / "tracker.rviz"
EXPECTED_ARGUMENTS = {
    "namespace": "",
    "model": None,  # required
    "params_file": "<package share>/config/tracker.yaml",
    "image_topic": "image_raw",
    "autostart": "true",
    "replay_source": "",
    "replay_loop": "true",
    "rviz": "false",
    "log_level": "info",
}


def _ast_arguments() -> dict[str, object]:
    """Name -> default of the ARGUMENTS table, read with ast (literal defaults only, others as a marker)."""
    tree = ast.parse(LAUNCH_FILE.read_text(), filename=str(LAUNCH_FILE))
    table = next(
        node.value for node in tree.body
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "ARGUMENTS" for t in node.targets)
    )
    assert isinstance(table, ast.Tuple)
    result: dict[str, object] = {}
    for row in table.elts:
        assert isinstance(row, ast.Tuple) and len(row.elts) == 3
        name, default, description = row.elts
        assert isinstance(name, ast.Constant) and isinstance(description, ast.Constant) and description.value
        result[name.value] = default.value if isinstance(default, ast.Constant) else "<package share>/config/tracker.yaml"
    return result


def test_launch_file_compiles_and_declares_arguments(tmp_path: Path) -> None:
    py_compile.compile(str(LAUNCH_FILE), cfile=str(tmp_path / "launch.pyc"), doraise=True)
    assert _ast_arguments() == EXPECTED_ARGUMENTS
    tree = ast.parse(LAUNCH_FILE.read_text())
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in functions
    imported = {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= {"launch", "launch_ros", "lifecycle_msgs"}  # standard ROS 2 packages only
    source = LAUNCH_FILE.read_text()
    for executable in ('"yolo_tracker"', '"image_replay"', '"rviz2"'):
        assert f"executable={executable}" in source


def test_rviz_config_shows_annotated_image() -> None:
    config = yaml.safe_load(RVIZ_FILE.read_text())
    manager = config["Visualization Manager"]
    images = [d for d in manager["Displays"] if d["Class"] == "rviz_default_plugins/Image"]
    assert len(images) == 1 and images[0]["Enabled"] is True
    topic = images[0]["Topic"]
    assert topic["Value"] == "annotated_image"  # relative: follows the namespace rviz2 is launched in
    # Best effort subscribes to reliable and best-effort publishers alike (no silent QoS mismatch).
    assert topic["Reliability Policy"] == "Best Effort"
    assert {p["Class"] for p in config["Panels"]} >= {"rviz_common/Displays"}
    assert images[0]["Name"] in config["Window Geometry"]


def _load_launch_module():
    # submodules: the repo's own launch/ folder would satisfy a bare ``import launch`` as a namespace package
    pytest.importorskip("launch.actions")
    pytest.importorskip("launch_ros.actions")
    spec = importlib.util.spec_from_file_location("tracker_launch", LAUNCH_FILE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_launch_description_on_a_real_install() -> None:
    module = _load_launch_module()
    from launch import LaunchContext
    from launch.actions import DeclareLaunchArgument, EmitEvent, GroupAction, RegisterEventHandler
    from launch_ros.actions import LifecycleNode, Node

    description = module.generate_launch_description()
    arguments = {a.name: a for a in description.get_launch_arguments()}
    assert set(arguments) == set(EXPECTED_ARGUMENTS)
    context = LaunchContext()
    for name, expected in EXPECTED_ARGUMENTS.items():
        default = arguments[name].default_value
        if expected is None:
            assert default is None, f"{name} must be required"
        elif name != "params_file":  # needs the installed package to resolve
            assert "".join(s.perform(context) for s in default) == expected

    entities = description.entities
    assert sum(isinstance(e, DeclareLaunchArgument) for e in entities) == len(EXPECTED_ARGUMENTS)
    tracker = [e for e in entities if isinstance(e, LifecycleNode)]
    assert len(tracker) == 1
    nodes = [e for e in entities if isinstance(e, Node) and not isinstance(e, LifecycleNode)]
    assert len(nodes) == 2  # image_replay, rviz2
    autostart = next(e for e in entities if isinstance(e, GroupAction))
    grouped = [e for e in autostart.get_sub_entities() if isinstance(e, (EmitEvent, RegisterEventHandler))]
    assert [type(e) for e in grouped] == [EmitEvent, RegisterEventHandler]  # configure, then activate on inactive

    # autostart and the optional nodes are conditional on the arguments
    replay, rviz = nodes
    context.launch_configurations.update({"replay_source": "", "rviz": "false", "autostart": "false"})
    assert not replay.condition.evaluate(context) and not rviz.condition.evaluate(context)
    context.launch_configurations.update({"replay_source": "/data/video.mp4", "rviz": "true", "autostart": "true"})
    assert replay.condition.evaluate(context) and rviz.condition.evaluate(context)
    assert autostart.condition.evaluate(context)
    context.launch_configurations["autostart"] = "false"
    assert not autostart.condition.evaluate(context)
