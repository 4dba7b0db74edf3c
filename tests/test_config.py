"""Settings: validated, every one documented in .env.example, relative paths from the project."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from realtime.config import PROJECT_ROOT, Settings


def test_env_example_lists_every_setting_and_parses() -> None:
    text = (PROJECT_ROOT / ".env.example").read_text()
    names = {m.group(1).lower() for m in re.finditer(r"^([A-Z0-9_]+)=", text, flags=re.M)}
    assert names == set(Settings.model_fields)
    settings = Settings(_env_file=PROJECT_ROOT / ".env.example")
    assert settings.hsemotion_weights is None
    assert settings.voice_weights == PROJECT_ROOT / "weights" / "audio_bilstm.pt"
    assert settings.w_voice == 0.6 and settings.result_hz == 2


def test_environment_overrides_and_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("W_VOICE", "0.3")
    monkeypatch.setenv("ALLOWED_ORIGINS", "http://a.example, http://b.example")
    settings = Settings(_env_file=None)
    assert settings.w_voice == 0.3
    assert settings.origins == ["http://a.example", "http://b.example"]
    monkeypatch.setenv("W_VOICE", "1.5")
    with pytest.raises(ValidationError, match="w_voice"):
        Settings(_env_file=None)
    monkeypatch.setenv("W_VOICE", "0.5")
    monkeypatch.setenv("FACE_MODEL", "magic")
    with pytest.raises(ValidationError, match="face_model"):
        Settings(_env_file=None)
