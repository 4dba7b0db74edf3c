"""Real-time multimodal emotion recognition: voice (MFCC→BiLSTM) and face, smoothed and fused.

The stable Python API::

    from realtime import EmotionEngine, LABELS

``EmotionEngine`` is imported on first use, so that ``realtime.labels`` and other light modules
can be imported without loading PyTorch and MediaPipe.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from realtime.labels import LABELS

if TYPE_CHECKING:
    from realtime.engine import EmotionEngine

__all__ = ["LABELS", "EmotionEngine"]


def __getattr__(name: str) -> Any:
    if name == "EmotionEngine":
        from realtime.engine import EmotionEngine

        return EmotionEngine
    raise AttributeError(f"module 'realtime' has no attribute {name!r}")
