"""Faces: detection (MediaPipe), cropping, and the face-expression classifiers behind one interface.

Backends, chosen by ``FACE_MODEL``:

- ``local``: the project's own CNN trained on FER-2013 by ``eval/train_face.py`` (48 px gray), served
  by ONNX Runtime (:class:`LocalFaceClassifier`);
- ``hsemotion``: HSEmotion ``enet_b2_7`` (``realtime/hsemotion.py``), when its weights are available;
- ``auto``: HSEmotion when its weights file is found, else local.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import cv2
import numpy as np
import onnx
import onnxruntime as ort

from realtime.config import Settings
from realtime.labels import LABELS, NUM_LABELS
from realtime.weights import file_sha256

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from mediapipe.python.solutions.face_detection import FaceDetection


@dataclass(frozen=True)
class FaceBox:
    """A detected face, normalised to the image: top-left ``x, y`` and size ``w, h`` in [0, 1]."""

    x: float
    y: float
    w: float
    h: float
    score: float  # detector confidence

    def to_pixels(self, image_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """``(x0, y0, x1, y1)`` in pixels of an image of ``image_shape`` (H, W[, C]), clipped to it."""
        height, width = image_shape[:2]
        x0 = min(max(round(self.x * width), 0), width - 1)
        y0 = min(max(round(self.y * height), 0), height - 1)
        x1 = min(max(round((self.x + self.w) * width), x0 + 1), width)
        y1 = min(max(round((self.y + self.h) * height), y0 + 1), height)
        return x0, y0, x1, y1

    @property
    def area(self) -> float:
        return self.w * self.h


class FaceDetector:
    """MediaPipe face detection (legacy solution, full-range model bundled in the wheel).

    The full-range model (``model_selection=1``) was chosen by measurement on the project media: it
    finds both faces of ``obama_and_biden.jpg`` and a face in 29 of 30 sampled frames of the Hamilton
    clip, and no face in ``dogs.jpg``; the short-range model misses both faces of the first, finds a
    face in 22 of 30 frames, and reports a false face (score 0.51) on the dogs.

    MediaPipe graphs are not thread-safe, so each thread that calls :meth:`detect` gets its own.
    """

    MODEL_SELECTION = 1

    def __init__(self, min_confidence: float = 0.5) -> None:
        self.min_confidence = min_confidence
        self._local = threading.local()
        self._graphs: list[FaceDetection] = []
        self._lock = threading.Lock()
        self._closed = False

    def _graph(self) -> FaceDetection:
        """This thread's MediaPipe graph, created on first use."""
        if self._closed:
            raise RuntimeError("FaceDetector is closed")
        graph = getattr(self._local, "graph", None)
        if graph is None:
            from mediapipe.python.solutions.face_detection import FaceDetection

            with self._lock:
                if self._closed:
                    raise RuntimeError("FaceDetector is closed")
                graph = FaceDetection(
                    min_detection_confidence=self.min_confidence, model_selection=self.MODEL_SELECTION
                )
                self._graphs.append(graph)
            self._local.graph = graph
        return graph

    def detect(self, image_bgr: np.ndarray) -> list[FaceBox]:
        """Faces in a BGR uint8 image, largest first; ``[]`` when there is none."""
        rgb = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2RGB)
        result = self._graph().process(rgb)
        boxes = [
            _clipped_box(d.location_data.relative_bounding_box, d.score[0]) for d in result.detections or ()
        ]
        return sorted((b for b in boxes if b.area > 0), key=lambda b: b.area, reverse=True)

    def close(self) -> None:
        """Release every thread's graph; later calls to :meth:`detect` raise."""
        with self._lock:
            self._closed = True
            graphs, self._graphs = self._graphs, []
        for graph in graphs:
            graph.close()


def _clipped_box(box: Any, score: float) -> FaceBox:
    """A MediaPipe relative box (which may reach outside the image) clipped to [0, 1]."""
    x0, y0 = max(box.xmin, 0.0), max(box.ymin, 0.0)
    x1, y1 = min(box.xmin + box.width, 1.0), min(box.ymin + box.height, 1.0)
    return FaceBox(x0, y0, max(x1 - x0, 0.0), max(y1 - y0, 0.0), float(score))


def crop_face(image_bgr: np.ndarray, box: FaceBox, margin: float = 0.2) -> np.ndarray:
    """A square crop around ``box``: side = longer box side x (1 + 2 x margin), clipped to the image.

    Near the image border the crop is cut, so it may be non-square. Returns a copy.
    """
    height, width = image_bgr.shape[:2]
    cx, cy = (box.x + box.w / 2) * width, (box.y + box.h / 2) * height
    half = max(box.w * width, box.h * height) * (1 + 2 * margin) / 2
    x0, y0 = max(int(round(cx - half)), 0), max(int(round(cy - half)), 0)
    x1, y1 = min(int(round(cx + half)), width), min(int(round(cy + half)), height)
    x1, y1 = max(x1, min(x0 + 1, width)), max(y1, min(y0 + 1, height))
    return image_bgr[y0:y1, x0:x1].copy()


