"""Detector end to end with real ONNX Runtime: a generated 3-class 320x256 model and the YOLOv8n
COCO model."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np
import pytest
from onnx import TensorProto

from onnx_models import fixed_output_model
from yolo_trt_ros.detection.detector import Detector, DetectorConfig
from yolo_trt_ros.detection.letterbox import Letterbox
from yolo_trt_ros.inference.base import ModelError
from yolo_trt_ros.inference.onnxruntime import OnnxRuntimeBackend

NAMES_META = {"names": "{0: 'red', 1: 'green', 2: 'blue'}", "imgsz": "[320, 256]"}
# anchors (cx, cy, w, h in input pixels) and (class, weight): score = weight * mean of that class's
# RGB channel
ANCHORS = np.array(
    [
        [100, 100, 40, 60],  # 0 red 0.9
        [102, 101, 40, 60],  # 1 red 0.8, suppressed by 0
        [200, 250, 80, 30],  # 2 red 0.5
        [60, 300, 10, 10],  # 3 red 0.2: below the threshold even on a pure red image
        [100, 100, 40, 60],  # 4 green 1.0, same box as 0: another class, not suppressed by it
        [128, 160, 250, 300],  # 5 blue 0.95
        [250, 10, 30, 40],  # 6 blue 0.6, partly outside the image region
    ],
    np.float32,
)
CLASSES = np.array([0, 0, 0, 0, 1, 2, 2])
WEIGHTS = np.array([0.9, 0.8, 0.5, 0.2, 1.0, 0.95, 0.6], np.float32)


def weights_matrix() -> np.ndarray:
    w = np.zeros((3, len(ANCHORS)), np.float32)
    w[CLASSES, np.arange(len(ANCHORS))] = WEIGHTS
    return w


@pytest.fixture
def tiny_model(tmp_path: Path, make_yolo_onnx) -> Path:
    return make_yolo_onnx(
        tmp_path / "tiny.onnx", ANCHORS, weights_matrix(), (320, 256), NAMES_META
    )


def expected(
    image_hw: tuple[int, int],
    rgb: tuple[int, int, int],
    conf: float = 0.25,
    iou: float = 0.7,
    input_hw: tuple[int, int] = (320, 256),
):
    """What the tiny model must yield, from first principles: letterbox area fractions and box
    arithmetic. The image is scaled to the nominal 320x256 and padded into ``input_hw`` (a
    rectangular input of the dynamic model)."""
    h, w = image_hw
    r = min(320 / h, 256 / w)
    nh, nw = round(h * r), round(w * r)
    top, left = round((input_hw[0] - nh) / 2 - 0.1), round((input_hw[1] - nw) / 2 - 0.1)
    frac = nh * nw / (input_hw[0] * input_hw[1])
    means = [frac * c / 255 + (1 - frac) * 114 / 255 for c in rgb]
    rows = []
    for k, (cx, cy, bw, bh) in enumerate(ANCHORS.tolist()):
        score = WEIGHTS[k] * means[CLASSES[k]]
        if score <= conf:
            continue
        x1, y1, x2, y2 = cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2
        box = [
            (x1 - left) * w / nw,
            (y1 - top) * h / nh,
            (x2 - left) * w / nw,
            (y2 - top) * h / nh,
        ]
        box = [min(max(v, 0.0), lim) for v, lim in zip(box, (w, h, w, h), strict=True)]
        rows.append((k, score, CLASSES[k], box))
    if iou < 1 and any(r[0] == 0 for r in rows):
        rows = [
            r for r in rows if r[0] != 1
        ]  # anchor 1 overlaps anchor 0 (same class) with IoU ~0.9
    rows.sort(key=lambda r: -r[1])
    return rows


def check(dets, rows) -> None:
    assert dets.class_ids.tolist() == [r[2] for r in rows]
    np.testing.assert_allclose(
        dets.scores, [r[1] for r in rows], rtol=2e-4
    )  # float32 ReduceMean over the input
    np.testing.assert_allclose(
        dets.boxes, np.array([r[3] for r in rows]).reshape(-1, 4), atol=1e-3
    )


@pytest.mark.parametrize(
    "image_hw, rgb",
    [
        ((640, 512), (255, 0, 0)),  # scale 0.5, no padding: pure red
        (
            (480, 640),
            (255, 255, 0),
        ),  # landscape into the portrait input: scale 0.4, 64 px top/bottom padding
        ((1000, 300), (200, 30, 250)),  # tall: side padding
        ((77, 61), (255, 255, 255)),  # upscaled
    ],
)
def test_custom_model_boxes_in_original_pixels(tiny_model: Path, image_hw, rgb) -> None:
    detector = Detector.from_model(tiny_model)
    assert detector.names == ["red", "green", "blue"] and detector.names_source == "metadata"
    assert detector.backend.input_shape == (1, 3, 320, 256)
    rgb_image = np.empty((*image_hw, 3), np.uint8)
    rgb_image[:] = rgb
    rows = expected(image_hw, rgb)
    assert rows, "the case must produce detections"
    check(detector(rgb_image, "rgb8"), rows)
    check(detector(np.ascontiguousarray(rgb_image[:, :, ::-1]), "bgr8"), rows)
    rgba = np.concatenate([rgb_image, np.full((*image_hw, 1), 7, np.uint8)], axis=2)
    check(detector(rgba, "rgba8"), rows)


def test_custom_model_mono_and_float16(tmp_path: Path, make_yolo_onnx) -> None:
    path = make_yolo_onnx(
        tmp_path / "fp16.onnx",
        ANCHORS,
        weights_matrix(),
        (320, 256),
        NAMES_META,
        input_type=TensorProto.FLOAT16,
    )
    detector = Detector.from_model(path)
    assert detector.backend.input_dtype == np.float16
    gray = np.full((480, 640), 200, np.uint8)
    rows = expected((480, 640), (200, 200, 200))
    dets = detector(gray, "mono8")
    assert dets.class_ids.tolist() == [r[2] for r in rows]
    np.testing.assert_allclose(
        dets.scores, [r[1] for r in rows], rtol=2e-3
    )  # float16 input precision
    np.testing.assert_allclose(dets.boxes, np.array([r[3] for r in rows]), atol=1e-3)


def test_dynamic_custom_model_at_its_nominal_size(tmp_path: Path, make_yolo_onnx) -> None:
    path = make_yolo_onnx(
        tmp_path / "dyn.onnx", ANCHORS, weights_matrix(), (320, 256), NAMES_META, dynamic=True
    )
    detector = Detector.from_model(path, rect=False)  # square: the default is rectangular
    assert detector.backend.input_shape == (1, 3, 320, 256)
    image = np.full((480, 640, 3), 255, np.uint8)
    check(detector(image), expected((480, 640), (255, 255, 255)))


def test_config_thresholds_allow_list_and_agnostic(tiny_model: Path) -> None:
    white = np.full((640, 512, 3), 255, np.uint8)
    detector = Detector.from_model(tiny_model, config=DetectorConfig(classes=("blue", "green")))
    assert set(detector(white).class_ids.tolist()) == {1, 2}
    detector.set_config(DetectorConfig(conf_threshold=0.85))
    assert detector(white).scores.tolist() == pytest.approx([1.0, 0.95, 0.9])
    detector.set_config(
        DetectorConfig(conf_threshold=0.85, agnostic_nms=True)
    )  # green box 4 suppresses red 0
    assert detector(white).class_ids.tolist() == [1, 2]
    detector.set_config(DetectorConfig(max_detections=2))
    assert len(detector(white)) == 2
    detector.set_config(DetectorConfig(iou_threshold=1.0))  # nothing suppressed
    assert len(detector(white)) == 6


@pytest.mark.parametrize(
    "config, match",
    [
        (DetectorConfig(conf_threshold=1.5), "conf_threshold must be in \\[0, 1\\], got 1.5"),
        (DetectorConfig(iou_threshold=-0.1), "iou_threshold"),
        (DetectorConfig(conf_threshold=float("nan")), "conf_threshold"),
        (DetectorConfig(max_detections=0), "max_detections"),
        (DetectorConfig(max_detections=2.5), "max_detections"),  # type: ignore[arg-type]
        (DetectorConfig(classes=("red", "purple")), "unknown class 'purple'"),
    ],
)
def test_set_config_rejects_bad_values(
    tiny_model: Path, config: DetectorConfig, match: str
) -> None:
    detector = Detector.from_model(tiny_model)
    before = detector.config
    with pytest.raises(ValueError, match=match):
        detector.set_config(config)
    assert detector.config is before


def test_from_model_unknown_class_is_model_error(tiny_model: Path) -> None:
    with pytest.raises(ModelError, match="unknown class 'cat'") as info:
        Detector.from_model(tiny_model, config=DetectorConfig(classes=("cat",)))
    assert str(tiny_model) in str(info.value)


def test_names_count_mismatch(tmp_path: Path, make_yolo_onnx) -> None:
    meta = {"names": "{0: 'red', 1: 'green'}"}
    path = make_yolo_onnx(tmp_path / "two_names.onnx", ANCHORS, weights_matrix(), (320, 256), meta)
    with pytest.raises(
        ModelError, match="2 class names given but the model outputs 3 classes"
    ) as info:
        Detector.from_model(path)
    assert str(path) in str(info.value)
    with pytest.raises(ModelError, match="2 class names given but the model outputs 3"):
        Detector(OnnxRuntimeBackend(path), ["a", "b"])


def test_names_file_overrides_metadata(tiny_model: Path, tmp_path: Path) -> None:
    names = tmp_path / "names.txt"
    names.write_text("r\ng\nb\n")
    detector = Detector.from_model(tiny_model, names_file=str(names))
    assert detector.names == ["r", "g", "b"] and detector.names_source == "names_file"
    names.write_text("r\ng\n")
    with pytest.raises(ModelError, match="2 names but model .* outputs 3 classes") as info:
        Detector.from_model(tiny_model, names_file=names)
    assert str(names) in str(info.value) and str(tiny_model) in str(info.value)
    with pytest.raises(ModelError, match="cannot be read"):
        Detector.from_model(tiny_model, names_file=tmp_path / "missing.yaml")


def test_backend_options_reach_the_backend(tiny_model: Path) -> None:
    detector = Detector.from_model(
        tiny_model, backend_options={"onnxruntime": {"intra_op_threads": 1}}
    )
    assert detector.backend._session.get_session_options().intra_op_num_threads == 1


class FrameBackendProbe:
    """An ONNX Runtime backend exposing the optional ``infer_image`` path; records which path the
    detector took."""

    def __init__(self, path: Path, gpu_preprocessing: bool) -> None:
        self._ort = OnnxRuntimeBackend(path)
        self.name, self.model_path, self.metadata = "probe", path, self._ort.metadata
        self.input_shape, self.input_dtype = self._ort.input_shape, self._ort.input_dtype
        self.output_shape = self._ort.output_shape
        self.dynamic_hw = self._ort.dynamic_hw
        self.max_batch = self._ort.max_batch
        self.gpu_preprocessing = gpu_preprocessing
        self.calls: list[str] = []

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        self.calls.append("infer")
        return self._ort.infer(tensor)

    def infer_image(
        self, image: np.ndarray, encoding: str, conf_threshold: float | None, stride: int | None
    ):
        self.calls.append(f"infer_image {encoding} {conf_threshold} {stride}")
        letterbox = Letterbox(self.input_shape[2:], self.input_dtype, stride=stride)
        tensor, transform = letterbox(image, encoding)
        output = self._ort.infer(tensor)
        if conf_threshold is None:
            return output, transform
        keep = output[0, 4:].max(axis=0) > conf_threshold  # candidates, as the GPU compaction
        return np.ascontiguousarray(output[:, :, keep]), transform

    def infer_images(
        self,
        frames: list[tuple[np.ndarray, str]],
        conf_threshold: float | None,
        stride: int | None,
    ):
        return [self.infer_image(image, enc, conf_threshold, stride) for image, enc in frames]

    def close(self) -> None:
        self._ort.close()


@pytest.mark.parametrize("gpu_preprocessing", [True, False])
def test_frame_backend_path(tiny_model: Path, gpu_preprocessing: bool) -> None:
    backend = FrameBackendProbe(tiny_model, gpu_preprocessing)
    config = DetectorConfig(conf_threshold=0.3)
    reference = Detector.from_model(tiny_model, config=config)
    detector = Detector(backend, reference.names, config)
    image = np.zeros((200, 300, 3), np.uint8)
    image[:, :] = (255, 0, 255)  # rgb8: red and blue anchors fire
    dets, want = detector(image, "rgb8"), reference(image, "rgb8")
    assert backend.calls == (["infer_image rgb8 0.3 None"] if gpu_preprocessing else ["infer"])
    assert len(want) >= 2
    np.testing.assert_allclose(dets.boxes, want.boxes, atol=1e-4)
    np.testing.assert_allclose(dets.scores, want.scores, atol=1e-6)
    np.testing.assert_array_equal(dets.class_ids, want.class_ids)
    if gpu_preprocessing:
        assert detector.last_times.preprocess == 0.0 and detector.last_times.infer > 0


def test_gpu_compaction_only_for_one_to_many_outputs(tmp_path: Path) -> None:
    """The GPU candidate compaction is written for [1, 4+nc, N]: an end-to-end [1, K, 6] output
    is letterboxed on the GPU too but comes back whole (no threshold), decoded by its layout."""
    rows = np.zeros((1, 300, 6), np.float32)
    rows[0, 0] = (10, 20, 110, 220, 0.9, 0)
    path = fixed_output_model(
        tmp_path / "e2e.onnx", rows, (640, 640), {"end2end": "True", "names": "{0: 'person'}"}
    )
    backend = FrameBackendProbe(path, gpu_preprocessing=True)
    detector = Detector(backend, ["person"])
    dets = detector(np.zeros((640, 640, 3), np.uint8))
    assert backend.calls == ["infer_image bgr8 None None"]
    assert dets.class_ids.tolist() == [0]
    np.testing.assert_allclose(dets.boxes, [[10, 20, 110, 220]])


def test_frame_backend_letterboxes_rectangles_for_a_dynamic_model(
    small_dynamic_model: Path, mot_dir: Path
) -> None:
    """A dynamic-H/W model on the GPU path: the frame backend is asked for the rectangular
    letterbox (the model's largest stride) and detects what the CPU path does."""
    path = small_dynamic_model
    backend = FrameBackendProbe(path, gpu_preprocessing=True)
    reference = Detector.from_model(path)
    detector = Detector(backend, reference.names)
    frame = cv2.imread(str(sorted((mot_dir / "img1").glob("*.jpg"))[0]))
    dets, want = detector(frame), reference(frame)
    assert detector.rect and backend.calls == ["infer_image bgr8 0.25 32"]
    assert len(want) > 3
    np.testing.assert_allclose(dets.boxes, want.boxes, atol=1e-4)
    np.testing.assert_array_equal(dets.class_ids, want.class_ids)


def test_fallback_names_when_model_has_none(tmp_path: Path, make_yolo_onnx) -> None:
    path = make_yolo_onnx(tmp_path / "anon.onnx", ANCHORS, weights_matrix(), (320, 256), {})
    detector = Detector.from_model(path)
    assert (
        detector.names == ["class_0", "class_1", "class_2"] and detector.names_source == "fallback"
    )


def test_bad_metadata_names(tmp_path: Path, make_yolo_onnx) -> None:
    path = make_yolo_onnx(
        tmp_path / "bad.onnx", ANCHORS, weights_matrix(), (320, 256), {"names": "{0: 'a'"}
    )
    with pytest.raises(ModelError, match="metadata 'names'") as info:
        Detector.from_model(path)
    assert str(path) in str(info.value)


def test_unknown_backend_and_missing_model(tmp_path: Path, tiny_model: Path) -> None:
    with pytest.raises(ModelError, match="unknown backend 'cuda'"):
        Detector.from_model(tiny_model, backend="cuda")
    with pytest.raises(ModelError, match="file not found"):
        Detector.from_model(tmp_path / "missing.onnx")


def test_real_model_on_mot_frame(model_path: Path, mot_dir: Path) -> None:
    frame = cv2.imread(str(mot_dir / "img1" / "000001.jpg"))
    assert frame.shape == (480, 640, 3)
    detector = Detector.from_model(model_path)
    assert detector.last_times.total == 0.0
    dets = detector(frame)
    times = detector.last_times
    assert times.preprocess > 0 and times.infer > 0 and times.postprocess > 0
    assert times.total == pytest.approx(times.preprocess + times.infer + times.postprocess)
    people = dets.class_ids == 0
    assert people.sum() >= 2  # two pedestrians in front (more in the back, below 0.25)
    assert (
        (dets.boxes[:, [0, 2]] <= 640).all()
        and (dets.boxes[:, [1, 3]] <= 480).all()
        and (dets.boxes >= 0).all()
    )
    assert (np.diff(dets.scores) <= 0).all() and (dets.scores > 0.25).all()

    detector.set_config(DetectorConfig(classes=("person",)))
    only_people = detector(frame)
    assert (only_people.class_ids == 0).all() and len(only_people) >= people.sum()

    gray = detector(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), "mono8")
    assert (gray.class_ids == 0).sum() >= 1
    with pytest.raises(ValueError, match="shape"):
        detector(frame, "mono8")
    detector.close()
    with pytest.raises(RuntimeError, match="closed"):
        detector(frame)


