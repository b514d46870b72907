"""Constant-velocity Kalman filter over boxes (cx, cy, aspect, h), vectorized over all tracks at once.

The model is ByteTrack's (and Ultralytics' ``KalmanFilterXYAH``): state (cx, cy, a, h, vcx, vcy, va, vh), the box
observed directly, process and measurement noise proportional to the box height. Because the initial covariance,
the process noise and the measurement noise are diagonal and the motion couples each coordinate only with its own
velocity, the 8x8 covariance stays block diagonal: four independent 2x2 blocks [[pp, pv], [pv, vv]], one per
coordinate. Storing those 12 numbers instead of 64 turns predict and update into a few element-wise operations on
arrays holding every track at once, with results equal to the full matrix filter (up to float rounding).

State layout: one float64 array of shape (STATE_ROWS, n), one column per track and one row per quantity, each
group of 4 rows for (cx, cy, a, h): rows 0-3 mean box, 4-7 pp, 8-11 vv, 12-15 velocity, 16-19 pv; then row 20 (h^2,
scratch) and row 21 (constant 1). With those two rows the prediction, process noise included, is linear in the
state, so predicting every track over any number of frame periods is one matrix product.
"""

from __future__ import annotations

import functools

import numpy as np

STATE_ROWS = 22
POS, PP, VV, VEL, PV = slice(0, 4), slice(4, 8), slice(8, 12), slice(12, 16), slice(16, 20)
_H2, _ONE = 20, 21  # h^2 of the box before the prediction; constant 1

STD_WEIGHT_POSITION = 1.0 / 20
STD_WEIGHT_VELOCITY = 1.0 / 160
# Standard deviations are weight * h, except for the aspect ratio (row 2), which has fixed ones.
_PROCESS_WEIGHTS = np.array([STD_WEIGHT_POSITION] * 4 + [STD_WEIGHT_VELOCITY] * 4)
_PROCESS_ASPECT_VAR = (1e-2 * 1e-2, 1e-5 * 1e-5)  # position, velocity
_MEASUREMENT_VAR_H2 = np.array([[STD_WEIGHT_POSITION**2]] * 4)  # measurement variance / h^2, as a column
_MEASUREMENT_ASPECT_VAR = 1e-1 * 1e-1
_INIT_WEIGHTS = np.array([2 * STD_WEIGHT_POSITION] * 4 + [10 * STD_WEIGHT_VELOCITY] * 4)


def initiate(state: np.ndarray) -> None:
    """Start tracks in place: ``state`` (STATE_ROWS, m) holds the measured boxes in rows 0-3 and zero velocity and
    pv rows; this sets their variances (proportional to the box height) and the constant row."""
    variance = state[4:12]  # pp, vv
    np.multiply.outer(_INIT_WEIGHTS, state[3], out=variance)
    variance *= variance
    variance[2], variance[6] = _PROCESS_ASPECT_VAR
    state[_ONE] = 1.0


def predict(state: np.ndarray, steps: int = 1) -> None:
    """Advance ``state`` (STATE_ROWS, n) in place by ``steps`` frame periods.

    One step is the filter's predict (up to float rounding). Several steps (dropped frames) are done in closed
    form, with the process noise of every step taken at the height the box had before the first one.
    """
    np.multiply(state[3], state[3], out=state[_H2])
    state[:_H2] = _transition(steps) @ state


@functools.lru_cache(maxsize=64)
def _transition(steps: int) -> np.ndarray:
    """The (20, STATE_ROWS) matrix of ``predict``: k steps of x += v with per-step process noise q (q_i = w_i^2 h^2,
    or a constant for the aspect ratio) sum to pos += k vel, pv += k vv + sum(i) q_vel,
    pp += 2k pv + k^2 vv + k q_pos + sum(i^2) q_vel and vv += k q_vel (i < k)."""
    k = float(steps)
    sum_i = k * (k - 1) / 2
    sum_i2 = (k - 1) * k * (2 * k - 1) / 6
    # process noise per row, as coefficients of the h^2 row and of the constant row
    q = np.zeros((8, 2))
    q[:, 0] = _PROCESS_WEIGHTS**2
    q[2], q[6] = (0.0, _PROCESS_ASPECT_VAR[0]), (0.0, _PROCESS_ASPECT_VAR[1])
    q_pos, q_vel = q[:4], q[4:]
    m = np.zeros((_H2, STATE_ROWS))
    eye = np.eye(4)
    m[POS, POS] = m[PP, PP] = m[VV, VV] = m[VEL, VEL] = m[PV, PV] = eye
    m[POS, VEL] = k * eye
    m[PP, PV] = 2 * k * eye
    m[PP, VV] = k * k * eye
    m[PP, _H2:] = k * q_pos + sum_i2 * q_vel
    m[PV, VV] = k * eye
    m[PV, _H2:] = sum_i * q_vel
    m[VV, _H2:] = k * q_vel
    m.flags.writeable = False
    return m


def update(state: np.ndarray, xyah: np.ndarray) -> None:
    """Correct ``state`` (STATE_ROWS, m) in place with the matched measurements ``xyah`` (4, m)."""
    pos, pp, vv, vel, pv = state[POS], state[PP], state[VV], state[VEL], state[PV]
    noise = _MEASUREMENT_VAR_H2 * (pos[3] * pos[3])
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
