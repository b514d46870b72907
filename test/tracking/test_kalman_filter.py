"""The batched 8x8 Kalman filter against references that share no code with it: values worked out
by hand, a scalar two-state filter per coordinate written from the textbook equations, and the
information form of the update."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from yolo_trt_ros.tracking import kalman_filter as kf

WP, WV = 1 / 20, 1 / 160  # ByteTrack's std_weight_position and std_weight_velocity


# The filter works in place; these return new arrays, as the references below do.
def initiate(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, cov = np.empty((len(z), 8)), np.empty((len(z), 8, 8))
    kf.initiate(z, mean, cov)
    return mean, cov


def predict(mean: np.ndarray, cov: np.ndarray, steps: int = 1) -> tuple[np.ndarray, np.ndarray]:
    mean, cov = mean.copy(), cov.copy()
    kf.predict(mean, cov, steps)
    return mean, cov


def update(mean: np.ndarray, cov: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, cov = mean.copy(), cov.copy()
    kf.update(mean, cov, z)
    return mean, cov


def test_initiate_predict_update_known_values() -> None:
    """One track at (cx, cy, a, h) = (100, 50, 0.5, 100), by hand: initial standard deviations
    2 h / 20 = 10 (positions, height), 1e-2 (aspect), 10 h / 160 = 6.25 (velocities), 1e-5 (aspect
    velocity); one step adds h / 20 = 5 and h / 160 = 0.625 (squared); the measurement noise of a
    position is (h / 20)^2 = 25."""
    mean, cov = initiate(np.array([[100.0, 50.0, 0.5, 100.0]]))
    np.testing.assert_array_equal(mean, [[100, 50, 0.5, 100, 0, 0, 0, 0]])
    initial = [100, 100, 1e-4, 100, 39.0625, 39.0625, 1e-10, 39.0625]
    np.testing.assert_allclose(cov[0], np.diag(initial), rtol=1e-12, atol=0)

    mean, cov = predict(mean, cov)
    np.testing.assert_array_equal(mean, [[100, 50, 0.5, 100, 0, 0, 0, 0]])  # no velocity yet
    pp, pv, vv = 100 + 39.0625 + 25, 39.0625, 39.0625 + 0.390625  # cx: P' = F P F^T + Q
    assert cov[0, 0, 0] == pytest.approx(pp, rel=1e-12)
    assert cov[0, 0, 4] == cov[0, 4, 0] == pytest.approx(pv, rel=1e-12)
    assert cov[0, 4, 4] == pytest.approx(vv, rel=1e-12)
    assert cov[0, 2, 2] == pytest.approx(1e-4 + 1e-10 + 1e-4, rel=1e-12)  # aspect: fixed noise
    assert cov[0, 0, 1] == cov[0, 0, 3] == 0.0  # coordinates stay uncorrelated

    # measured 10 px to the right: gain pp / (pp + 25) for cx, pv / (pp + 25) for its velocity
    mean, cov = update(mean, cov, np.array([[110.0, 50.0, 0.5, 100.0]]))
    s = Fraction(pp) + 25
    assert mean[0, 0] == pytest.approx(float(100 + 10 * Fraction(pp) / s), rel=1e-14)
    assert mean[0, 4] == pytest.approx(float(10 * Fraction(pv) / s), rel=1e-14)
    np.testing.assert_array_equal(mean[0, [1, 2, 3, 5, 6, 7]], [50, 0.5, 100, 0, 0, 0])
    assert cov[0, 0, 0] == pytest.approx(float(Fraction(pp) * 25 / s), rel=1e-12)
    assert cov[0, 4, 4] == pytest.approx(float(Fraction(vv) - Fraction(pv) ** 2 / s), rel=1e-12)


class ScalarTrack:
    """One track as four independent filters, one per coordinate (cx, cy, a, h), each with state
    (position p, velocity v) and covariance [[pp, pv], [pv, vv]], in plain Python floats: the
    textbook equations with F = [[1, 1], [0, 1]] and H = [1, 0]. Noise as ByteTrack: standard
    deviations the height times a weight, fixed for the aspect ratio (index 2)."""

    def __init__(self, z: list[float]) -> None:
        h = z[3]
        self.p, self.v = list(z), [0.0] * 4
        self.pp = [(2 * WP * h) ** 2] * 4
        self.pp[2] = 1e-2**2
        self.vv = [(10 * WV * h) ** 2] * 4
        self.vv[2] = 1e-5**2
        self.pv = [0.0] * 4

    def predict(self) -> None:
        h = self.p[3]
        for i in range(4):
            q_pos, q_vel = ((WP * h) ** 2, (WV * h) ** 2) if i != 2 else (1e-4, 1e-10)
            pp, pv, vv = self.pp[i], self.pv[i], self.vv[i]
            self.p[i] += self.v[i]
            self.pp[i] = pp + 2 * pv + vv + q_pos
            self.pv[i] = pv + vv
            self.vv[i] = vv + q_vel

    def update(self, z: list[float]) -> None:
        h = self.p[3]
        for i in range(4):
            r = (WP * h) ** 2 if i != 2 else 1e-2
            pp, pv, vv = self.pp[i], self.pv[i], self.vv[i]
            s = pp + r
            k_p, k_v = pp / s, pv / s
            y = z[i] - self.p[i]
            self.p[i] += k_p * y
            self.v[i] += k_v * y
            self.pp[i], self.pv[i], self.vv[i] = (1 - k_p) * pp, (1 - k_p) * pv, vv - k_v * pv

    def mean(self) -> list[float]:
        return self.p + self.v

    def covariance(self) -> np.ndarray:
        cov = np.diag(self.pp + self.vv)
        for i in range(4):
            cov[i, i + 4] = cov[i + 4, i] = self.pv[i]
        return cov


def random_boxes(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 4) boxes cx, cy, a, h."""
    return np.column_stack(
        [
            rng.uniform(0, 640, n),
            rng.uniform(0, 480, n),
            rng.uniform(0.3, 0.7, n),
            rng.uniform(30, 300, n),
        ]
    )