def recorded_input_shapes(detector: Detector) -> list[tuple[int, ...]]:
    """Wrap the detector's backend so that each inferred tensor's shape is recorded."""
    shapes: list[tuple[int, ...]] = []
    infer = detector.backend.infer

    def record(tensor: np.ndarray) -> np.ndarray:
        shapes.append(tensor.shape)
        return infer(tensor)

    detector.backend.infer = record  # type: ignore[method-assign]
    return shapes


@pytest.mark.parametrize(
    "image_hw, rgb, input_hw",
    [
        ((480, 640), (255, 255, 255), (192, 256)),  # scale 0.4: exactly 192x256, no padding
        ((450, 640), (255, 200, 255), (192, 256)),  # 180 rows padded to 192 (6 top, 6 bottom)
        ((640, 400), (230, 255, 255), (320, 224)),  # 200 columns padded to 224
    ],
)
def test_rect_input_for_dynamic_model(
    tmp_path: Path, make_yolo_onnx, image_hw, rgb, input_hw
) -> None:
    path = make_yolo_onnx(
        tmp_path / "dyn.onnx", ANCHORS, weights_matrix(), (320, 256), NAMES_META, dynamic=True
    )
    detector = Detector.from_model(path, config=DetectorConfig(iou_threshold=1.0), rect=True)
    assert detector.backend.input_shape == (1, 3, 320, 256)  # the nominal size is unchanged
    shapes = recorded_input_shapes(detector)
    image = np.empty((*image_hw, 3), np.uint8)
    image[:] = rgb[::-1]
    rows = expected(image_hw, rgb, iou=1.0, input_hw=input_hw)
    assert rows, "the case must produce detections"
    check(detector(image), rows)
    assert shapes == [(1, 3, *input_hw)]


