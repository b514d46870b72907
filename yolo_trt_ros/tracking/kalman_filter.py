"""Constant-velocity Kalman filter over one box (cx, cy, aspect, h), in plain Python floats.

The model is ByteTrack's (and Ultralytics' ``KalmanFilterXYAH``): state (cx, cy, a, h, vcx, vcy, va, vh), the box
observed directly, process and measurement noise proportional to the box height. Because the initial covariance,
the process noise and the measurement noise are diagonal and the motion couples each coordinate only with its own
velocity, the 8x8 covariance stays block diagonal: four independent 2x2 blocks [[pp, pv], [pv, vv]], one per
coordinate. Storing those 12 numbers instead of 64 turns predict and update into a few scalar operations per
coordinate, with results equal to the full matrix filter up to float rounding (``test/tracking/test_kalman_filter.py``).

A track's state is a list of STATE_SIZE floats: mean box (cx, cy, a, h), velocity, then the blocks' pp, pv and vv
(4 each, in the order of the box). The functions return new lists.

Why per track and not numpy over all tracks: a camera frame holds a few to a few dozen tracks, a numpy call costs
~0.3 us whatever its size, and one filter step is ~12 element-wise operations plus gathering the tracks' columns
and scattering them back, while one step of one track in Python floats takes ~0.8 us. On MOT16-05 (~5 tracks) the
tracker built on a numpy filter over all tracks took ~1.7x the time of this one (BENCHMARKS.md).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

STATE_SIZE = 20
VH = 7  # index of the height velocity

STD_WEIGHT_POSITION = 1.0 / 20
STD_WEIGHT_VELOCITY = 1.0 / 160
# Variances are (weight * h)^2, except for the aspect ratio, which has fixed ones.
_POSITION_VAR_H2 = STD_WEIGHT_POSITION**2  # process noise of cx, cy, h per step, and measurement noise, / h^2
_VELOCITY_VAR_H2 = STD_WEIGHT_VELOCITY**2
_ASPECT_VAR = 1e-2 * 1e-2  # process noise of the aspect ratio per step
_ASPECT_VELOCITY_VAR = 1e-5 * 1e-5
_MEASUREMENT_ASPECT_VAR = 1e-1 * 1e-1


def initiate(xyah: Sequence[float]) -> list[float]:
    """The state of a track started at the measured box ``xyah``: zero velocity, variances from the box height."""
    cx, cy, a, h = xyah
    p = 2 * STD_WEIGHT_POSITION * h
    v = 10 * STD_WEIGHT_VELOCITY * h
    pp, vv = p * p, v * v
    return [cx, cy, a, h, 0.0, 0.0, 0.0, 0.0,
            pp, pp, _ASPECT_VAR, pp, 0.0, 0.0, 0.0, 0.0, vv, vv, _ASPECT_VELOCITY_VAR, vv]


def predict(x: list[float], steps: int = 1) -> list[float]:
    """The state ``x`` advanced by ``steps`` frame periods.

    One step is the filter's predict. Several steps (dropped frames) are done in closed form, with the process
    noise of every step taken at the height the box had before the first one.
    """
    cx, cy, a, h, v0, v1, v2, v3, pp0, pp1, pp2, pp3, pv0, pv1, pv2, pv3, vv0, vv1, vv2, vv3 = x
    k, k2, k_sq, (qpp, qpp_a), (qpv, qpv_a), (qvv, qvv_a) = _step_coefficients(steps)
    h2 = h * h
    qpp *= h2
    qpv *= h2
    qvv *= h2
    return [
        cx + k * v0, cy + k * v1, a + k * v2, h + k * v3,
        v0, v1, v2, v3,
        pp0 + k2 * pv0 + k_sq * vv0 + qpp, pp1 + k2 * pv1 + k_sq * vv1 + qpp,
        pp2 + k2 * pv2 + k_sq * vv2 + qpp_a, pp3 + k2 * pv3 + k_sq * vv3 + qpp,
        pv0 + k * vv0 + qpv, pv1 + k * vv1 + qpv, pv2 + k * vv2 + qpv_a, pv3 + k * vv3 + qpv,
        vv0 + qvv, vv1 + qvv, vv2 + qvv_a, vv3 + qvv,
    ]


_Noise = tuple[float, float]  # (factor of h^2 for cx, cy and h; value for the aspect ratio)


@functools.lru_cache(maxsize=64)
def _step_coefficients(steps: int) -> tuple[float, float, float, _Noise, _Noise, _Noise]:
    """k, 2k, k^2 and the process noise that ``predict`` adds to pp, pv and vv over k steps.

    k steps of x += v with per-step noise q_pos, q_vel sum to pos += k vel, pp += 2k pv + k^2 vv + k q_pos +
    sum(i^2) q_vel, pv += k vv + sum(i) q_vel and vv += k q_vel, for i = 0 .. k-1.
    """
    k = float(steps)
    sum_i = k * (k - 1) / 2
    sum_i2 = (k - 1) * k * (2 * k - 1) / 6
    return (k, 2 * k, k * k,
            (k * _POSITION_VAR_H2 + sum_i2 * _VELOCITY_VAR_H2, k * _ASPECT_VAR + sum_i2 * _ASPECT_VELOCITY_VAR),
            (sum_i * _VELOCITY_VAR_H2, sum_i * _ASPECT_VELOCITY_VAR),
            (k * _VELOCITY_VAR_H2, k * _ASPECT_VELOCITY_VAR))


def update(x: list[float], xyah: Sequence[float]) -> list[float]:
    """The state ``x`` corrected with the measured box ``xyah``."""
    cx, cy, a, h, v0, v1, v2, v3, pp0, pp1, pp2, pp3, pv0, pv1, pv2, pv3, vv0, vv1, vv2, vv3 = x
    z0, z1, z2, z3 = xyah
    r = _POSITION_VAR_H2 * (h * h)  # measurement noise
    ra = _MEASUREMENT_ASPECT_VAR
    s0, s1, s2, s3 = pp0 + r, pp1 + r, pp2 + ra, pp3 + r  # innovation variance
    g0, g1, g2, g3 = pp0 / s0, pp1 / s1, pp2 / s2, pp3 / s3  # gain of the position
    k0, k1, k2, k3 = pv0 / s0, pv1 / s1, pv2 / s2, pv3 / s3  # gain of the velocity
    y0, y1, y2, y3 = z0 - cx, z1 - cy, z2 - a, z3 - h  # innovation
    # P - K S K^T for each 2x2 block, in the forms that need the fewest operations
    return [
        cx + g0 * y0, cy + g1 * y1, a + g2 * y2, h + g3 * y3,
        v0 + k0 * y0, v1 + k1 * y1, v2 + k2 * y2, v3 + k3 * y3,
        g0 * r, g1 * r, g2 * ra, g3 * r,
        k0 * r, k1 * r, k2 * ra, k3 * r,
        vv0 - k0 * pv0, vv1 - k1 * pv1, vv2 - k2 * pv2, vv3 - k3 * pv3,
    ]
