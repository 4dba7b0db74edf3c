"""Audio plumbing shared by the live session, the voice model and training.

Everything here works on 16 kHz mono. PCM arrives as little-endian Int16; models see float32 in
[-1, 1].
"""

from __future__ import annotations

import math

from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

SAMPLE_RATE = 16_000


def int16_to_float(pcm: np.ndarray) -> np.ndarray:
    """Int16 PCM to float32 in [-1, 1]."""
    return pcm.astype(np.float32) / 32768.0


def level_db(samples: np.ndarray) -> float:
    """RMS level in dBFS of float32 samples in [-1, 1]; -120 for empty or digital silence."""
    if samples.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return max(-120.0, 20.0 * math.log10(rms + 1e-12))


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


# --- Resampling, file loading and the voice model's features -------------------------------------
# The same functions run at training time (eval/train_voice.py) and at run time (realtime/voice.py).

MIN_SAMPLE_RATE = 4_000
MAX_SAMPLE_RATE = 192_000

WINDOW_SAMPLES = SAMPLE_RATE  # the voice model sees 1 s windows
N_MFCC = 40
N_MELS = 64
N_FFT = 512  # 32 ms
WIN_LENGTH = 400  # 25 ms
HOP_LENGTH = 160  # 10 ms: a 1 s window gives 101 frames (centred frames)
FMIN, FMAX = 20.0, 7_600.0
TOP_DB = 80.0  # log-mel floor relative to the window's loudest bin: bounds digital silence


def resample_to_16k(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float audio at ``sample_rate`` to float32 at 16 kHz (soxr HQ, deterministic)."""
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise ValueError(
            f"sample rate {sample_rate} Hz is outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz"
        )
    samples = np.asarray(samples, dtype=np.float32)
    if sample_rate == SAMPLE_RATE or samples.size == 0:
        return samples.copy()
    resampled = librosa.resample(
        samples, orig_sr=sample_rate, target_sr=SAMPLE_RATE, res_type="soxr_hq"
    )
    return resampled.astype(np.float32, copy=False)


def load_audio_file(path: str | Path) -> np.ndarray:
    """A .wav or .flac file (any rate, mono or multi-channel) as float32 mono at 16 kHz.

    Channels are averaged. Raises FileNotFoundError for a missing file and ValueError for a file
    that is not readable audio.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as error:
        raise ValueError(f"not a readable audio file: {path} ({error})") from error
    return resample_to_16k(data.mean(axis=1), rate)


def clip_windows(samples: np.ndarray, window_s: float = 1.0, hop_s: float = 0.5) -> np.ndarray:
    """Cut 16 kHz audio into windows of ``window_s`` every ``hop_s``, as a (n, window) array.

    Padding rule: a clip shorter than one window is zero-padded at the end (trailing digital
    silence) to one window. A longer clip gives windows starting at 0, hop, 2·hop, …, plus one
    last window aligned to the clip's end when the hops do not reach it, so no audio is dropped
    and no window is padded.
    """
    size = int(round(window_s * SAMPLE_RATE))
    samples = np.asarray(samples, dtype=np.float32).reshape(-1)
    starts = window_starts(samples.size, window_s, hop_s)
    if samples.size <= size:
        return np.pad(samples, (0, size - samples.size))[None, :]
    return np.stack([samples[s : s + size] for s in starts])


def window_starts(n_samples: int, window_s: float = 1.0, hop_s: float = 0.5) -> list[int]:
    """Where :func:`clip_windows` starts its windows, in samples (``[0]`` for a clip of ≤ 1 window)."""
    size = int(round(window_s * SAMPLE_RATE))
    hop = int(round(hop_s * SAMPLE_RATE))
    if size <= 0 or hop <= 0:
        raise ValueError(f"window_s and hop_s must be positive, got {window_s}, {hop_s}")
    if n_samples <= size:
        return [0]
    starts = list(range(0, n_samples - size + 1, hop))
    if starts[-1] + size < n_samples:
        starts.append(n_samples - size)
    return starts


def mfcc_batch(windows: np.ndarray) -> np.ndarray:
    """MFCC(40) of a batch of 1 s 16 kHz windows, (N, 16000) -> (N, 101, 40) float32.

    Log-mel (64 bands, 25 ms frames every 10 ms, floored at ``TOP_DB`` below the window's peak),
    DCT-II to 40 coefficients, then per-window cepstral mean normalisation (CMN): each
    coefficient minus its mean over the window's frames. That removes the microphone's gain and
    most of its frequency response (a studio recording and a laptop microphone give the same
    features) but keeps each coefficient's spread, e.g. how much the loudness moves, which
    carries emotion; the model scales them with a BatchNorm learnt on the training set.
    Windows are independent of each other.
    """
    windows = np.asarray(windows, dtype=np.float32)
    if windows.ndim != 2 or windows.shape[1] != WINDOW_SAMPLES:
        raise ValueError(f"expected (N, {WINDOW_SAMPLES}) windows, got {windows.shape}")
    mel = librosa.feature.melspectrogram(
        y=windows,
        sr=SAMPLE_RATE,
        n_fft=N_FFT,
        win_length=WIN_LENGTH,
        hop_length=HOP_LENGTH,
        n_mels=N_MELS,
        fmin=FMIN,
        fmax=FMAX,
        power=2.0,
    )  # (N, mels, frames)
    log_mel = 10.0 * np.log10(np.maximum(mel, 1e-10))
    log_mel = np.maximum(log_mel, log_mel.max(axis=(1, 2), keepdims=True) - TOP_DB)
    mfcc = librosa.feature.mfcc(S=log_mel, n_mfcc=N_MFCC, dct_type=2, norm="ortho")
    mfcc = mfcc.transpose(0, 2, 1)  # (N, frames, coefficients)
    return (mfcc - mfcc.mean(axis=1, keepdims=True)).astype(np.float32)


def mfcc_features(window: np.ndarray) -> np.ndarray:
    """MFCC(40) of one 1 s 16 kHz window -> (101, 40) float32, normalised (see ``mfcc_batch``)."""
    window = np.asarray(window, dtype=np.float32).reshape(-1)
    return mfcc_batch(window[None, :])[0]
