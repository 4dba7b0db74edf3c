"""Audio plumbing shared by the live session, the voice model and training.

Everything here works on 16 kHz mono. PCM arrives as little-endian Int16; models see float32 in
[-1, 1].
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16_000


def int16_to_float(pcm: np.ndarray) -> np.ndarray:
    """Int16 PCM to float32 in [-1, 1]."""
    return pcm.astype(np.float32) / 32768.0


def level_db(samples: np.ndarray) -> float:
    """RMS level in dBFS of float32 samples in [-1, 1]; -120 for empty or digital silence."""
    if samples.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return max(-120.0, 20.0 * np.log10(rms + 1e-12))


class AudioRingBuffer:
    """The last ``seconds`` of 16 kHz mono audio, as float32, with a count of samples not yet used.

    Appending never blocks and never grows memory: old samples are overwritten.
    """

    def __init__(self, seconds: float = 1.0, sample_rate: int = SAMPLE_RATE) -> None:
        self.capacity = int(round(seconds * sample_rate))
        self._data = np.zeros(self.capacity, dtype=np.float32)
        self._filled = 0
        self._write = 0
        self.unread = 0  # samples appended since the last ``mark_read``

    def append(self, samples: np.ndarray) -> None:
        samples = np.asarray(samples, dtype=np.float32)[-self.capacity :]
        n = samples.size
        if n == 0:
            return
        end = self._write + n
        if end <= self.capacity:
            self._data[self._write : end] = samples
        else:
            first = self.capacity - self._write
            self._data[self._write :] = samples[:first]
            self._data[: n - first] = samples[first:]
        self._write = end % self.capacity
        self._filled = min(self.capacity, self._filled + n)
        self.unread = min(self.capacity, self.unread + n)

    def latest(self) -> np.ndarray:
        """The buffered audio, oldest first (at most ``capacity`` samples), as a new array."""
        if self._filled < self.capacity:
            return self._data[: self._filled].copy()
        return np.concatenate((self._data[self._write :], self._data[: self._write]))

    def mark_read(self) -> None:
        self.unread = 0

    def __len__(self) -> int:
        return self._filled
