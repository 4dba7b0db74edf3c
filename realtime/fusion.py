"""Smoothing of each modality's history, fusion of voice and face, and the top-k list."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from realtime.labels import LABELS, display


@dataclass(frozen=True)
class Step:
    """One model output at a time (seconds, monotonic); ``probs`` is None for "looked, found nothing"."""

    time: float
    probs: np.ndarray | None


class History:
    """The last ``window`` steps of one modality, smoothed by their mean.

    A step with ``probs=None`` (e.g. a frame without a face) takes a place in the window without
    adding evidence, so a face that left the picture stops counting after ``window`` frames.
    Steps older than ``max_age`` seconds are no evidence either, so a voice that fell silent
    fades out instead of staying on screen forever.
    """

    def __init__(self, window: int, max_age: float) -> None:
        self.max_age = max_age
        self._steps: deque[Step] = deque(maxlen=window)

    def resize(self, window: int) -> None:
        self._steps = deque(self._steps, maxlen=window)

    def add(self, time: float, probs: np.ndarray | None) -> None:
        self._steps.append(Step(time, probs))

    def smoothed(self, now: float) -> np.ndarray | None:
        recent = [s.probs for s in self._steps if s.probs is not None and now - s.time <= self.max_age]
        if not recent:
            return None
        return np.mean(recent, axis=0).astype(np.float32)


def fuse(voice: np.ndarray | None, face: np.ndarray | None, w_voice: float) -> np.ndarray | None:
    """``w_voice·voice + (1−w_voice)·face``; a modality without evidence leaves the other alone."""
    if voice is None:
        return face
    if face is None:
        return voice
    return (w_voice * voice + (1.0 - w_voice) * face).astype(np.float32)


def top_k(probs: np.ndarray | None, k: int = 5) -> list[tuple[str, float]]:
    """The ``k`` most likely labels, displayed (first letter capitalised), sorted descending.

    Probabilities are rounded down to 4 decimals (see ``_floor4``).
    """
    if probs is None:
        return []
    order = np.argsort(-probs, kind="stable")[:k]
    return [(display(LABELS[i]), _floor4(probs[i])) for i in order]


def prediction(probs: np.ndarray | None) -> dict[str, object] | None:
    """``{label, probs{label: p}}`` for a result message, or None without evidence."""
    if probs is None:
        return None
    return {
        "label": LABELS[int(np.argmax(probs))],
        "probs": {label: _floor4(p) for label, p in zip(LABELS, probs)},
    }


def _floor4(p: float) -> float:
    """Rounded down to 4 decimals, so that shown probabilities never sum above 1."""
    return math.floor(float(p) * 1e4) / 1e4
