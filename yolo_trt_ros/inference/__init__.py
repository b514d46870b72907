"""Inference backends behind one interface (``base.Backend``); ``selection.create_backend`` loads a
model."""
