"""The voice emotion model: a BiLSTM over MFCC(40) of 1 s windows, and its thread-safe classifier.

Features come from ``realtime.audio`` (``mfcc_batch``), the one code path shared by training
(``eval/train_voice.py``) and run time. The weights file is a plain dict
``{"state_dict": ..., "config": {...}}`` of tensors and primitives, loadable with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from realtime.audio import (
    HOP_LENGTH,
    N_MFCC,
    SAMPLE_RATE,
    WINDOW_SAMPLES,
    clip_windows,
    level_db,
    mfcc_batch,
)
from realtime.labels import LABELS

BATCH_WINDOWS = 256  # windows per forward pass: bounds memory for long clips

# Stored with the weights, checked on load: weights trained on other features are refused.
FEATURES = {
    "sample_rate": SAMPLE_RATE,
    "window_samples": WINDOW_SAMPLES,
    "n_mfcc": N_MFCC,
    "hop_length": HOP_LENGTH,
    "normalisation": "per-window CMN",
}


@dataclass(frozen=True)
class VoiceModelConfig:
    """The BiLSTM's shape; saved with the weights so that a file rebuilds its own model."""

    n_mfcc: int = N_MFCC
    hidden: int = 128
    layers: int = 2
    dropout: float = 0.3
    num_labels: int = len(LABELS)


class VoiceBiLSTM(nn.Module):
    """(batch, frames, n_mfcc) MFCC -> (batch, labels) logits.

    A BatchNorm over the coefficients (the global feature scale, learnt on the training set), a
    stacked bidirectional LSTM, then attention pooling over frames (a learnt score per frame,
    softmax over time, weighted mean of the LSTM outputs), dropout and a linear classifier.
    """

    def __init__(self, config: VoiceModelConfig) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(config.n_mfcc)
        self.lstm = nn.LSTM(
            input_size=config.n_mfcc,
            hidden_size=config.hidden,
            num_layers=config.layers,
            batch_first=True,
            bidirectional=True,
            dropout=config.dropout if config.layers > 1 else 0.0,
        )
        self.attention = nn.Linear(2 * config.hidden, 1)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(2 * config.hidden, config.num_labels)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        features = self.norm(features.transpose(1, 2)).transpose(1, 2)
        outputs, _ = self.lstm(features)  # (batch, frames, 2·hidden)
        weights = torch.softmax(self.attention(outputs), dim=1)  # (batch, frames, 1)
        pooled = (weights * outputs).sum(dim=1)
        return self.classifier(self.dropout(pooled))


def save_weights(
    path: Path, model: VoiceBiLSTM, config: VoiceModelConfig, extra: dict[str, Any]
) -> None:
    """Write the state dict and a config dict (model shape, features, labels, ``extra``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": {
            "model": asdict(config),
            "features": FEATURES,
            "labels": list(LABELS),
            **extra,
        },
    }
    torch.save(payload, path)


def speech_windows(samples: np.ndarray, silence_db: float = -45.0) -> np.ndarray:
    """The clip's 1 s windows (hop 0.5 s) whose level is above ``silence_db``; all if none is."""
    windows = clip_windows(samples)
    loud = np.array([level_db(window) > silence_db for window in windows])
    return windows[loud] if loud.any() else windows


class VoiceClassifier:
    """Emotion probabilities (in ``LABELS`` order) for 16 kHz float32 audio.

    Safe to call concurrently from several threads: the model stays in eval mode, inference runs
    under ``torch.inference_mode`` and nothing mutable is shared between calls.
    """

    def __init__(self, model: VoiceBiLSTM, name: str) -> None:
        self.model = model.eval()
        self.name = name

    @classmethod
    def load(cls, path: Path) -> VoiceClassifier:
        """Load a weights file written by ``save_weights`` (e.g. ``weights/audio_bilstm.pt``)."""
        path = Path(path)
        retrain = "train one with: python -m eval.train_voice --out " + str(path)
        if not path.is_file():
            raise FileNotFoundError(f"voice weights not found: {path}; {retrain}")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            config = payload["config"]
            model = VoiceBiLSTM(VoiceModelConfig(**config["model"]))
            model.load_state_dict(payload["state_dict"])
        except Exception as error:  # any unreadable or mismatched file gets the same advice
            raise ValueError(
                f"corrupt or incompatible voice weights {path}: {error}; {retrain}"
            ) from error
        if config["features"] != FEATURES or tuple(config["labels"]) != LABELS:
            raise ValueError(
                f"voice weights {path} were trained on other features or labels "
                f"({config['features']}, {config['labels']}); {retrain}"
            )
        return cls(model, name=f"bilstm:{path.name}")

    def predict_windows(self, windows: np.ndarray) -> np.ndarray:
        """(N, 16000) float32 windows -> (N, 7) float32 probabilities; each row sums to 1."""
        windows = np.asarray(windows, dtype=np.float32)
        if windows.ndim != 2 or windows.shape[1] != WINDOW_SAMPLES:
            raise ValueError(f"expected (N, {WINDOW_SAMPLES}) windows, got {windows.shape}")
        chunks = [
            self._predict_features(mfcc_batch(windows[start : start + BATCH_WINDOWS]))
            for start in range(0, len(windows), BATCH_WINDOWS)
        ]
        return np.concatenate(chunks) if chunks else np.zeros((0, len(LABELS)), np.float32)

    def predict_window(self, window: np.ndarray) -> np.ndarray:
        """One window -> (7,). Shorter than 1 s: zero-padded at the end; longer: its last 1 s."""
        window = np.asarray(window, dtype=np.float32).reshape(-1)[-WINDOW_SAMPLES:]
        return self.predict_windows(clip_windows(window))[0]

    def predict_clip(self, samples: np.ndarray, silence_db: float = -45.0) -> np.ndarray:
        """Mean of the window probabilities over the clip's windows above the silence gate."""
        return self.predict_windows(speech_windows(samples, silence_db)).mean(axis=0)

    def _predict_features(self, features: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            logits = self.model(torch.from_numpy(features))
            return torch.softmax(logits.double(), dim=1).float().numpy()
