"""The ``yolo-trt-ros`` command line."""
