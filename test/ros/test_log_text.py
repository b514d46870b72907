"""printable: outside text in log lines is bounded and cannot forge lines."""

from __future__ import annotations

from yolo_trt_ros.ros.log_text import MAX_LOGGED_CHARS, printable


def test_plain_text_is_unchanged() -> None:
    assert printable("camera_optical") == "camera_optical"
    assert printable("kamera_ü_光") == "kamera_ü_光"


def test_control_characters_are_escaped() -> None:
    forged = "cam\n[ERROR] [0.0] [yolo_tracker]: fake\r\x1b[31m\u2028\x00"
    shown = printable(forged)
    assert (
        "\n" not in shown and "\r" not in shown and "\x1b" not in shown and "\u2028" not in shown
    )
    assert shown == "cam\\n[ERROR] [0.0] [yolo_tracker]: fake\\r\\x1b[31m\\u2028\\x00"


def test_long_text_is_cut_and_says_how_much_is_missing() -> None:
    shown = printable("x" * (1 << 20))
    assert shown.startswith("x" * MAX_LOGGED_CHARS)
    assert shown.endswith(f"...[{(1 << 20) - MAX_LOGGED_CHARS} more characters]")
    assert len(shown) < MAX_LOGGED_CHARS + 40
    assert printable("abcdef", limit=3) == "abc...[3 more characters]"


def test_problem_log_logs_each_key_at_most_once_per_period(monkeypatch) -> None:
    from yolo_trt_ros.ros import log_text

    now = [100.0]
    monkeypatch.setattr(log_text.time, "monotonic", lambda: now[0])
    errors: list[str] = []
    warnings: list[str] = []
    log = log_text.ProblemLog(errors.append, warnings.append, period_s=10.0)
    log("rejected.zero_size", 1, "dropped bad frame", details="more")
    log("rejected.zero_size", 2, "dropped bad frame")
    log("stamp_glitches.zero", 1, "stamp glitch", error=False)
    now[0] += 10.0
    log("rejected.zero_size", 3, "dropped bad frame")
    assert errors == [
        "dropped bad frame [rejected.zero_size: 1 so far; logged at most every 10 s]\nmore",
        "dropped bad frame [rejected.zero_size: 3 so far; logged at most every 10 s]",
    ]
    assert warnings == ["stamp glitch [stamp_glitches.zero: 1 so far; logged at most every 10 s]"]