class FaceClassifier(Protocol):
    name: str  # e.g. "local:face_local.onnx"

    def predict_batch(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Crops (BGR (H, W, 3) or gray (H, W) uint8, any size) -> (N, 7) probabilities in LABELS order."""
        ...


def to_gray(crop: np.ndarray) -> np.ndarray:
    """A gray uint8 image from a gray (H, W), BGR (H, W, 3) or BGRA (H, W, 4) uint8 crop."""
    if (
        crop.dtype != np.uint8
        or crop.ndim not in (2, 3)
        or (crop.ndim == 3 and crop.shape[2] not in (1, 3, 4))
    ):
        raise ValueError(f"expected a BGR (H, W, 3) or gray (H, W) uint8 crop, got {crop.dtype} {crop.shape}")
    if crop.ndim == 2:
        return crop
    if crop.shape[2] == 1:
        return crop[:, :, 0]
    code = cv2.COLOR_BGR2GRAY if crop.shape[2] == 3 else cv2.COLOR_BGRA2GRAY
    return cv2.cvtColor(crop, code)


class LocalFaceClassifier:
    """The project's FER-2013 CNN on ONNX Runtime.

    Crops are converted to what the model was trained on: gray, resized to the model's input size
    (48 px). The network's normalisation and softmax are inside the ONNX graph. Each face is
    classified as the mean of its image and its mirror image (test-time flip, as in validation).
    """

    def __init__(self, session: ort.InferenceSession, name: str) -> None:
        self._session = session
        self._input = session.get_inputs()[0].name
        self.size = int(session.get_inputs()[0].shape[2])
        self.name = name

    @classmethod
    def load(cls, path: Path, threads: int = 1) -> LocalFaceClassifier:
        """Load ``path`` (``.onnx``). When the ``.pt`` beside it is not the one the ``.onnx`` was
        exported from (or there is no ``.onnx``), export the ``.onnx`` from it first."""
        path = Path(path)
        onnx_path, pt_path = path.with_suffix(".onnx"), path.with_suffix(".pt")
        if pt_path.exists() and _exported_from(onnx_path) != file_sha256(pt_path):
            from eval.train_face import export_onnx

            log.info("exporting %s from %s", onnx_path.name, pt_path.name)
            export_onnx(pt_path, onnx_path)
        if not onnx_path.exists():
            raise FileNotFoundError(f"local face weights not found: neither {onnx_path} nor {pt_path} exists")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ONNX Runtime's errors (InvalidProtobuf, Fail, ...) share no base class
            raise ValueError(f"{onnx_path} is not a usable ONNX model ({exc}); re-export it from the .pt") from exc
        labels = session.get_modelmeta().custom_metadata_map.get("labels", "")
        if labels.split(",") != list(LABELS):
            raise ValueError(f"{onnx_path}: label order {labels!r} is not the app's {','.join(LABELS)}")
        return cls(session, f"local:{onnx_path.name}")

    def preprocess(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """Crops -> (N, 1, S, S) float32 gray pixels in 0..255."""
        batch = np.empty((len(crops), 1, self.size, self.size), dtype=np.float32)
        for i, crop in enumerate(crops):
            gray = to_gray(crop)
            if gray.shape != (self.size, self.size):
                shrinking = gray.shape[0] > self.size or gray.shape[1] > self.size
                interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
                gray = cv2.resize(gray, (self.size, self.size), interpolation=interpolation)
            batch[i, 0] = gray
        return batch

    def predict_batch(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        if len(crops) == 0:
            return np.zeros((0, NUM_LABELS), dtype=np.float32)
        pixels = self.preprocess(crops)
        both = np.concatenate([pixels, pixels[..., ::-1]])
        probs = self._session.run(None, {self._input: both})[0]
        mean = (probs[: len(crops)] + probs[len(crops) :]) / 2
        return (mean / mean.sum(axis=1, keepdims=True)).astype(np.float32)


def _exported_from(onnx_path: Path) -> str | None:
    """The sha256 of the ``.pt`` an ``.onnx`` was exported from (None if unknown or unreadable)."""
    if not onnx_path.exists():
        return None
    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception:  # a corrupt file: re-exporting it is the fix
        return None
    return {p.key: p.value for p in model.metadata_props}.get("source_sha256")


def _load_local(settings: Settings, why: str) -> tuple[FaceClassifier | None, str]:
    try:
        classifier = LocalFaceClassifier.load(settings.face_local_weights, threads=settings.model_threads)
    except (FileNotFoundError, ValueError) as exc:
        return None, f"{why}; local face model unavailable: {exc}"
    return classifier, f"{why}; using local ({settings.face_local_weights})"


def load_face_classifier(settings: Settings) -> tuple[FaceClassifier | None, str]:
    """The classifier chosen by ``settings.face_model`` (None when none can be loaded) and why.

    ``hsemotion`` without usable weights gives ``(None, reason)``; it does not fall back to local,
    so that an explicit choice is never silently replaced. ``auto`` falls back to local.
    """
    if settings.face_model == "local":
        return _load_local(settings, "FACE_MODEL=local")

    from realtime.hsemotion import (
        HSEmotionClassifier,
        HSEmotionUnavailable,
        UntrustedWeightsError,
        find_hsemotion_weights,
    )

    unavailable = (HSEmotionUnavailable, UntrustedWeightsError)

    if settings.face_model == "hsemotion":
        try:
            classifier = HSEmotionClassifier.from_settings(settings)
        except unavailable as exc:
            return None, f"FACE_MODEL=hsemotion: HSEmotion unavailable: {exc}"
        return classifier, f"FACE_MODEL=hsemotion; using {classifier.name}"

    weights = find_hsemotion_weights(settings)
    if weights is None:
        where = f"{settings.hsemotion_cache_dir} or HSEMOTION_WEIGHTS"
        return _load_local(settings, f"auto: HSEmotion weights not found in {where}")
    try:
        classifier = HSEmotionClassifier.from_settings(settings)
    except unavailable as exc:
        return _load_local(settings, f"auto: HSEmotion weights at {weights} unusable ({exc})")
    return classifier, f"auto: HSEmotion weights found at {weights}; using {classifier.name}"
