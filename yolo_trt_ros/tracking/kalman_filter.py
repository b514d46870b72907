"""Constant-velocity Kalman filter for boxes, over all tracks at once (ByteTrack's XYAH filter).

State of a track: x = (cx, cy, a, h, vcx, vcy, va, vh), the box (center, aspect ratio w / h,
height) and its velocity per frame. Motion x' = F x + w with F = [[I, I], [0, I]] (position +=
velocity) and process noise w ~ N(0, Q); measurement z = H x + v with H = [I, 0] (the box is
observed) and noise v ~ N(0, R). The initial covariance, Q and R are diagonal; their standard
deviations are the box height times a weight (``STD_WEIGHT_POSITION``, ``STD_WEIGHT_VELOCITY``),
except for the aspect ratio's, which are fixed. All as in ByteTrack and Ultralytics.

N tracks are arrays: mean (N, 8), covariance (N, 8, 8), measured boxes (N, 4). The functions return
new arrays.
"""

from __future__ import annotations

import numpy as np

STD_WEIGHT_POSITION = 1.0 / 20
STD_WEIGHT_VELOCITY = 1.0 / 160

_VELOCITY_TO_POSITION = np.eye(8, k=4)  # S: the motion over k frame periods is F^k = I + k S
_MOTION = np.eye(8) + _VELOCITY_TO_POSITION  # F

# The diagonal covariances as (factor of h^2, constant): cx, cy, h and their velocities have
# standard deviations proportional to the height h, the aspect ratio and its velocity fixed ones.
_P, _V = STD_WEIGHT_POSITION, STD_WEIGHT_VELOCITY
_INITIAL = (
    np.diag(np.square([2 * _P, 2 * _P, 0, 2 * _P, 10 * _V, 10 * _V, 0, 10 * _V])),
    np.diag(np.square([0, 0, 1e-2, 0, 0, 0, 1e-5, 0])),
)
_PROCESS = (
    np.diag(np.square([_P, _P, 0, _P, _V, _V, 0, _V])),
    np.diag(np.square([0, 0, 1e-2, 0, 0, 0, 1e-5, 0])),
)
_MEASUREMENT = (np.diag(np.square([_P, _P, 0, _P])), np.diag(np.square([0, 0, 1e-1, 0])))


def initiate(measurements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of tracks started at the measured boxes (N, 4), with zero velocity."""
    mean = np.concatenate((measurements, np.zeros_like(measurements)), axis=1)
    return mean, _noise(measurements[:, 3], _INITIAL)


def predict(
    mean: np.ndarray, covariance: np.ndarray, steps: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance ``steps`` frame periods later.

    One step: x' = F x, P' = F P F^T + Q. Several steps (dropped frames) at once: the motion is
    F^k = I + k S, and the process noise of the k steps adds up to
    sum_{i<k} F^i Q (F^i)^T = k Q + (sum i) (S Q + Q S^T) + (sum i^2) S Q S^T,
    with Q taken at the box height before the first step.
    """
    q = _noise(mean[:, 3], _PROCESS)
    if steps == 1:
        motion, noise = _MOTION, q
    else:
        s = _VELOCITY_TO_POSITION
        motion = np.eye(8) + steps * s
        sum_i, sum_i2 = steps * (steps - 1) / 2, (steps - 1) * steps * (2 * steps - 1) / 6
        noise = steps * q + sum_i * (s @ q + q @ s.T) + sum_i2 * (s @ q @ s.T)
    motion_t = motion.T
    return mean @ motion_t, motion @ covariance @ motion_t + noise


def update(
    mean: np.ndarray, covariance: np.ndarray, measurements: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance corrected with the measured boxes (N, 4), one per track.

    Innovation covariance S = H P H^T + R, gain K = P H^T S^-1, mean x + K (z - H x), covariance
    (I - K H) P. With H = [I, 0], H P is the first four rows of P and P H^T its first four columns.
    """
    innovation_cov = covariance[:, :4, :4] + _noise(mean[:, 3], _MEASUREMENT)
    gain = covariance[:, :, :4] @ np.linalg.inv(innovation_cov)
    innovation = measurements - mean[:, :4]
    new_mean = mean + (gain @ innovation[:, :, None])[:, :, 0]
    return new_mean, covariance - gain @ covariance[:, :4, :]


def _noise(h: np.ndarray, covariance: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """(N, d, d) covariances for boxes of height ``h`` (N,) from a (factor of h^2, constant)."""
    per_h2, constant = covariance
    return np.square(h)[:, None, None] * per_h2 + constant