def test_all_tracks_at_once_match_per_coordinate_textbook_filters() -> None:
    rng = np.random.default_rng(0)
    z0 = random_boxes(rng, 7)
    mean, cov = initiate(z0)
    refs = [ScalarTrack(z.tolist()) for z in z0]
    for _ in range(25):
        mean, cov = predict(mean, cov)
        for ref in refs:
            ref.predict()
        matched = np.flatnonzero(rng.random(len(refs)) < 0.7)  # some tracks are matched
        z = mean[matched, :4] + rng.normal(0, 2, (len(matched), 4)) * [1, 1, 0.01, 1]
        mean[matched], cov[matched] = update(mean[matched], cov[matched], z)
        for i, zi in zip(matched, z, strict=True):
            refs[i].update(zi.tolist())
        for i, ref in enumerate(refs):
            np.testing.assert_allclose(mean[i], ref.mean(), rtol=1e-12, atol=1e-9)
            np.testing.assert_allclose(cov[i], ref.covariance(), rtol=1e-9, atol=1e-12)


def test_update_equals_the_information_form() -> None:
    """Posterior covariance (P^-1 + H^T R^-1 H)^-1 and mean P+ (P^-1 x + H^T R^-1 z): Bayes' rule
    for Gaussians, a formulation the filter does not use."""
    rng = np.random.default_rng(1)
    mean, cov = initiate(random_boxes(rng, 5))
    for _ in range(3):
        mean, cov = predict(mean, cov)
        mean, cov = update(mean, cov, mean[:, :4] + rng.normal(0, 3, (5, 4)) * [1, 1, 0.01, 1])
    mean, cov = predict(mean, cov)
    z = mean[:, :4] + rng.normal(0, 3, (5, 4)) * [1, 1, 0.01, 1]
    new_mean, new_cov = update(mean, cov, z)
    h_mat = np.eye(4, 8)
    for i in range(5):
        h = mean[i, 3]
        r_inv = np.linalg.inv(np.diag(np.square([WP * h, WP * h, 1e-1, WP * h])))
        p_inv = np.linalg.inv(cov[i])
        posterior = np.linalg.inv(p_inv + h_mat.T @ r_inv @ h_mat)
        np.testing.assert_allclose(new_cov[i], posterior, rtol=1e-6, atol=1e-9)
        expected = posterior @ (p_inv @ mean[i] + h_mat.T @ r_inv @ z[i])
        np.testing.assert_allclose(new_mean[i], expected, rtol=1e-9, atol=1e-6)


