"""StampGuard: glitched header stamps get a plausible tracker time and are reported; good ones pass
unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from yolo_trt_ros.ros.stamps import MAX_LATENCY_S, StampCheck, StampGuard, plausible_latency_ms

RATE = 30.0
START = 1_700_000_000.0  # seconds since the epoch, as a camera stamps


def camera(
    n: int, start: float = START, delay: float = 0.03, seed: int = 0
) -> list[tuple[float, float]]:
    """(stamp, receive) of ``n`` frames at ``RATE`` Hz, received after ``delay`` s plus up to 20 ms
    of jitter."""
    jitter = np.random.default_rng(seed).uniform(0, 0.02, n)
    return [(start + i / RATE, start + i / RATE + delay + j) for i, j in enumerate(jitter)]


def split(stamp: float) -> tuple[int, int]:
    sec = int(stamp // 1)
    return sec, int(round((stamp - sec) * 1e9)) % 1_000_000_000


def run(guard: StampGuard, frames: list[tuple[int, int, float]]) -> list[StampCheck]:
    return [guard.check(sec, nanosec, receive) for sec, nanosec, receive in frames]


def stamped(frames: list[tuple[float, float]]) -> list[tuple[int, int, float]]:
    return [(*split(stamp), receive) for stamp, receive in frames]


def test_good_stamps_pass_unchanged() -> None:
    frames = camera(100)
    checks = run(StampGuard(), stamped(frames))
    assert all(c.glitch is None for c in checks)
    np.testing.assert_allclose([c.time for c in checks], [s for s, _ in frames], atol=1e-6)


def test_a_replayed_recording_with_a_constant_offset_is_good() -> None:
    frames = [
        (stamp - 5 * 365 * 86400, receive) for stamp, receive in camera(50)
    ]  # recorded five years ago
    checks = run(StampGuard(), stamped(frames))
    assert all(c.glitch is None for c in checks)


@pytest.mark.parametrize(
    ("glitch", "sec", "nanosec"),
    [
        ("zero", 0, 0),
        ("jump", int(START) - 3600, 0),  # one hour back
        ("jump", int(START) + 3600 + 60, 0),  # one hour ahead
        ("invalid", int(START) + 1, 2_000_000_000),
        ("backwards", int(START) + 1, 0),  # an older stamp, within the tolerance
    ],
)
def test_one_glitch_between_good_frames_costs_one_typical_interval(
    glitch: str, sec: int, nanosec: int
) -> None:
    frames = stamped(camera(60))
    clean = run(StampGuard(), frames)
    frames[40] = (sec, nanosec, frames[40][2])
    checks = run(StampGuard(), frames)
    assert [i for i, c in enumerate(checks) if c.glitch] == [40]
    assert checks[40].glitch == glitch and checks[40].detail
    assert checks[40].time == pytest.approx(clean[39].time + 1 / RATE, abs=1e-6)
    np.testing.assert_allclose(
        [c.time for c in checks[41:]], [c.time for c in clean[41:]], atol=1e-9
    )


def test_a_clock_that_is_set_forward_becomes_the_new_time_line() -> None:
    frames = camera(30) + [
        (stamp + 3600, receive) for stamp, receive in camera(30, start=START + 1)
    ]
    checks = run(StampGuard(), stamped(frames))
    assert [c.glitch for c in checks[30:32]] == ["jump", None]
    assert all(c.glitch is None for c in checks[32:])
    steps = np.diff([c.time for c in checks])
    np.testing.assert_allclose(
        steps, 1 / RATE, atol=1e-6
    )  # continuous: no hour-long step for the tracker


def test_zero_stamps_throughout_follow_the_receive_clock() -> None:
    receives = [r for _, r in camera(20)]
    checks = run(StampGuard(), [(0, 0, r) for r in receives])
    assert all(c.glitch == "zero" for c in checks)
    np.testing.assert_allclose(np.diff([c.time for c in checks]), np.diff(receives), atol=1e-9)


def test_repeated_stamps_are_glitches_and_time_still_advances() -> None:
    frames = stamped(camera(10))
    repeated = frames[:5] + [(*frames[4][:2], r) for *_, r in frames[5:]]
    checks = run(StampGuard(), repeated)
    assert [c.glitch for c in checks[5:]] == ["backwards"] * 5
    assert np.all(np.diff([c.time for c in checks]) > 0)


def test_reset_forgets_the_time_line() -> None:
    guard = StampGuard()
    run(guard, stamped(camera(5)))
    guard.reset()
    (later,) = run(guard, [(int(START) + 3600, 0, START + 3600.05)])
    assert later.glitch is None and later.time == START + 3600


def test_latency_only_from_good_plausible_stamps() -> None:
    good, glitch = StampCheck(0.0, None), StampCheck(0.0, "zero")
    assert plausible_latency_ms(good, 100.0, 100.025) == pytest.approx(25.0)
    assert plausible_latency_ms(glitch, 100.0, 100.025) is None
    assert plausible_latency_ms(good, 100.0, 99.9) is None  # negative: the stamp is in the future
    assert plausible_latency_ms(good, 100.0, 100.0 + MAX_LATENCY_S + 1) is None
    assert plausible_latency_ms(good, 0.0, START) is None  # years old
