"""ROS 2 nodes and their helpers: parameters, messages, diagnostics, image conversion, logging."""
