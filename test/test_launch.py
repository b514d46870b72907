"""launch/tracker.launch.py and config/tracker.rviz.

The syntax/argument/structure checks run everywhere (ast, no ``launch`` needed); the
launch-description tests need a real ROS 2 install with ``launch`` and ``launch_ros`` and skip
without them.
"""

from __future__ import annotations

import ast
import importlib.util
import py_compile
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from python_imports import top_level_imports

REPO = Path(__file__).resolve().parent.parent
LAUNCH_FILE = REPO / "launch" / "tracker.launch.py"
RVIZ_FILE = REPO / "config" / "tracker.rviz"
EXPECTED_ARGUMENTS = {
    "namespace": "",
    "model": None,  # required
    "params_file": "<package share>/config/tracker.yaml",
    "image_topic": "image_raw",
    "image_topics": "[]",
    "autostart": "true",
    "replay_source": "",
    "replay_loop": "true",
    "rviz": "false",
    "log_level": "info",
}


def _ast_arguments() -> dict[str, object]:
    """Name -> default of the ARGUMENTS table, read with ast (literal defaults only, others as a
    marker)."""
    tree = ast.parse(LAUNCH_FILE.read_text(), filename=str(LAUNCH_FILE))
    table = next(
        node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "ARGUMENTS" for t in node.targets)
    )
    assert isinstance(table, ast.Tuple)
    result: dict[str, object] = {}
    for row in table.elts:
        assert isinstance(row, ast.Tuple) and len(row.elts) == 3
        name, default, description = row.elts
        assert (
            isinstance(name, ast.Constant)
            and isinstance(description, ast.Constant)
            and description.value
        )
        result[name.value] = (
            default.value
            if isinstance(default, ast.Constant)
            else "<package share>/config/tracker.yaml"
        )
    return result


def test_launch_file_compiles_and_declares_arguments(tmp_path: Path) -> None:
    py_compile.compile(str(LAUNCH_FILE), cfile=str(tmp_path / "launch.pyc"), doraise=True)
    assert _ast_arguments() == EXPECTED_ARGUMENTS
    tree = ast.parse(LAUNCH_FILE.read_text())
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in functions
    assert top_level_imports(tree) <= {
        "launch",
        "launch_ros",
        "lifecycle_msgs",
        "ament_index_python",
    }  # standard ROS 2 only
    source = LAUNCH_FILE.read_text()
    for executable in ('"yolo_tracker"', '"image_replay"', '"rviz2"'):
        assert f"executable={executable}" in source


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name
    ]


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def test_autostart_handler_fires_once_ast() -> None:
    """A handler left registered would activate after every later (user) configure; its own
    activate then fails."""
    tree = ast.parse(LAUNCH_FILE.read_text())
    handlers = _calls(tree, "OnStateTransition")
    assert len(handlers) == 1
    handle_once = _keyword(handlers[0], "handle_once")
    assert isinstance(handle_once, ast.Constant) and handle_once.value is True, (
        "OnStateTransition needs handle_once=True"
    )


def test_rviz_started_only_through_availability_check_ast() -> None:
    """rviz:=true without rviz2 installed must warn, not abort the launch: rviz2 goes through a
    package lookup."""
    tree = ast.parse(LAUNCH_FILE.read_text())
    rviz_calls = [
        c
        for c in _calls(tree, "Node")
        if isinstance(_keyword(c, "executable"), ast.Constant)
        and _keyword(c, "executable").value == "rviz2"
    ]
    assert len(rviz_calls) == 1
    assignment = next(
        n for n in ast.walk(tree) if isinstance(n, ast.Assign) and n.value is rviz_calls[0]
    )
    (target,) = assignment.targets
    assert isinstance(target, ast.Name)
    rviz_name = target.id
    # not handed to the LaunchDescription directly ...
    (description,) = _calls(tree, "LaunchDescription")
    listed = {n.id for n in ast.walk(description) if isinstance(n, ast.Name)}
    assert rviz_name not in listed, (
        "rviz2 is started unconditionally (no rviz2 availability check)"
    )
    # ... but through an OpaqueFunction, conditional on the rviz argument, whose function looks the
    # package up
    opaque = [
        c
        for c in _calls(tree, "OpaqueFunction")
        if any(
            isinstance(n, ast.Name) and n.id == rviz_name
            for a in c.args + [k.value for k in c.keywords]
            for n in ast.walk(a)
        )
    ]
    assert len(opaque) == 1, (
        "rviz2 must be started through an OpaqueFunction that checks the package"
    )
    assert isinstance(_keyword(opaque[0], "condition"), ast.Call)
    function = _keyword(opaque[0], "function")
    assert isinstance(function, ast.Name)
    check = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function.id)
    lookups = {
        n.func.id
        for n in ast.walk(check)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }
    assert lookups & {"get_package_prefix", "get_package_share_directory"}
    handlers = [h for t in ast.walk(check) if isinstance(t, ast.Try) for h in t.handlers]
    assert any(
        isinstance(h.type, ast.Name) and h.type.id == "PackageNotFoundError" for h in handlers
    )
    assert _calls(check, "LogInfo"), "a missing rviz2 must be logged"


