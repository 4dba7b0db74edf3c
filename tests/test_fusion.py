"""Smoothing, fusion with the single-modality rule, and top-k."""

from __future__ import annotations

import numpy as np

from realtime.audio import AudioRingBuffer, level_db
from realtime.fusion import History, fuse, prediction, top_k

VOICE = np.array([0.7, 0.0, 0.0, 0.1, 0.2, 0.0, 0.0], dtype=np.float32)
FACE = np.array([0.0, 0.0, 0.0, 0.9, 0.1, 0.0, 0.0], dtype=np.float32)


def test_fuse_weights_and_single_modality_rule() -> None:
    np.testing.assert_allclose(fuse(VOICE, FACE, 0.6), 0.6 * VOICE + 0.4 * FACE, atol=1e-6)
    np.testing.assert_array_equal(fuse(VOICE, None, 0.6), VOICE)  # never a mix with zeros
    np.testing.assert_array_equal(fuse(None, FACE, 0.6), FACE)
    assert fuse(None, None, 0.6) is None


def test_history_mean_window_and_age() -> None:
    history = History(window=2, max_age=3.0)
    assert history.smoothed(0.0) is None
    history.add(0.0, VOICE)
    history.add(0.5, FACE)
    np.testing.assert_allclose(history.smoothed(0.5), (VOICE + FACE) / 2, atol=1e-6)
    history.add(1.0, FACE)  # VOICE leaves the window of 2
    np.testing.assert_allclose(history.smoothed(1.0), FACE, atol=1e-6)
    assert history.smoothed(10.0) is None  # too old to count


def test_history_none_steps_push_out_evidence() -> None:
    history = History(window=2, max_age=10.0)
    history.add(0.0, FACE)
    history.add(0.1, None)
    np.testing.assert_allclose(history.smoothed(0.2), FACE, atol=1e-6)
    history.add(0.2, None)
    assert history.smoothed(0.3) is None
    history.resize(5)
    history.add(0.3, VOICE)
    np.testing.assert_allclose(history.smoothed(0.4), VOICE, atol=1e-6)


def test_top_k_sorted_displayed_and_not_above_one() -> None:
    probs = np.full(7, 1 / 7, dtype=np.float32)
    probs[3] += 0.01
    probs /= probs.sum()
    top = top_k(probs, 5)
    assert len(top) == 5 and top[0][0] == "Happy"
    values = [p for _, p in top]
    assert values == sorted(values, reverse=True) and sum(values) <= 1.0
    assert top_k(None) == []


def test_prediction_shape() -> None:
    result = prediction(FACE)
    assert result is not None and result["label"] == "happy"
    assert set(result["probs"]) == {"angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"}
    assert prediction(None) is None


def test_ring_buffer_keeps_last_second_in_order() -> None:
    ring = AudioRingBuffer(seconds=1.0, sample_rate=10)
    ring.append(np.arange(4, dtype=np.float32))
    np.testing.assert_array_equal(ring.latest(), [0, 1, 2, 3])
    assert ring.unread == 4
    ring.mark_read()
    ring.append(np.arange(4, 13, dtype=np.float32))
    np.testing.assert_array_equal(ring.latest(), np.arange(3, 13))
    assert ring.unread == 9 and len(ring) == 10
    ring.append(np.arange(100, 125, dtype=np.float32))  # longer than the buffer
    np.testing.assert_array_equal(ring.latest(), np.arange(115, 125))


def test_level_db() -> None:
    assert level_db(np.zeros(100, dtype=np.float32)) == -120.0
    assert abs(level_db(np.full(100, 0.5, dtype=np.float32)) - (-6.02)) < 0.05
