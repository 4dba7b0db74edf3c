"""The Python API of DESIGN.md, on real speech, a real photo and a real FER-2013 face."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from realtime import LABELS, EmotionEngine
from realtime.audio import load_audio_file
from realtime.config import Settings


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> EmotionEngine:
    empty_cache = tmp_path_factory.mktemp("no-hsemotion")
    engine = EmotionEngine.from_settings(Settings(face_model="auto", hsemotion_cache_dir=empty_cache))
    yield engine
    engine.close()


def _is_distribution(probs: np.ndarray) -> bool:
    return probs.shape == (len(LABELS),) and abs(float(probs.sum()) - 1.0) < 1e-4 and bool((probs >= 0).all())


def test_voice_probs_on_int16_at_two_rates(engine: EmotionEngine, ravdess_dir: Path) -> None:
    samples = load_audio_file(ravdess_dir / "Actor_20" / "03-01-08-02-01-01-20.flac")  # surprise
    pcm = (samples * 32767).astype(np.int16)
    probs = engine.voice_probs(pcm, sample_rate=16000)
    assert _is_distribution(probs)
    pcm_8k = pcm[::2]  # a crude 8 kHz copy: the engine resamples it back to 16 kHz
    assert _is_distribution(engine.voice_probs(pcm_8k, sample_rate=8000))


def test_face_probs_on_a_photo_and_none_without_a_face(engine: EmotionEngine, media_dir: Path) -> None:
    probs = engine.face_probs(cv2.imread(str(media_dir / "obama_640x480.jpg")))
    assert probs is not None and _is_distribution(probs)
    assert engine.face_probs(cv2.imread(str(media_dir / "dogs.jpg"))) is None


def test_face_crop_probs_on_a_gray_fer_image(engine: EmotionEngine, fer2013_dir: Path) -> None:
    image = cv2.imread(str(next((fer2013_dir / "test" / "happy").glob("*.png"))), cv2.IMREAD_GRAYSCALE)
    assert image.ndim == 2
    assert _is_distribution(engine.face_crop_probs(image))
    assert engine.models.face.startswith("local:")  # auto without HSEmotion weights → local
