"""yolo_trt_ros: YOLOv8 detection and tracking for ROS 2 (TensorRT or ONNX Runtime)."""

__version__ = "0.1.0"
