"""The vectorized block-diagonal Kalman filter against a plain per-track 8x8 implementation of the same model."""

from __future__ import annotations

import numpy as np

from yolo_trt_ros import kalman_filter as kf

WP, WV = 1 / 20, 1 / 160


class ReferenceTrack:
    """One track, full 8x8 matrices, written straight from the model (ByteTrack / Ultralytics KalmanFilterXYAH)."""

    F = np.eye(8) + np.eye(8, k=4)
    H = np.eye(4, 8)

    def __init__(self, xyah: np.ndarray) -> None:
        h = xyah[3]
        self.mean = np.r_[xyah, np.zeros(4)].astype(np.float64)
        self.cov = np.diag(np.square([2 * WP * h, 2 * WP * h, 1e-2, 2 * WP * h,
                                      10 * WV * h, 10 * WV * h, 1e-5, 10 * WV * h]))

    def predict(self) -> None:
        h = self.mean[3]
        q = np.diag(np.square([WP * h, WP * h, 1e-2, WP * h, WV * h, WV * h, 1e-5, WV * h]))
        self.mean = self.F @ self.mean
        self.cov = self.F @ self.cov @ self.F.T + q

    def update(self, z: np.ndarray) -> None:
        h = self.mean[3]
        r = np.diag(np.square([WP * h, WP * h, 1e-1, WP * h]))
        s = self.H @ self.cov @ self.H.T + r
        gain = self.cov @ self.H.T @ np.linalg.inv(s)
        self.mean = self.mean + gain @ (z - self.H @ self.mean)
        self.cov = self.cov - gain @ s @ gain.T


def packed(state: np.ndarray, i: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean (8,) and full covariance (8, 8) of track ``i`` from the packed state."""
    mean = np.r_[state[kf.POS, i], state[kf.VEL, i]]
    cov = np.zeros((8, 8))
    for d in range(4):
        cov[d, d] = state[kf.PP, i][d]
        cov[d + 4, d + 4] = state[kf.VV, i][d]
        cov[d, d + 4] = cov[d + 4, d] = state[kf.PV, i][d]
    return mean, cov


def initiate(xyah: np.ndarray) -> np.ndarray:
    state = np.zeros((kf.STATE_ROWS, xyah.shape[1]))
    state[kf.POS] = xyah
    kf.initiate(state)
    return state


def random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.vstack(
        [rng.uniform(0, 640, n), rng.uniform(0, 480, n), rng.uniform(0.3, 0.7, n), rng.uniform(30, 300, n)]
    ).astype(np.float32)


def assert_close(state: np.ndarray, refs: list[ReferenceTrack]) -> None:
    for i, ref in enumerate(refs):
        mean, cov = packed(state, i)
        np.testing.assert_allclose(mean, ref.mean, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(cov, ref.cov, rtol=1e-9, atol=1e-12)


def test_initiate_predict_update_match_the_full_matrix_filter() -> None:
    rng = np.random.default_rng(0)
    n = 7
    z0 = random_boxes(rng, n)
    state = initiate(z0)
    refs = [ReferenceTrack(z0[:, i].astype(np.float64)) for i in range(n)]
    assert_close(state, refs)
    for _ in range(25):
        kf.predict(state)
        for ref in refs:
            ref.predict()
        assert_close(state, refs)
        # update a random subset, as the tracker does with gathered columns
        idx = np.flatnonzero(rng.random(n) < 0.7)
        z = (state[kf.POS][:, idx] + rng.normal(0, 2, (4, len(idx))) * [[1], [1], [0.01], [1]]).astype(np.float32)
        sub = state.take(idx, 1)
        kf.update(sub, z)
        state[:, idx] = sub
        for j, i in enumerate(idx):
            refs[i].update(z[:, j].astype(np.float64))
        assert_close(state, refs)


def test_multi_step_predict_equals_repeated_steps_at_constant_height() -> None:
    rng = np.random.default_rng(1)
    z = random_boxes(rng, 5)
    state = initiate(z)
    for _ in range(3):  # build up velocities and correlations
        kf.predict(state)
        kf.update(state, (state[kf.POS] + rng.normal(0, 3, (4, 5)) * [[1], [1], [0], [1]]).astype(np.float32))
    state[kf.VEL.start + 3] = 0.0  # no height velocity: the process noise is the same at every step
    for steps in (2, 3, 7, 30):
        jump, single = state.copy(), state.copy()
        kf.predict(jump, steps)
        for _ in range(steps):
            kf.predict(single)
        np.testing.assert_allclose(jump, single, rtol=1e-10, atol=1e-9)


def test_multi_step_predict_with_growing_box_is_close_to_repeated_steps() -> None:
    state = initiate(np.array([[100.0], [100.0], [0.5], [100.0]], dtype=np.float32))
    state[kf.VEL, 0] = [3.0, -2.0, 0.0, 1.0]  # the height grows 1 px per frame
    jump, single = state.copy(), state.copy()
    kf.predict(jump, 5)
    for _ in range(5):
        kf.predict(single)
    np.testing.assert_allclose(jump[kf.POS], single[kf.POS], rtol=1e-12)  # the mean is exact
    np.testing.assert_allclose(jump, single, rtol=0.1)  # noise taken at the starting height: ~5% smaller
