"""Constant-velocity Kalman filter for boxes, over all tracks at once (ByteTrack's XYAH filter).

State of a track: x = (cx, cy, a, h, vcx, vcy, va, vh), the box (center, aspect ratio w / h,
height) and its velocity per frame. Motion x' = F x + w with F = [[I, I], [0, I]] (position +=
velocity) and process noise w ~ N(0, Q); measurement z = H x + v with H = [I, 0] (the box is
observed) and noise v ~ N(0, R). The initial covariance, Q and R are diagonal; their standard
deviations are the box height times a weight (``STD_WEIGHT_POSITION``, ``STD_WEIGHT_VELOCITY``),
except for the aspect ratio's, which are fixed. All as in ByteTrack and Ultralytics.

N tracks are arrays: mean (N, 8), covariance (N, 8, 8), measured boxes (N, 4). The functions work
in place on ``mean`` and ``covariance``, which may be views (the tracker passes column views of its
one track array). Each step is a few whole-array numpy calls, whatever N: the matrices that depend
only on the number of steps are built once (``_motion``), and a noise covariance is ``h^2`` times
one constant matrix plus another (``_noise``).
"""

from __future__ import annotations

import functools

import numpy as np

STD_WEIGHT_POSITION = 1.0 / 20
STD_WEIGHT_VELOCITY = 1.0 / 160

_VELOCITY_TO_POSITION = np.eye(8, k=4)  # S: the motion over k frame periods is F^k = I + k S

# The diagonal covariances as (factor of h^2, constant), flattened: cx, cy, h and their velocities
# have standard deviations proportional to the height h, the aspect ratio and its velocity fixed
# ones.
_P, _V = STD_WEIGHT_POSITION, STD_WEIGHT_VELOCITY
_INITIAL = (
    np.diag(np.square([2 * _P, 2 * _P, 0, 2 * _P, 10 * _V, 10 * _V, 0, 10 * _V])).reshape(64),
    np.diag(np.square([0, 0, 1e-2, 0, 0, 0, 1e-5, 0])).reshape(64),
)
_PROCESS = (
    np.diag(np.square([_P, _P, 0, _P, _V, _V, 0, _V])),
    np.diag(np.square([0, 0, 1e-2, 0, 0, 0, 1e-5, 0])),
)
_MEASUREMENT = (np.square([_P, _P, 0, _P]), np.square([0, 0, 1e-1, 0]))  # diagonals only
_DIAGONAL_8 = [0, 9, 18, 27, 36, 45, 54, 63]  # the diagonal of an 8 x 8 matrix, flattened


def initiate(measurements: np.ndarray, mean: np.ndarray, covariance: np.ndarray) -> None:
    """Start tracks at the measured boxes (N, 4): writes the box with zero velocity into ``mean``
    (N, 8) and the initial covariance into ``covariance`` (N, 8, 8)."""
    mean[:, :4] = measurements
    mean[:, 4:] = 0.0
    covariance[:] = _noise(measurements[:, 3], _INITIAL).reshape(-1, 8, 8)


def predict(mean: np.ndarray, covariance: np.ndarray, steps: int = 1) -> None:
    """Advance ``mean`` and ``covariance`` in place by ``steps`` frame periods: x' = F^k x,
    P' = F^k P (F^k)^T + Q_k, with Q_k the process noise of the k steps (``_motion``) taken at the
    box height before the first step."""
    motion, motion_t, process_noise = _motion(steps)
    noise = _noise(mean[:, 3], process_noise).reshape(-1, 8, 8)
    np.matmul(mean, motion_t, out=mean)
    np.add(motion @ covariance @ motion_t, noise, out=covariance)


def update(mean: np.ndarray, covariance: np.ndarray, measurements: np.ndarray) -> None:
    """Correct ``mean`` and ``covariance`` in place with the measured boxes (N, 4), one per track.

    Innovation covariance S = H P H^T + R, gain K = P H^T S^-1, mean x + K (z - H x), covariance
    (I - K H) P. With H = [I, 0], H P is the first four rows of P and P H^T its first four columns,
    and K^T = S^-1 H P (S and P are symmetric).

    S is diagonal, so S^-1 H P divides row i of H P by S_ii (what a solve would give): the
    filter never correlates two box coordinates. The initial covariance, Q and R are diagonal, and
    F and the update only mix a coordinate with its own velocity (i and i + 4), so every covariance
    it produces is zero outside the entries (i, i), (i, i + 4), (i + 4, i), (i + 4, i + 4).
    ``test_kalman_filter`` checks that structure; a ``np.linalg.solve`` here would cost more than
    the rest of the update at a few tracks.
    """
    projected = covariance[:, :4, :]  # H P (N, 4, 8)
    innovation_var = covariance.reshape(-1, 64)[:, _DIAGONAL_8[:4]]  # diagonal of H P H^T
    innovation_var += _noise(mean[:, 3], _MEASUREMENT)  # + R: S's diagonal (a copy)
    gain_t = projected / innovation_var[:, :, None]  # K^T = S^-1 H P (N, 4, 8)
    innovation = measurements - mean[:, :4]
    mean += (innovation[:, None, :] @ gain_t)[:, 0]
    covariance -= gain_t.transpose(0, 2, 1) @ projected


@functools.lru_cache(maxsize=64)
def _motion(steps: int) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """F^k = I + k S, its transpose, and the process noise that k steps add up to,
    sum_{i<k} F^i Q (F^i)^T = k Q + (sum i) (S Q + Q S^T) + (sum i^2) S Q S^T, as (factor of h^2,
    constant) flattened like ``_INITIAL`` (the sum is linear in Q). Read-only: the results are
    shared."""
    s = _VELOCITY_TO_POSITION
    motion = np.eye(8) + steps * s
    sum_i, sum_i2 = steps * (steps - 1) / 2, (steps - 1) * steps * (2 * steps - 1) / 6

    def over_steps(q: np.ndarray) -> np.ndarray:
        return (steps * q + sum_i * (s @ q + q @ s.T) + sum_i2 * (s @ q @ s.T)).reshape(64)

    noise = (over_steps(_PROCESS[0]), over_steps(_PROCESS[1]))
    arrays = (motion, motion.T.copy(), *noise)
    for array in arrays:
        array.flags.writeable = False
    return motion, arrays[1], noise


def _noise(h: np.ndarray, covariance: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """(N, d) covariances, flattened, for boxes of height ``h`` (N,) from a (factor of h^2,
    constant) pair of flattened (d,) arrays."""
    per_h2, constant = covariance
    out = np.multiply.outer(np.square(h), per_h2)
    out += constant
    return out
