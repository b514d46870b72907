"""Start the yolo_tracker lifecycle node (configured and activated by default), optionally a replay
and rviz2.

autostart configures and activates yolo_tracker once, at start; later lifecycle transitions are
left to the user (``ros2 lifecycle set /yolo_tracker cleanup`` / ``configure`` / ``activate``).
``rviz:=true`` without rviz2 installed logs a warning instead of aborting the launch.

    ros2 launch yolo_trt_ros tracker.launch.py model:=/path/yolov8n.onnx \
        image_topic:=/camera/image_raw
    ros2 launch yolo_trt_ros tracker.launch.py model:=/path/yolov8n.onnx \
        replay_source:=/path/video.mp4 rviz:=true
    ros2 launch yolo_trt_ros tracker.launch.py model:=/path/yolov8n-dynamic.onnx \
        image_topics:="['/front/image_raw', '/rear/image_raw/compressed']"

With ``image_topics`` one yolo_tracker serves several cameras (outputs ``<camera>/detections``,
``<camera>/annotated_image``; see the README).

On one machine with FastDDS, export FASTDDS_BUILTIN_TRANSPORTS=LARGE_DATA before launching: the
default transports drop most best-effort camera frames between processes.
"""

from ament_index_python.packages import PackageNotFoundError, get_package_prefix
from launch import Condition, LaunchContext, LaunchDescription
from launch.actions import (
    DeclareLaunchArgument,
    EmitEvent,
    GroupAction,
    LogInfo,
    OpaqueFunction,
    RegisterEventHandler,
)
from launch.conditions import IfCondition
from launch.events import matches_action
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import LifecycleNode, Node
from launch_ros.event_handlers import OnStateTransition
from launch_ros.events.lifecycle import ChangeState
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare
from lifecycle_msgs.msg import Transition

PACKAGE = "yolo_trt_ros"

ARGUMENTS = (
    ("namespace", "", "namespace of the nodes and their topics"),
    (
        "model",
        None,
        "model file for yolo_tracker (.onnx or TensorRT .engine; overrides model_path of "
        "params_file)",
    ),
    (
        "params_file",
        PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "tracker.yaml"]),
        "yolo_tracker parameters (YAML)",
    ),
    (
        "image_topic",
        "image_raw",
        "input sensor_msgs/Image topic (relative names are in the namespace)",
    ),
    (
        "image_topics",
        "[]",
        "several cameras in one yolo_tracker: a list of image topics (a topic ending in "
        "/compressed is a CompressedImage); [] = the one camera image_topic",
    ),
    ("autostart", "true", "configure, then activate yolo_tracker at start"),
    (
        "replay_source",
        "",
        "video, image folder or MOT sequence to publish on image_topic (empty: no replay)",
    ),
    ("replay_loop", "true", "loop the replay_source"),
    ("rviz", "false", "open rviz2 showing the annotated image"),
    ("log_level", "info", "log level of the nodes (debug, info, warn, error)"),
)


def _string(name: str) -> ParameterValue:
    """A launch argument as a string parameter (a path such as ``2024`` must not become an
    integer)."""
    return ParameterValue(LaunchConfiguration(name), value_type=str)


def _activate_if_configured(context: LaunchContext, tracker: LifecycleNode) -> list:
    """Activate after the first configure if it succeeded (configuring -> inactive); nothing if it
    failed."""
    if context.locals.event.goal_state != "inactive":
        return [
            LogInfo(
                msg="yolo_tracker: configure at start failed; not activating it (autostart is "
                "done)"
            )
        ]
    return [
        EmitEvent(
            event=ChangeState(
                lifecycle_node_matcher=matches_action(tracker),
                transition_id=Transition.TRANSITION_ACTIVATE,
            )
        )
    ]


def _rviz_if_installed(context: LaunchContext, rviz: Node) -> list:
    """rviz2 if its package is installed, else a warning (a missing package would abort the whole
    launch)."""
    try:
        get_package_prefix("rviz2")
    except PackageNotFoundError:
        return [
            LogInfo(
                msg="WARNING: rviz:=true but the rviz2 package is not installed "
                "(ros-$ROS_DISTRO-rviz2); "
                "not starting rviz2"
            )
        ]
    return [rviz]


def generate_launch_description() -> LaunchDescription:
    namespace = LaunchConfiguration("namespace")
    image_topic = LaunchConfiguration("image_topic")
    ros_args = ["--ros-args", "--log-level", LaunchConfiguration("log_level")]

    tracker = LifecycleNode(
        package=PACKAGE,
        executable="yolo_tracker",
        name="yolo_tracker",
        namespace=namespace,
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "model_path": _string("model"),
                "input_topic": _string("image_topic"),
                "input_topics": ParameterValue(
                    LaunchConfiguration("image_topics"), value_type=list[str]
                ),
            },
        ],
        arguments=ros_args,
        output="screen",
    )
    configure = EmitEvent(
        event=ChangeState(
            lifecycle_node_matcher=matches_action(tracker),
            transition_id=Transition.TRANSITION_CONFIGURE,
        )
    )
    # One shot: the outcome of the configure above (inactive: activate it). Left registered, the
    # handler would activate after every later configure too, and the user's own `activate` would
    # then fail.
    activate_when_configured = RegisterEventHandler(
        OnStateTransition(
            target_lifecycle_node=tracker,
            start_state="configuring",
            entities=[OpaqueFunction(function=_activate_if_configured, args=[tracker])],
            handle_once=True,
        )
    )
    # Conditions go on the group: EmitEvent and RegisterEventHandler take none in older launch
    # releases (Humble).
    autostart = GroupAction(
        [configure, activate_when_configured],
        scoped=False,
        condition=IfCondition(LaunchConfiguration("autostart")),
    )
    replay = Node(
        package=PACKAGE,
        executable="image_replay",
        name="image_replay",
        namespace=namespace,
        parameters=[
            {"source": _string("replay_source"), "loop": LaunchConfiguration("replay_loop")}
        ],
        remappings=[("image_raw", image_topic)],
        arguments=ros_args,
        output="screen",
        condition=Condition(
            predicate=lambda context: context.launch_configurations["replay_source"] != ""
        ),
    )
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        namespace=namespace,  # the config's topics are relative: they follow the namespace
        arguments=[
            "-d",
            PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "tracker.rviz"]),
        ],
        output="screen",
    )
    rviz_if_installed = OpaqueFunction(
        function=_rviz_if_installed,
        args=[rviz],
        condition=IfCondition(LaunchConfiguration("rviz")),
    )
    declared = [
        DeclareLaunchArgument(name, description=description)
        if default is None
        else DeclareLaunchArgument(name, default_value=default, description=description)
        for name, default, description in ARGUMENTS
    ]
    return LaunchDescription([*declared, tracker, autostart, replay, rviz_if_installed])
