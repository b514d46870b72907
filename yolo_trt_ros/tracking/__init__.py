"""Multi-object tracking: ByteTrack, its Kalman filter and matching, and what the tracker
publishes."""
