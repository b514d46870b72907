"""MOT evaluation glue: detections loading, MOTChallenge filtering rules, metrics sanity, the
eval-mot command."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from yolo_trt_ros.evaluation import mot as mot_eval
from yolo_trt_ros.evaluation.mot_format import MotRow

GOLDEN = Path(__file__).resolve().parents[1] / "golden"
FRAMES = 48


def gt_rows(mot_dir: Path) -> np.ndarray:
    return np.loadtxt(mot_dir / "gt" / "gt.txt", delimiter=",")


def as_rows(gt: np.ndarray, ids: np.ndarray | None = None) -> list[MotRow]:
    ids = gt[:, 1] if ids is None else ids
    return [
        MotRow(int(r[0]), int(i), r[2], r[3], r[4], r[5], 1.0)
        for r, i in zip(gt, ids, strict=True)
    ]


def pedestrians(gt: np.ndarray) -> np.ndarray:
    return gt[(gt[:, 0] <= FRAMES) & (gt[:, 6] == 1) & (gt[:, 7] == 1)]


def test_load_detections_normalises_scores_and_groups_frames(tmp_path: Path) -> None:
    det = tmp_path / "det.txt"
    det.write_text(
        "1,-1,10,20,30,40,-0.5,-1,-1,-1\n1,-1,0,0,5,5,1.5,-1,-1,-1\n3,-1,1,2,3,4,0.5,-1,-1,-1\n"
    )
    frames = mot_eval.load_detections(det, 4)
    assert [len(s) for _, s in frames] == [2, 0, 1, 0]
    np.testing.assert_allclose(frames[0][1], [0.0, 1.0])
    np.testing.assert_allclose(frames[2][1], [0.5])
    np.testing.assert_allclose(frames[0][0][0], [10, 20, 40, 60])  # x, y, w, h -> x1, y1, x2, y2
    assert frames[0][0].dtype == np.float32 and frames[1][0].shape == (0, 4)


def test_perfect_tracker_scores_one(mot_dir: Path) -> None:
    scores = mot_eval.evaluate(
        mot_dir / "gt" / "gt.txt", {"perfect": as_rows(pedestrians(gt_rows(mot_dir)))}, FRAMES
    )
    s = scores["perfect"]
    assert (
        s.mota == pytest.approx(1.0)
        and s.idf1 == pytest.approx(1.0)
        and s.hota == pytest.approx(1.0)
    )
    assert s.id_switches == 0 and s.false_positives == 0 and s.misses == 0 and s.gt_tracks == 10


def test_distractors_are_not_false_positives_but_vehicles_are(mot_dir: Path) -> None:
    gt = gt_rows(mot_dir)
    gt = gt[gt[:, 0] <= FRAMES]
    perfect = as_rows(pedestrians(gt))
    distractors = gt[np.isin(gt[:, 7], (2, 7, 8, 12))]
    vehicles = gt[gt[:, 7] == 3]  # cars (flag 0): not pedestrians, not distractors
    assert len(distractors) and len(vehicles)
    extra_ids = np.arange(1000, 1000 + len(distractors))
    scores = mot_eval.evaluate(
        mot_dir / "gt" / "gt.txt",
        {
            "on_distractors": perfect + as_rows(distractors, extra_ids),
            "on_vehicles": perfect + as_rows(vehicles, np.arange(2000, 2000 + len(vehicles))),
        },
        FRAMES,
    )
    assert scores["on_distractors"].false_positives == 0 and scores[
        "on_distractors"
    ].mota == pytest.approx(1.0)
    assert scores["on_vehicles"].false_positives == len(vehicles)


def test_id_switch_is_counted(mot_dir: Path) -> None:
    gt = pedestrians(gt_rows(mot_dir))
    ids = gt[:, 1].copy()
    person = ids[0]
    ids[(gt[:, 1] == person) & (gt[:, 0] > 24)] = 999  # same person, new id from frame 25
    s = mot_eval.evaluate(mot_dir / "gt" / "gt.txt", {"switch": as_rows(gt, ids)}, FRAMES)[
        "switch"
    ]
    assert s.id_switches == 1 and s.mota < 1.0 and s.idf1 < 1.0 and s.false_positives == 0


def test_our_scores_equal_ultralytics_golden_scores(mot_dir: Path) -> None:
    """Same tracks (parity) must give the same scores; also checks the whole pipeline on all 837
    frames."""
    info = mot_eval.read_seqinfo(mot_dir)
    frames = mot_eval.load_detections(mot_dir / "det" / "det.txt", info.length)
    ours = mot_eval.track_sequence(frames)
    with gzip.open(GOLDEN / "bytetrack_mot16-05_ultralytics.csv.gz", "rt") as f:
        ref = [
            MotRow(
                int(v[0]),
                int(v[1]),
                float(v[2]),
                float(v[3]),
                float(v[4]) - float(v[2]),
                float(v[5]) - float(v[3]),
                float(v[6]),
            )
            for v in (line.split(",") for line in f if line[0].isdigit())
        ]
    scores = mot_eval.evaluate(
        mot_dir / "gt" / "gt.txt", {"ours": ours, "ultralytics": ref}, info.length
    )
    a, b = scores["ours"], scores["ultralytics"]
    assert (a.id_switches, a.false_positives, a.misses, a.tracks) == (
        b.id_switches,
        b.false_positives,
        b.misses,
        b.tracks,
    )
    assert a.hota == pytest.approx(b.hota, abs=1e-4) and a.idf1 == pytest.approx(b.idf1, abs=1e-4)
    assert 0.1 < a.mota < 0.5 and 0.1 < a.idf1 < 0.5  # DPM public detections: a hard sequence