def test_rect_keeps_the_nominal_input_for_static_models_and_when_off(
    tiny_model: Path, tmp_path: Path, make_yolo_onnx
) -> None:
    image = np.full((480, 640, 3), 255, np.uint8)
    dynamic_model = make_yolo_onnx(
        tmp_path / "dyn.onnx", ANCHORS, weights_matrix(), (320, 256), NAMES_META, dynamic=True
    )
    for detector in (
        Detector.from_model(tiny_model, rect=True),
        Detector.from_model(dynamic_model, rect=False),
    ):
        shapes = recorded_input_shapes(detector)
        check(detector(image), expected((480, 640), (255, 255, 255)))
        assert shapes == [(1, 3, 320, 256)]


def test_real_dynamic_model_rect_vs_square(data_dir: Path, mot_dir: Path) -> None:
    """The shared dynamic YOLOv8n: a 640x480 frame runs at 640x480 and a 768x432 one at 640x384;
    the confident detections are those of the square input."""
    model = data_dir / "models" / "yolov8n-coco-dynamic.onnx"
    square, rect = Detector.from_model(model, rect=False), Detector.from_model(model)
    shapes = recorded_input_shapes(rect)
    frame = cv2.imread(str(mot_dir / "img1" / "000001.jpg"))
    wide = cv2.resize(frame, (768, 432), interpolation=cv2.INTER_LINEAR)
    for image in (frame, wide):
        a, b = square(image), rect(image)
        confident_a, confident_b = a.scores > 0.5, b.scores > 0.5
        assert confident_a.sum() == confident_b.sum() >= 2
        for box, cls in zip(a.boxes[confident_a], a.class_ids[confident_a], strict=True):
            same = b.boxes[confident_b][b.class_ids[confident_b] == cls]
            assert np.abs(same - box).max(axis=1).min() < 4.0  # pixels
    assert shapes == [(1, 3, 480, 640), (1, 3, 384, 640)]
    square.close(), rect.close()


