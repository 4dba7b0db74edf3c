"""Decoding of client messages: every bad input is a ProtocolError with its own code."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from realtime.protocol import (
    AudioMessage,
    FrameMessage,
    ProtocolError,
    SessionConfig,
    decode_binary,
    decode_text,
)

LIMIT = 2_000_000


def _jpeg(media_dir) -> bytes:
    return (media_dir / "obama_640x480.jpg").read_bytes()


def _text(**message) -> str:
    return json.dumps(message)


def test_frame_json_with_data_url_prefix(media_dir) -> None:
    jpeg = _jpeg(media_dir)
    data = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
    message = decode_text(_text(type="frame", data=data, ts=123), LIMIT)
    assert isinstance(message, FrameMessage)
    assert message.jpeg == jpeg and message.ts == 123.0


def test_audio_json_is_converted_to_float() -> None:
    pcm = np.array([0, 16384, -32768, 32767], dtype="<i2")
    message = decode_text(_text(type="audio", data=base64.b64encode(pcm.tobytes()).decode()), LIMIT)
    assert isinstance(message, AudioMessage)
    np.testing.assert_allclose(message.samples, [0.0, 0.5, -1.0, 32767 / 32768], atol=1e-6)


def test_audio_at_48k_is_resampled_to_16k() -> None:
    tone = (np.sin(np.arange(4800) * 2 * np.pi * 440 / 48000) * 10000).astype("<i2")
    data = base64.b64encode(tone.tobytes()).decode()
    message = decode_text(_text(type="audio", data=data, sample_rate=48000), LIMIT)
    assert isinstance(message, AudioMessage)
    assert abs(message.samples.size - 1600) <= 2


def test_binary_forms(media_dir) -> None:
    jpeg = _jpeg(media_dir)
    assert decode_binary(b"\x02" + jpeg, LIMIT) == FrameMessage(jpeg, None)
    audio = decode_binary(b"\x01" + np.zeros(160, dtype="<i2").tobytes(), LIMIT)
    assert isinstance(audio, AudioMessage) and audio.samples.shape == (160,)


def test_config_is_validated() -> None:
    assert decode_text(_text(type="config", w_voice=0.25), LIMIT) == SessionConfig(w_voice=0.25)
    with pytest.raises(ProtocolError) as err:
        decode_text(_text(type="config", w_voice=3), LIMIT)
    assert err.value.code == "bad_config" and "w_voice" in err.value.message
    with pytest.raises(ProtocolError) as err:
        decode_text(_text(type="config", colour="red"), LIMIT)
    assert err.value.code == "bad_config"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{not json", "bad_json"),
        ("[1, 2]", "bad_message"),
        (_text(type="video"), "unknown_type"),
        (_text(type="frame"), "bad_message"),
        (_text(type="frame", data="***"), "bad_base64"),
        (_text(type="frame", data=base64.b64encode(b"GIF89a....").decode()), "bad_image"),
        (_text(type="audio", data=base64.b64encode(b"\x00\x01\x02").decode()), "bad_audio"),
        (_text(type="audio", data=base64.b64encode(b"\x00\x01").decode(), sample_rate=5), "bad_sample_rate"),
        (_text(type="audio", data=base64.b64encode(b"\x00\x01").decode(), sample_rate="fast"), "bad_sample_rate"),
        ("x" * (LIMIT + 1), "too_large"),
    ],
)
def test_bad_text_messages(text: str, code: str) -> None:
    with pytest.raises(ProtocolError) as err:
        decode_text(text, LIMIT)
    assert err.value.code == code
    assert err.value.to_message()["type"] == "error" and err.value.message


@pytest.mark.parametrize(
    ("data", "code"),
    [(b"", "bad_message"), (b"\x07abc", "unknown_type"), (b"\x02notjpeg", "bad_image"), (b"\x01\x00", "bad_audio")],
)
def test_bad_binary_messages(data: bytes, code: str) -> None:
    with pytest.raises(ProtocolError) as err:
        decode_binary(data, LIMIT)
    assert err.value.code == code
