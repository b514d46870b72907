"""``yolo-trt-ros demo``: the node, a replayed camera and a recorder as separate ROS processes."""