def test_rviz_config_shows_annotated_image() -> None:
    config = yaml.safe_load(RVIZ_FILE.read_text())
    manager = config["Visualization Manager"]
    images = [d for d in manager["Displays"] if d["Class"] == "rviz_default_plugins/Image"]
    assert len(images) == 1 and images[0]["Enabled"] is True
    topic = images[0]["Topic"]
    assert (
        topic["Value"] == "annotated_image"
    )  # relative: follows the namespace rviz2 is launched in
    # Best effort subscribes to reliable and best-effort publishers alike (no silent QoS mismatch).
    assert topic["Reliability Policy"] == "Best Effort"
    assert {p["Class"] for p in config["Panels"]} >= {"rviz_common/Displays"}
    assert images[0]["Name"] in config["Window Geometry"]


def _load_launch_module():
    # submodules: the repo's own launch/ folder would satisfy a bare ``import launch`` as a
    # namespace package
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
    from launch.actions import (
        DeclareLaunchArgument,
        EmitEvent,
        GroupAction,
        OpaqueFunction,
        RegisterEventHandler,
    )
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
    assert len(nodes) == 1  # image_replay; rviz2 goes through its availability check
    (rviz,) = [e for e in entities if isinstance(e, OpaqueFunction)]
    autostart = next(e for e in entities if isinstance(e, GroupAction))
    grouped = [
        e for e in autostart.get_sub_entities() if isinstance(e, (EmitEvent, RegisterEventHandler))
    ]
    assert [type(e) for e in grouped] == [
        EmitEvent,
        RegisterEventHandler,
    ]  # configure, then activate on inactive

    # autostart and the optional nodes are conditional on the arguments
    (replay,) = nodes
    context.launch_configurations.update(
        {"replay_source": "", "rviz": "false", "autostart": "false"}
    )
    assert not replay.condition.evaluate(context) and not rviz.condition.evaluate(context)
    context.launch_configurations.update(
        {"replay_source": "/data/video.mp4", "rviz": "true", "autostart": "true"}
    )
    assert replay.condition.evaluate(context) and rviz.condition.evaluate(context)
    assert autostart.condition.evaluate(context)
    context.launch_configurations["autostart"] = "false"
    assert not autostart.condition.evaluate(context)


def _description_parts(module):
    from launch.actions import GroupAction, OpaqueFunction, RegisterEventHandler

    entities = module.generate_launch_description().entities
    autostart = next(e for e in entities if isinstance(e, GroupAction))
    (register,) = [e for e in autostart.get_sub_entities() if isinstance(e, RegisterEventHandler)]
    (rviz,) = [e for e in entities if isinstance(e, OpaqueFunction)]
    return register.event_handler, rviz


def test_autostart_handler_is_one_shot_on_a_real_install() -> None:
    module = _load_launch_module()
    from launch import LaunchContext
    from launch.actions import EmitEvent, LogInfo
    from launch_ros.event_handlers import OnStateTransition

    handler, _ = _description_parts(module)
    assert isinstance(handler, OnStateTransition)
    assert handler.handle_once is True  # unregistered after the first configure's outcome
    (decide,) = handler.entities
    # configure succeeded (configuring -> inactive): activate; failed (-> unconfigured): nothing to
    # activate
    for goal_state, expected in (("inactive", EmitEvent), ("unconfigured", LogInfo)):
        context = LaunchContext()
        context.extend_locals({"event": SimpleNamespace(goal_state=goal_state)})
        actions = decide.execute(context)
        assert [type(a) for a in actions] == [expected], goal_state


def test_rviz_without_rviz2_warns_on_a_real_install(monkeypatch: pytest.MonkeyPatch) -> None:
    module = _load_launch_module()
    from ament_index_python.packages import PackageNotFoundError
    from launch import LaunchContext
    from launch.actions import LogInfo
    from launch_ros.actions import Node

    _, rviz = _description_parts(module)
    context = LaunchContext()
    context.launch_configurations["rviz"] = "false"
    assert not rviz.condition.evaluate(context)
    context.launch_configurations["rviz"] = "true"
    assert rviz.condition.evaluate(context)

    def missing(name: str) -> str:
        raise PackageNotFoundError(f"package '{name}' not found")

    monkeypatch.setattr(module, "get_package_prefix", missing)
    (warning,) = rviz.execute(context)
    assert isinstance(warning, LogInfo) and not isinstance(warning, Node)
    text = "".join(s.perform(context) for s in warning.msg)
    assert "rviz2" in text and "not installed" in text

    monkeypatch.setattr(module, "get_package_prefix", lambda name: "/opt/ros/humble")
    (node,) = rviz.execute(context)
    assert isinstance(node, Node) and node.node_executable == "rviz2"