def test_tracks_are_independent_of_the_batch() -> None:
    rng = np.random.default_rng(2)
    mean, cov = initiate(random_boxes(rng, 6))
    mean, cov = update(*predict(mean, cov, 3), random_boxes(rng, 6))
    batch = predict(mean, cov, 2)
    for i in range(6):
        alone = predict(mean[i : i + 1], cov[i : i + 1], 2)
        np.testing.assert_allclose(batch[0][i], alone[0][0], rtol=1e-15)
        np.testing.assert_allclose(batch[1][i], alone[1][0], rtol=1e-15)


def tracks_in_motion(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Tracks after a few matched frames: velocities and position-velocity correlations."""
    mean, cov = initiate(random_boxes(rng, n))
    for _ in range(3):
        mean, cov = predict(mean, cov)
        mean, cov = update(mean, cov, mean[:, :4] + rng.normal(0, 3, (n, 4)) * [1, 1, 0, 1])
    return mean, cov


@pytest.mark.parametrize("steps", [2, 3, 7, 30])
def test_multi_step_predict_equals_repeated_steps_at_constant_height(steps: int) -> None:
    mean, cov = tracks_in_motion(np.random.default_rng(1), 5)
    mean[:, 7] = 0.0  # no height velocity: the process noise is the same at every step
    single_mean, single_cov = mean, cov
    for _ in range(steps):
        single_mean, single_cov = predict(single_mean, single_cov)
    jump_mean, jump_cov = predict(mean, cov, steps)
    np.testing.assert_allclose(jump_mean, single_mean, rtol=1e-12)
    np.testing.assert_allclose(jump_mean[:, :4], mean[:, :4] + steps * mean[:, 4:], rtol=1e-12)
    np.testing.assert_allclose(jump_cov, single_cov, rtol=1e-10, atol=1e-9)


def test_multi_step_predict_with_growing_box_takes_the_noise_at_the_starting_height() -> None:
    mean, cov = initiate(np.array([[100.0, 100.0, 0.5, 100.0]]))
    mean[0, 4:] = [3.0, -2.0, 0.0, 1.0]  # the height grows 1 px per frame
    single_mean, single_cov = mean, cov
    for _ in range(5):
        single_mean, single_cov = predict(single_mean, single_cov)
    jump_mean, jump_cov = predict(mean, cov, 5)
    np.testing.assert_allclose(jump_mean, single_mean, rtol=1e-12)  # the mean is exact
    np.testing.assert_allclose(jump_cov, single_cov, rtol=0.1)  # noise at the starting height
    assert jump_cov[0, 0, 0] < single_cov[0, 0, 0]


def test_empty_batches() -> None:
    mean, cov = initiate(np.zeros((0, 4)))
    assert mean.shape == (0, 8) and cov.shape == (0, 8, 8)
    for steps in (1, 4):
        m, c = predict(mean, cov, steps)
        assert m.shape == (0, 8) and c.shape == (0, 8, 8)


def test_coordinates_stay_uncorrelated() -> None:
    """What ``update`` relies on to invert S by its diagonal: after any mix of starts, multi-step
    predictions and updates, a coordinate is correlated only with its own velocity (exact zeros
    elsewhere), so S = H P H^T + R is diagonal."""
    rng = np.random.default_rng(5)
    mean, cov = initiate(random_boxes(rng, 6))
    for steps in (1, 3, 1, 7, 2, 1):
        mean, cov = predict(mean, cov, steps)
        mean, cov = update(mean, cov, mean[:, :4] + rng.normal(0, 3, (6, 4)) * [1, 1, 0.01, 1])
    coupled = np.eye(8, dtype=bool) | np.eye(8, k=4, dtype=bool) | np.eye(8, k=-4, dtype=bool)
    assert (cov[:, ~coupled] == 0.0).all()
    assert (cov[:, coupled] != 0.0).all()


def test_works_in_place_on_column_views_of_a_wider_array() -> None:
    """As the tracker calls it: mean and covariance are column views of one track array."""
    rng = np.random.default_rng(6)
    z = random_boxes(rng, 4)
    state = np.full((4, 80), np.nan)
    mean, cov = state[:, 2:10], state[:, 10:74].reshape(-1, 8, 8)
    assert np.shares_memory(cov, state)
    kf.initiate(z, mean, cov)
    kf.predict(mean, cov, 2)
    kf.update(mean, cov, z)
    expected = update(*predict(*initiate(z), 2), z)
    np.testing.assert_array_equal(state[:, 2:10], expected[0])
    np.testing.assert_array_equal(state[:, 10:74].reshape(-1, 8, 8), expected[1])
    assert np.isnan(state[:, :2]).all() and np.isnan(state[:, 74:]).all()  # untouched
