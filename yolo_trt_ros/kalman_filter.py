"""Constant-velocity Kalman filter over boxes (cx, cy, aspect, h), vectorized over all tracks at once.

The model is ByteTrack's (and Ultralytics' ``KalmanFilterXYAH``): state (cx, cy, a, h, vcx, vcy, va, vh), the box
observed directly, process and measurement noise proportional to the box height. Because the initial covariance,
the process noise and the measurement noise are diagonal and the motion couples each coordinate only with its own
velocity, the 8x8 covariance stays block diagonal: four independent 2x2 blocks [[pp, pv], [pv, vv]], one per
coordinate. Storing those 12 numbers instead of 64 turns predict and update into a few element-wise operations on
arrays holding every track at once, with results equal to the full matrix filter (up to float rounding).

State layout: one float64 array of shape (STATE_ROWS, n), one column per track and one row per quantity:
rows 0-3 mean box (cx, cy, a, h), 4-7 its velocity, 8-11 pp, 12-15 pv, 16-19 vv (each for cx, cy, a, h).
"""

from __future__ import annotations

import numpy as np

STATE_ROWS = 20
POS, VEL, PP, PV, VV = slice(0, 4), slice(4, 8), slice(8, 12), slice(12, 16), slice(16, 20)

STD_WEIGHT_POSITION = 1.0 / 20
STD_WEIGHT_VELOCITY = 1.0 / 160
# Standard deviations are weight * h, except for the aspect ratio (row 2), which has fixed ones.
_PROCESS_WEIGHTS = np.array([STD_WEIGHT_POSITION] * 4 + [STD_WEIGHT_VELOCITY] * 4)
_PROCESS_ASPECT_VAR = (1e-2 * 1e-2, 1e-5 * 1e-5)  # position, velocity
_MEASUREMENT_WEIGHTS = np.full(4, STD_WEIGHT_POSITION)
_MEASUREMENT_ASPECT_VAR = 1e-1 * 1e-1
_INIT_POS_WEIGHT = 2 * STD_WEIGHT_POSITION
_INIT_VEL_WEIGHT = 10 * STD_WEIGHT_VELOCITY


def initiate(xyah: np.ndarray) -> np.ndarray:
    """New states from measurements ``xyah`` (4, m): mean = the box, zero velocity, height-scaled covariance."""
    m = xyah.shape[1]
    state = np.zeros((STATE_ROWS, m))
    state[POS] = xyah
    h = state[3]
    pos_std = _INIT_POS_WEIGHT * h
    vel_std = _INIT_VEL_WEIGHT * h
    pp, vv = state[PP], state[VV]
    pp[:] = pos_std * pos_std
    vv[:] = vel_std * vel_std
    pp[2] = _PROCESS_ASPECT_VAR[0]
    vv[2] = _PROCESS_ASPECT_VAR[1]
    return state


def predict(state: np.ndarray, steps: int = 1) -> None:
    """Advance ``state`` (STATE_ROWS, n) in place by ``steps`` frame periods.

    One step is exactly the filter's predict. Several steps (dropped frames) are done in closed form, with the
    process noise of every step taken at the height the box had before the first one.
    """
    pos, vel, pp, pv, vv = state[POS], state[VEL], state[PP], state[PV], state[VV]
    noise = np.multiply.outer(_PROCESS_WEIGHTS, state[3])
    noise *= noise
    noise[2], noise[6] = _PROCESS_ASPECT_VAR
    q_pos, q_vel = noise[:4], noise[4:]
    if steps == 1:
        pv_next = pv + vv
        pp += pv
        pp += pv_next
        pp += q_pos
        pv[:] = pv_next
        vv += q_vel
        pos += vel
        return
    k = float(steps)
    sum_i = k * (k - 1) / 2  # sum of i for i < k
    sum_i2 = (k - 1) * k * (2 * k - 1) / 6  # sum of i^2 for i < k
    pp += 2 * k * pv + k * k * vv + k * q_pos + sum_i2 * q_vel
    pv += k * vv + sum_i * q_vel
    vv += k * q_vel
    pos += k * vel


def update(state: np.ndarray, xyah: np.ndarray) -> None:
    """Correct ``state`` (STATE_ROWS, m) in place with the matched measurements ``xyah`` (4, m)."""
    pos, vel, pp, pv, vv = state[POS], state[VEL], state[PP], state[PV], state[VV]
    noise = np.multiply.outer(_MEASUREMENT_WEIGHTS, state[3])
    noise *= noise
    noise[2] = _MEASUREMENT_ASPECT_VAR
    innovation_var = pp + noise
    gain_pos = pp / innovation_var
    gain_vel = pv / innovation_var
    innovation = xyah - pos
    pos += gain_pos * innovation
    vel += gain_vel * innovation
    # P - K S K^T for each 2x2 block, written in the forms that need the fewest operations.
    vv -= gain_vel * pv
    np.multiply(gain_pos, noise, out=pp)
    np.multiply(gain_vel, noise, out=pv)


def xyxy(state: np.ndarray) -> np.ndarray:
    """The mean boxes of ``state`` as corners (4, n) float64: rows x1, y1, x2, y2."""
    boxes = np.empty((4, state.shape[1]))
    np.multiply(state[2], state[3], out=boxes[2])
    boxes[3] = state[3]
    np.subtract(state[0:2], boxes[2:4] / 2, out=boxes[0:2])
    boxes[2:4] += boxes[0:2]
    return boxes
