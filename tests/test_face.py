"""Face pipeline on real data: MediaPipe detection on real photos and video frames, cropping, the
committed local FER-2013 model (shape, probabilities, accuracy on real test images), backend choice."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from realtime.config import PROJECT_ROOT, Settings
from realtime.face import FaceBox, FaceDetector, LocalFaceClassifier, crop_face, load_face_classifier
from realtime.labels import LABELS

LOCAL_WEIGHTS = PROJECT_ROOT / "weights" / "face_local.onnx"
PER_CLASS = 50  # 350 FER-2013 test images, the first 50 of every class by file name


@pytest.fixture(scope="module")
def detector() -> Iterator[FaceDetector]:
    detector = FaceDetector(min_confidence=0.5)
    yield detector
    detector.close()


@pytest.fixture(scope="module")
def classifier() -> LocalFaceClassifier:
    return LocalFaceClassifier.load(LOCAL_WEIGHTS, threads=2)


def _image(media_dir: Path, name: str) -> np.ndarray:
    image = cv2.imread(str(media_dir / name))
    assert image is not None, f"cannot read {name}"
    return image


def mjpeg_frames(path: Path) -> list[bytes]:
    """The JPEG images of an MJPEG stream, split on the SOI (FFD8) and EOI (FFD9) markers."""
    data, frames, start = path.read_bytes(), [], 0
    while (soi := data.find(b"\xff\xd8", start)) >= 0 and (eoi := data.find(b"\xff\xd9", soi)) >= 0:
        frames.append(data[soi : eoi + 2])
        start = eoi + 2
    return frames


# ------------------------------------------------------------------------------------ detector


def test_one_face_in_obama_photo_over_the_face(detector: FaceDetector, media_dir: Path) -> None:
    image = _image(media_dir, "obama_640x480.jpg")
    boxes = detector.detect(image)
    assert len(boxes) == 1
    box = boxes[0]
    assert 0.38 < box.x + box.w / 2 < 0.66 and 0.05 < box.y + box.h / 2 < 0.45
    assert 0.1 < box.w < 0.4 and 0.1 < box.h < 0.45 and box.score > 0.8
    x0, y0, x1, y1 = box.to_pixels(image.shape)
    assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 480


def test_two_faces_largest_first_and_none_on_dogs(detector: FaceDetector, media_dir: Path) -> None:
    boxes = detector.detect(_image(media_dir, "two_people.jpg"))
    assert len(boxes) == 2
    assert boxes[0].area >= boxes[1].area
    assert detector.detect(_image(media_dir, "dogs.jpg")) == []


def test_faces_in_hamilton_video_frames_are_classified(
    detector: FaceDetector, classifier: LocalFaceClassifier, media_dir: Path
) -> None:
    frames = mjpeg_frames(media_dir / "hamilton_640x480_15fps.mjpeg")
    assert len(frames) > 100  # 9 s at 15 fps
    sampled = [cv2.imdecode(np.frombuffer(f, np.uint8), cv2.IMREAD_COLOR) for f in frames[::30]]
    crops = [crop_face(image, boxes[0]) for image in sampled if (boxes := detector.detect(image))]
    assert len(crops) >= len(sampled) - 1, f"a face in only {len(crops)} of {len(sampled)} frames"
    probs = classifier.predict_batch(crops)
    assert probs.shape == (len(crops), len(LABELS))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)


def test_detector_is_usable_from_several_threads(detector: FaceDetector, media_dir: Path) -> None:
    image = _image(media_dir, "obama_640x480.jpg")
    counts: list[int] = []
    threads = [
        threading.Thread(target=lambda: counts.extend(len(detector.detect(image)) for _ in range(3)))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counts == [1] * 9


def test_closed_detector_refuses_to_detect(media_dir: Path) -> None:
    image = _image(media_dir, "obama_640x480.jpg")
    detector = FaceDetector()
    assert len(detector.detect(image)) == 1
    detector.close()
    with pytest.raises(RuntimeError, match="closed"):
        detector.detect(image)


# -------------------------------------------------------------------------------------- crops


def test_crop_is_square_with_margin() -> None:
    image = np.zeros((400, 800, 3), np.uint8)
    box = FaceBox(x=0.4, y=0.4, w=0.1, h=0.2, score=0.9)  # 80 x 80 px centred at (360, 200)
    assert crop_face(image, box, margin=0.0).shape == (80, 80, 3)
    assert crop_face(image, box, margin=0.25).shape == (120, 120, 3)


def test_crop_is_clipped_at_the_border() -> None:
    image = np.arange(100 * 100, dtype=np.uint16).reshape(100, 100).astype(np.uint8)
    crop = crop_face(image, FaceBox(x=0.0, y=0.0, w=0.2, h=0.2, score=1.0), margin=0.5)
    assert crop.shape == (30, 30)  # a 40 px square centred at (10, 10), cut at 0
    np.testing.assert_array_equal(crop, image[:30, :30])
    assert crop_face(image, FaceBox(x=0.99, y=0.99, w=0.01, h=0.01, score=1.0)).size > 0


# --------------------------------------------------------------------------- local classifier


def test_local_probabilities_for_gray_and_bgr_crops_of_any_size(classifier: LocalFaceClassifier) -> None:
    rng = np.random.default_rng(0)
    crops = [
        rng.integers(0, 256, (48, 48), dtype=np.uint8),
        rng.integers(0, 256, (211, 163, 3), dtype=np.uint8),
        rng.integers(0, 256, (7, 5, 3), dtype=np.uint8),
    ]
    probs = classifier.predict_batch(crops)
    assert probs.shape == (3, len(LABELS)) and probs.dtype == np.float32
    assert (probs >= 0).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert classifier.predict_batch([]).shape == (0, len(LABELS))
    assert classifier.name == "local:face_local.onnx"


def test_gray_and_bgr_versions_of_a_face_agree(classifier: LocalFaceClassifier, fer2013_dir: Path) -> None:
    path = sorted((fer2013_dir / "test" / "happy").iterdir())[0]
    gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    np.testing.assert_allclose(classifier.predict_batch([gray]), classifier.predict_batch([bgr]), atol=1e-6)


def test_local_rejects_non_image_input(classifier: LocalFaceClassifier) -> None:
    with pytest.raises(ValueError, match="uint8"):
        classifier.predict_batch([np.zeros((48, 48), np.float32)])


def test_committed_model_accuracy_on_real_fer2013_test_images(
    classifier: LocalFaceClassifier, fer2013_dir: Path
) -> None:
    paths, labels = [], []
    for index, label in enumerate(LABELS):
        files = sorted((fer2013_dir / "test" / label).iterdir())[:PER_CLASS]
        paths += files
        labels += [index] * len(files)
    probs = classifier.predict_batch([cv2.imread(str(p), cv2.IMREAD_COLOR) for p in paths])
    top1 = float((probs.argmax(axis=1) == np.asarray(labels)).mean())
    print(
        f"\nlocal face model: top-1 {top1:.3f} on {len(paths)} FER-2013 test images ({PER_CLASS} per class)"
    )
    assert top1 >= 0.45  # chance is 1/7


def test_pt_only_is_exported_to_onnx_once(tmp_path: Path) -> None:
    shutil.copy(PROJECT_ROOT / "weights" / "face_local.pt", tmp_path / "face_local.pt")
    target = tmp_path / "face_local.onnx"
    LocalFaceClassifier.load(target)
    assert target.exists()
    exported_at = target.stat().st_mtime_ns
    LocalFaceClassifier.load(target)
    assert target.stat().st_mtime_ns == exported_at


def test_stale_onnx_is_re_exported_from_its_pt(tmp_path: Path) -> None:
    shutil.copy(PROJECT_ROOT / "weights" / "face_local.pt", tmp_path / "face_local.pt")
    target = tmp_path / "face_local.onnx"
    shutil.copy(PROJECT_ROOT / "tests" / "fixtures" / "hsemotion_standin_b2_7.json", target)  # not this .pt's
    classifier = LocalFaceClassifier.load(target)
    assert classifier.predict_batch([np.zeros((48, 48), dtype=np.uint8)]).shape == (1, 7)


def test_corrupt_onnx_without_pt_is_a_clear_error(tmp_path: Path) -> None:
    target = tmp_path / "face_local.onnx"
    target.write_bytes(b"not an onnx model")
    with pytest.raises(ValueError, match="not a usable ONNX model"):
        LocalFaceClassifier.load(target)
    classifier, reason = load_face_classifier(_settings(tmp_path, face_model="local", face_local_weights=target))
    assert classifier is None and "not a usable ONNX model" in reason


def test_missing_local_weights_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="face_local"):
        LocalFaceClassifier.load(tmp_path / "face_local.onnx")


# --------------------------------------------------------------------------- backend choice


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    empty_cache = tmp_path / "no-hsemotion"
    empty_cache.mkdir(exist_ok=True)
    return Settings(hsemotion_cache_dir=empty_cache, hsemotion_weights=None, **overrides)


def test_explicit_local(tmp_path: Path) -> None:
    classifier, reason = load_face_classifier(_settings(tmp_path, face_model="local"))
    assert isinstance(classifier, LocalFaceClassifier)
    assert "FACE_MODEL=local" in reason and "face_local.onnx" in reason


def test_explicit_local_with_missing_weights(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "face_local.onnx"
    classifier, reason = load_face_classifier(
        _settings(tmp_path, face_model="local", face_local_weights=missing)
    )
    assert classifier is None
    assert "unavailable" in reason and str(missing) in reason


def test_auto_without_hsemotion_weights_uses_local(tmp_path: Path) -> None:
    classifier, reason = load_face_classifier(_settings(tmp_path, face_model="auto"))
    assert isinstance(classifier, LocalFaceClassifier)
    assert reason.startswith("auto: HSEmotion weights not found") and "using local" in reason


def test_explicit_hsemotion_without_weights_gives_none_and_why(tmp_path: Path) -> None:
    classifier, reason = load_face_classifier(_settings(tmp_path, face_model="hsemotion"))
    assert classifier is None
    assert reason.startswith("FACE_MODEL=hsemotion: HSEmotion unavailable")
