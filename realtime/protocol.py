"""The WebSocket protocol: decoding client messages into typed values, and the error codes.

Decoding is cheap and never runs a model: a frame is checked to be a JPEG by its magic bytes and
kept encoded (it is decoded in the worker pool at the next tick); audio is checked, converted to
float32 and resampled to 16 kHz.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from realtime.audio import SAMPLE_RATE, int16_to_float, resample_to_16k

BINARY_AUDIO = 0x01
BINARY_JPEG = 0x02
JPEG_MAGIC = b"\xff\xd8\xff"
MIN_SAMPLE_RATE = 4_000
MAX_SAMPLE_RATE = 192_000


class ProtocolError(Exception):
    """A bad client message; answered with an ``error`` message, the session goes on."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def to_message(self) -> dict[str, str]:
        return {"type": "error", "code": self.code, "message": self.message}


@dataclass(frozen=True)
class FrameMessage:
    jpeg: bytes
    ts: float | None


@dataclass(frozen=True)
class AudioMessage:
    samples: np.ndarray  # float32, 16 kHz mono
    ts: float | None


class SessionConfig(BaseModel):
    """Per-session settings a client may change with a ``config`` message; all optional."""

    model_config = ConfigDict(extra="forbid")

    w_voice: float | None = Field(None, ge=0.0, le=1.0)
    voice_smoothing: int | None = Field(None, ge=1, le=50)
    face_smoothing: int | None = Field(None, ge=1, le=50)
    silence_db: float | None = Field(None, ge=-120.0, le=0.0)


ClientMessage = FrameMessage | AudioMessage | SessionConfig


def decode_text(text: str, max_bytes: int) -> ClientMessage:
    """Decode a JSON text message (``frame``, ``audio`` or ``config``)."""
    if len(text) > max_bytes:
        raise _too_large(len(text), max_bytes)
    try:
        message = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProtocolError("bad_json", f"message is not valid JSON: {exc.msg}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise ProtocolError("bad_message", 'a message must be a JSON object with a "type" string')
    kind = message["type"]
    ts = _timestamp(message.get("ts"))
    if kind == "frame":
        return FrameMessage(_check_jpeg(_base64_payload(message)), ts)
    if kind == "audio":
        rate = message.get("sample_rate", SAMPLE_RATE)
        return AudioMessage(_pcm16(_base64_payload(message), rate), ts)
    if kind == "config":
        fields = {k: v for k, v in message.items() if k != "type"}
        try:
            return SessionConfig.model_validate(fields)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ProtocolError("bad_config", f"invalid config: {problems}") from None
    raise ProtocolError("unknown_type", f"unknown message type {kind!r}; expected frame, audio or config")


def decode_binary(data: bytes, max_bytes: int) -> FrameMessage | AudioMessage:
    """Decode a binary message: first byte 0x01 = Int16 16 kHz audio, 0x02 = JPEG."""
    if len(data) > max_bytes:
        raise _too_large(len(data), max_bytes)
    if not data:
        raise ProtocolError("bad_message", "empty binary message")
    kind, payload = data[0], data[1:]
    if kind == BINARY_AUDIO:
        return AudioMessage(_pcm16(payload, SAMPLE_RATE), None)
    if kind == BINARY_JPEG:
        return FrameMessage(_check_jpeg(payload), None)
    raise ProtocolError("unknown_type", f"unknown binary message kind 0x{kind:02x}; expected 0x01 audio or 0x02 JPEG")


def _too_large(size: int, limit: int) -> ProtocolError:
    return ProtocolError("too_large", f"message of {size} bytes is over the limit of {limit} bytes")


def _timestamp(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _base64_payload(message: dict[str, Any]) -> bytes:
    data = message.get("data")
    if not isinstance(data, str) or not data:
        raise ProtocolError("bad_message", f'a {message["type"]} message needs a "data" base64 string')
    if data.startswith("data:"):
        data = data.partition(",")[2]
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("bad_base64", f'"data" of the {message["type"]} message is not valid base64') from None


def _check_jpeg(payload: bytes) -> bytes:
    if not payload.startswith(JPEG_MAGIC):
        raise ProtocolError("bad_image", "frame payload is not a JPEG (it must start with FF D8 FF)")
    return payload


def _pcm16(payload: bytes, sample_rate: Any) -> np.ndarray:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float)) or not (
        MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE
    ):
        raise ProtocolError(
            "bad_sample_rate",
            f"sample_rate must be a number from {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz, got {sample_rate!r}",
        )
    if len(payload) % 2:
        raise ProtocolError("bad_audio", f"audio payload has {len(payload)} bytes: Int16 PCM needs an even number")
    samples = int16_to_float(np.frombuffer(payload, dtype="<i2"))
    if int(sample_rate) != SAMPLE_RATE:
        samples = resample_to_16k(samples, int(sample_rate))
    return samples
