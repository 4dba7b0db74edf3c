"""The models, loaded once and shared by every session, and the worker pool they run in.

The engine holds no per-session state: sessions keep their own buffers and histories and call
the engine's pure functions, off the event loop, through :meth:`EmotionEngine.run`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import torch

from realtime.audio import SAMPLE_RATE, int16_to_float, resample_to_16k
from realtime.config import Settings
from realtime.face import FaceBox, FaceClassifier, FaceDetector, crop_face, load_face_classifier
from realtime.media import decode_image
from realtime.voice import VoiceClassifier

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class FrameAnalysis:
    """What one video frame showed: the largest face's box and probabilities, and stage times."""

    box: FaceBox | None
    probs: np.ndarray | None
    latency_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelInfo:
    voice: str | None
    face: str | None
    face_detector: str | None
    notes: tuple[str, ...]


def _ms_since(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 2)


class EmotionEngine:
    """Voice and face models behind the stable Python API of DESIGN.md."""

    def __init__(
        self,
        settings: Settings,
        voice: VoiceClassifier | None,
        detector: FaceDetector | None,
        face: FaceClassifier | None,
        notes: tuple[str, ...] = (),
    ) -> None:
        self.settings = settings
        self.voice = voice
        self.detector = detector
        self.face = face
        self.notes = notes
        self.pool = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="inference")

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> EmotionEngine:
        """Load every model the settings name; a model that cannot load is left out, with a note."""
        settings = settings or Settings()
        torch.set_num_threads(settings.model_threads)
        notes: list[str] = []
        voice: VoiceClassifier | None = None
        try:
            voice = VoiceClassifier.load(settings.voice_weights)
        except (FileNotFoundError, ValueError, RuntimeError) as exc:
            notes.append(f"voice model not loaded, running face-only: {exc}")
        face, reason = load_face_classifier(settings)
        notes.append(reason)
        detector = FaceDetector(settings.face_min_confidence) if face is not None else None
        if face is None:
            notes.append("no face model available: running voice-only, face is always null")
        for note in notes:
            log.info(note)
        engine = cls(settings, voice, detector, face, tuple(notes))
        engine.warm_up()
        return engine

    def warm_up(self) -> None:
        """Run the models once on blank input in every pool thread, so that the first users do
        not wait for lazy imports (seconds for librosa's first MFCC) or for a thread's own
        MediaPipe graph to be built."""
        workers = self.settings.workers
        all_started = threading.Barrier(workers)  # holds each task until every thread has one

        def warm_thread() -> None:
            all_started.wait(timeout=30)
            if self.voice is not None:
                self.voice.predict_window(np.zeros(SAMPLE_RATE, dtype=np.float32))
            if self.face is not None and self.detector is not None:
                self.analyze_image(np.zeros((240, 320, 3), dtype=np.uint8))
                self.face.predict_batch([np.zeros((64, 64, 3), dtype=np.uint8)])

        for future in [self.pool.submit(warm_thread) for _ in range(workers)]:
            future.result()

    @property
    def models(self) -> ModelInfo:
        return ModelInfo(
            voice=self.voice.name if self.voice else None,
            face=self.face.name if self.face else None,
            face_detector="mediapipe:face_detection" if self.detector else None,
            notes=self.notes,
        )

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """Run ``fn(*args)`` in the inference pool without blocking the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self.detector is not None:
            self.detector.close()

    # --- the Python API ---------------------------------------------------------------------

    def voice_probs(self, pcm_int16: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
        """Probabilities (7,) for a clip of Int16 PCM: the mean over its 1 s windows (0.5 s hop)."""
        samples = int16_to_float(np.asarray(pcm_int16, dtype=np.int16))
        if sample_rate != SAMPLE_RATE:
            samples = resample_to_16k(samples, sample_rate)
        return self._voice().predict_clip(samples, silence_db=self.settings.silence_db)

    def face_probs(self, image_bgr: np.ndarray) -> np.ndarray | None:
        """Probabilities (7,) for the largest face in a BGR image, or None when no face is found."""
        return self.analyze_image(image_bgr).probs

    def face_crop_probs(self, face_image: np.ndarray) -> np.ndarray:
        """Probabilities (7,) for an already cropped face (gray or BGR, any size)."""
        return self._face().predict_batch([face_image])[0]

    # --- stages used by the streaming session and the file analysis ---------------------------

    def voice_window_probs(self, window: np.ndarray) -> np.ndarray:
        """Probabilities (7,) for the last ≤1 s of float32 16 kHz audio."""
        return self._voice().predict_window(window)

    def decode_jpeg(self, jpeg: bytes) -> np.ndarray:
        """A frame's bytes as a BGR image; a ``MediaError`` when corrupt or over MAX_FRAME_PIXELS."""
        return decode_image(jpeg, self.settings.max_frame_pixels)

    def analyze_jpeg(self, jpeg: bytes) -> FrameAnalysis:
        start = time.perf_counter()
        image = self.decode_jpeg(jpeg)
        decode_ms = _ms_since(start)
        analysis = self.analyze_image(image)
        return FrameAnalysis(analysis.box, analysis.probs, {"decode": decode_ms, **analysis.latency_ms})

    def analyze_image(self, image_bgr: np.ndarray) -> FrameAnalysis:
        """Detect faces and classify the largest one."""
        start = time.perf_counter()
        boxes = self._detector().detect(image_bgr)
        detect_ms = _ms_since(start)
        if not boxes:
            return FrameAnalysis(None, None, {"detect": detect_ms})
        start = time.perf_counter()
        probs = self.classify_faces(image_bgr, boxes[:1])[0]
        return FrameAnalysis(boxes[0], probs, {"detect": detect_ms, "face": _ms_since(start)})

    def detect_faces(self, image_bgr: np.ndarray) -> list[FaceBox]:
        """Every face in a BGR image, largest first."""
        return self._detector().detect(image_bgr)

    def classify_faces(self, image_bgr: np.ndarray, boxes: list[FaceBox]) -> np.ndarray:
        """Probabilities (N, 7) for the given faces of one image, in one batch."""
        crops = [crop_face(image_bgr, box, self.settings.face_margin) for box in boxes]
        return self._face().predict_batch(crops)

    def _voice(self) -> VoiceClassifier:
        if self.voice is None:
            raise RuntimeError(f"no voice model is loaded (VOICE_WEIGHTS={self.settings.voice_weights})")
        return self.voice

    def _face(self) -> FaceClassifier:
        if self.face is None:
            raise RuntimeError("no face model is loaded (see FACE_MODEL and the start-up log)")
        return self.face

    def _detector(self) -> FaceDetector:
        if self.detector is None:
            raise RuntimeError("no face model is loaded, so faces are not detected (see FACE_MODEL)")
        return self.detector