def test_a_batch_of_frames_of_different_sizes_runs_at_the_nominal_square(
    small_dynamic_model: Path, mot_dir: Path
) -> None:
    """One input shape per batch: frames whose rectangles differ share the model's square input
    (as ``rect=False`` letterboxes them); frames that share a rectangle keep it."""
    path = small_dynamic_model  # nominal 352x352
    detector, square = Detector.from_model(path), Detector.from_model(path, rect=False)
    frame = cv2.imread(str(sorted((mot_dir / "img1").glob("*.jpg"))[0]))
    wide = cv2.resize(frame, (1280, 720))
    shapes = recorded_input_shapes(detector)
    try:
        mixed = detector.detect_batch([(frame, "bgr8"), (wide, "bgr8")])
        for image, got in zip((frame, wide), mixed, strict=True):
            want = square(image)
            assert len(want) > 3 and got.class_ids.tolist() == want.class_ids.tolist()
            np.testing.assert_allclose(got.boxes, want.boxes, atol=1e-3)
        same = detector.detect_batch([(frame, "bgr8"), (frame, "bgr8")])
        assert shapes == [(2, 3, 352, 352), (2, 3, 288, 352)]
        assert same[0].boxes.tolist() == same[1].boxes.tolist() == detector(frame).boxes.tolist()
        assert detector.last_times.infer > 0
    finally:
        detector.close()
        square.close()


