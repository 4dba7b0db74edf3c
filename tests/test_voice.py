"""realtime.voice: the committed weights load, answer in the contract's shapes, and beat chance."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from realtime.audio import SAMPLE_RATE, load_audio_file
from realtime.config import PROJECT_ROOT
from realtime.labels import LABEL_INDEX, LABELS, ravdess_label
from realtime.voice import (
    VoiceBiLSTM,
    VoiceClassifier,
    VoiceModelConfig,
    save_weights,
    speech_windows,
)

WEIGHTS = PROJECT_ROOT / "weights" / "audio_bilstm.pt"


@pytest.fixture(scope="module")
def classifier() -> VoiceClassifier:
    return VoiceClassifier.load(WEIGHTS)


def test_committed_weights_are_a_plain_state_dict_and_config() -> None:
    payload = torch.load(WEIGHTS, map_location="cpu", weights_only=True)
    assert set(payload) == {"state_dict", "config"}
    assert payload["config"]["labels"] == list(LABELS)
    assert all(isinstance(v, torch.Tensor) for v in payload["state_dict"].values())


def test_loaded_classifier_answers_in_shape(classifier: VoiceClassifier) -> None:
    assert classifier.name == "bilstm:audio_bilstm.pt"
    rng = np.random.default_rng(0)
    windows = (0.05 * rng.standard_normal((3, SAMPLE_RATE))).astype(np.float32)
    probs = classifier.predict_windows(windows)
    assert probs.shape == (3, 7) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert classifier.predict_windows(np.zeros((0, SAMPLE_RATE), np.float32)).shape == (0, 7)
    assert classifier.predict_window(windows[0, :5_000]).shape == (7,)  # short: padded
    np.testing.assert_allclose(classifier.predict_window(windows[0]), probs[0], atol=1e-6)
    clip = classifier.predict_clip(np.concatenate(windows))
    assert clip.shape == (7,) and clip.sum() == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError):
        classifier.predict_windows(windows[:, :8_000])


def test_predict_clip_averages_only_windows_above_the_gate(classifier: VoiceClassifier) -> None:
    rng = np.random.default_rng(1)
    speech = (0.1 * rng.standard_normal(SAMPLE_RATE)).astype(np.float32)
    silence = np.zeros(2 * SAMPLE_RATE, np.float32)
    clip = np.concatenate([silence, speech])
    loud = speech_windows(clip)
    assert len(loud) == 2  # the windows starting at 1 s and 1.5 s
    np.testing.assert_allclose(
        classifier.predict_clip(clip, silence_db=-45.0), classifier.predict_windows(loud).mean(0)
    )
    assert classifier.predict_clip(silence).shape == (7,)  # nothing above the gate: all windows


def test_concurrent_calls_match_sequential_ones(classifier: VoiceClassifier) -> None:
    rng = np.random.default_rng(2)
    windows = (0.05 * rng.standard_normal((8, SAMPLE_RATE))).astype(np.float32)
    expected = [classifier.predict_window(w) for w in windows]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(classifier.predict_window, windows))
    for got, want in zip(results, expected):
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_missing_and_corrupt_weights_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="train_voice"):
        VoiceClassifier.load(tmp_path / "absent.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ValueError, match="train_voice"):
        VoiceClassifier.load(corrupt)


def test_save_load_round_trip_and_feature_check(tmp_path: Path) -> None:
    config = VoiceModelConfig(hidden=8, layers=1)
    model = VoiceBiLSTM(config)
    path = tmp_path / "tiny.pt"
    save_weights(path, model, config, {"note": "test"})
    loaded = VoiceClassifier.load(path)
    assert loaded.name == "bilstm:tiny.pt"
    payload = torch.load(path, weights_only=True)
    payload["config"]["features"] = {**payload["config"]["features"], "n_mfcc": 13}
    torch.save(payload, path)
    with pytest.raises(ValueError, match="other features"):
        VoiceClassifier.load(path)


def strong_clips(actor_dir: Path) -> list[Path]:
    """Statement 1, repetition 1, strong intensity (neutral has only normal): 8 clips an actor."""
    return [
        path
        for path in sorted(actor_dir.glob("03-01-*-*-01-01-*.*"))
        if path.stem.split("-")[3] == "02" or path.stem.split("-")[2] == "01"
    ]


def test_committed_model_beats_chance_on_test_actors(
    classifier: VoiceClassifier, ravdess_dir: Path
) -> None:
    """Test actors 19-24 were never trained or tuned on; chance is 1/7."""
    actors = [ravdess_dir / f"Actor_{actor:02d}" for actor in range(19, 25)]
    paths = [path for actor_dir in actors for path in strong_clips(actor_dir)]
    hits = [
        int(classifier.predict_clip(load_audio_file(path)).argmax())
        == LABEL_INDEX[ravdess_label(path.stem)]
        for path in paths
    ]
    accuracy = float(np.mean(hits))
    assert len(paths) == 48
    assert accuracy >= 0.4, f"top-1 {accuracy:.2f} over {len(paths)} test clips (chance 0.14)"
