"""yolo_trt_ros: ament_python package (colcon) that also installs with pip."""

import re
from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "yolo_trt_ros"
HERE = Path(__file__).resolve().parent
VERSION = re.search(r"<version>([^<]+)</version>", (HERE / "package.xml").read_text()).group(1)

setup(
    name=PACKAGE,
    version=VERSION,
    description="YOLOv8 detection and tracking for ROS 2 (TensorRT or ONNX Runtime)",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(exclude=["test", "test.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.rviz")),
    ],
    # numpy, OpenCV, onnxruntime, PyYAML and rclpy come from the ROS install (package.xml) or
    # from requirements/*.txt (tools/setup_env.sh); not repeated here so colcon does not fight apt.
    install_requires=["setuptools"],
    extras_require={"export": ["ultralytics>=8.4,<8.5"]},
    package_data={PACKAGE: ["inference/tensorrt/kernels.cu", "inference/tensorrt/kernels.ptx"]},
    zip_safe=False,
    entry_points={
        "console_scripts": [
            "yolo_tracker = yolo_trt_ros.ros.tracker_node:main",
            "image_replay = yolo_trt_ros.ros.replay_node:main",
            "yolo-trt-ros = yolo_trt_ros.cli.main:main",
        ],
    },
)
