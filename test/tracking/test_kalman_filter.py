"""The per-track block-diagonal Kalman filter against a plain 8x8 implementation of the same model."""

from __future__ import annotations

import numpy as np

from yolo_trt_ros.tracking import kalman_filter as kf

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


def unpacked(x: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Mean (8,) and full covariance (8, 8) of a packed track state."""
    assert len(x) == kf.STATE_SIZE and all(type(v) is float for v in x)  # numpy scalars would make it slow
    s = np.array(x)
    pp, pv, vv = s[8:12], s[12:16], s[16:20]
    cov = np.diag(np.r_[pp, vv])
    cov[range(4), range(4, 8)] = cov[range(4, 8), range(4)] = pv
    return s[:8], cov


def random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 4) boxes cx, cy, a, h as float32 detections give them."""
    return np.column_stack(
        [rng.uniform(0, 640, n), rng.uniform(0, 480, n), rng.uniform(0.3, 0.7, n), rng.uniform(30, 300, n)]
    ).astype(np.float32)


def assert_close(states: list[list[float]], refs: list[ReferenceTrack]) -> None:
    for x, ref in zip(states, refs):
        mean, cov = unpacked(x)
        np.testing.assert_allclose(mean, ref.mean, rtol=1e-12, atol=1e-9)
        np.testing.assert_allclose(cov, ref.cov, rtol=1e-9, atol=1e-12)


def test_initiate_predict_update_match_the_full_matrix_filter() -> None:
    rng = np.random.default_rng(0)
    z0 = random_boxes(rng, 7)
    states = [kf.initiate(z.tolist()) for z in z0]
    refs = [ReferenceTrack(z.astype(np.float64)) for z in z0]
    assert_close(states, refs)
    for _ in range(25):
        states = [kf.predict(x) for x in states]
        for ref in refs:
            ref.predict()
        assert_close(states, refs)
        for i in np.flatnonzero(rng.random(len(states)) < 0.7):  # some tracks are matched, as in the tracker
            z = (np.array(states[i][:4]) + rng.normal(0, 2, 4) * [1, 1, 0.01, 1]).astype(np.float32)
            states[i] = kf.update(states[i], z.tolist())
            refs[i].update(z.astype(np.float64))
        assert_close(states, refs)


def test_multi_step_predict_equals_repeated_steps_at_constant_height() -> None:
    rng = np.random.default_rng(1)
    states = [kf.initiate(z.tolist()) for z in random_boxes(rng, 5)]
    for _ in range(3):  # build up velocities and correlations
        states = [kf.update(kf.predict(x), (np.array(x[:4]) + rng.normal(0, 3, 4) * [1, 1, 0, 1]).tolist())
                  for x in states]
    for x in states:
        x[kf.VH] = 0.0  # no height velocity: the process noise is the same at every step
        for steps in (2, 3, 7, 30):
            single = x
            for _ in range(steps):
                single = kf.predict(single)
            np.testing.assert_allclose(kf.predict(x, steps), single, rtol=1e-10, atol=1e-9)


def test_multi_step_predict_with_growing_box_is_close_to_repeated_steps() -> None:
    x = kf.initiate([100.0, 100.0, 0.5, 100.0])
    x[4:8] = [3.0, -2.0, 0.0, 1.0]  # the height grows 1 px per frame
    single = x
    for _ in range(5):
        single = kf.predict(single)
    jump = kf.predict(x, 5)
    np.testing.assert_allclose(jump[:8], single[:8], rtol=1e-12)  # the mean is exact
    np.testing.assert_allclose(jump, single, rtol=0.1)  # noise taken at the starting height: ~5% smaller
    assert jump[8] < single[8]
