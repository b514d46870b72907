"""Detection: letterbox, decode, NMS, class names, drawing; the model-agnostic half of the frame
path."""