def test_parallel_runs_from_two_threads_equal_one_at_a_time(
    small_dynamic_model: Path, mot_dir: Path
) -> None:
    """Two threads detecting at once (same input shape, other images: each needs its own
    letterbox buffers) get what one thread gets, each its own ``last_times``, and a config set
    between their calls applies to the next calls of both."""
    detector = Detector.from_model(
        small_dynamic_model,
        backend_options={"onnxruntime": {"intra_op_threads": 1, "parallel_runs": 2}},
    )
    assert detector.parallel_runs == 2 and detector.batch_size == 1  # the default with runs
    detector.batch_size = 2  # each run a batch: the batch letterboxes are per thread as well
    frame = cv2.imread(str(sorted((mot_dir / "img1").glob("*.jpg"))[0]))
    batches = [
        [(frame, "bgr8"), (frame[:, ::-1].copy(), "bgr8")],
        [(frame[::-1].copy(), "bgr8"), (frame[::-1, ::-1].copy(), "bgr8")],
    ]
    configs = DetectorConfig(), DetectorConfig(conf_threshold=0.6)

    def alone(config: DetectorConfig) -> list[list[list]]:
        detector.set_config(config)
        return [[d.boxes.tolist() for d in detector.detect_batch(b)] for b in batches]

    try:
        want = [alone(config) for config in configs]
        assert want[0] != want[1]
        detector.set_config(configs[0])
        got: list[list[list[list]]] = [[], []]
        times: list[list[float]] = [[], []]
        reached, applied = threading.Barrier(3), threading.Barrier(3)

        def run(i: int) -> None:
            for call in range(6):
                if call == 3:
                    reached.wait(), applied.wait()
                got[i].append([d.boxes.tolist() for d in detector.detect_batch(batches[i])])
                times[i].append(detector.last_times.infer)

        threads = [threading.Thread(target=run, args=(i,)) for i in (0, 1)]
        for thread in threads:
            thread.start()
        reached.wait()
        detector.set_config(configs[1])
        applied.wait()
        for thread in threads:
            thread.join()
        for i in (0, 1):
            assert got[i] == [want[0][i]] * 3 + [want[1][i]] * 3
            assert len(set(times[i])) == 6 and min(times[i]) > 0
    finally:
        detector.close()
