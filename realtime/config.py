"""All settings in one validated object, read from the environment and `.env`.

Relative paths are taken from the project's folder (where app.py is), whatever the current folder.

Every field is listed with its default and meaning in `.env.example`. A bad value stops start-up
with pydantic's message naming the variable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


def _default_workers() -> int:
    return max(1, os.cpu_count() or 1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # Server
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    allowed_origins: str = Field("*", description="Comma-separated WebSocket origins, or *")
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    # Streaming and fusion
    w_voice: float = Field(0.6, ge=0.0, le=1.0)
    result_hz: float = Field(2.0, gt=0.0, le=20.0)
    voice_smoothing: int = Field(3, ge=1, le=50, description="Voice history steps averaged")
    face_smoothing: int = Field(3, ge=1, le=50, description="Face history steps averaged")
    silence_db: float = Field(-45.0, ge=-120.0, le=0.0, description="Audio level gate, dBFS")
    evidence_max_age: float = Field(3.0, gt=0.0, le=60.0, description="Seconds a model output counts")
    max_message_bytes: int = Field(2_000_000, ge=1_000, le=50_000_000)
    max_frame_pixels: int = Field(4096 * 4096, ge=64 * 64)

    # Models
    face_model: Literal["auto", "hsemotion", "local"] = "auto"
    voice_weights: Path = PROJECT_ROOT / "weights" / "audio_bilstm.pt"
    face_local_weights: Path = PROJECT_ROOT / "weights" / "face_local.onnx"
    hsemotion_weights: Path | None = None
    hsemotion_cache_dir: Path = Path.home() / ".hsemotion"
    hsemotion_allow_download: bool = False
    hsemotion_extra_sha1: str = Field("", description="Comma-separated extra trusted git blob ids")
    face_margin: float = Field(0.2, ge=0.0, le=1.0, description="Crop margin around the face box")
    face_min_confidence: float = Field(0.5, ge=0.0, le=1.0)

    # CPU
    workers: int = Field(default_factory=_default_workers, ge=1, le=64)
    model_threads: int = Field(1, ge=1, le=64, description="Threads per model runtime call")

    # Quick check and datasets
    quickcheck: bool = False
    quickcheck_per_class: int = Field(20, ge=1, le=1000)
    ravdess_dir: Path = SHARED_DATA / "ravdess"
    fer2013_dir: Path = SHARED_DATA / "fer2013"

    # File uploads
    max_upload_bytes: int = Field(50_000_000, ge=1_000)
    max_media_seconds: float = Field(600.0, gt=0.0)
    video_sample_fps: float = Field(2.0, gt=0.0, le=30.0)

    @field_validator("hsemotion_weights", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator(
        "voice_weights", "face_local_weights", "hsemotion_weights", "hsemotion_cache_dir", "ravdess_dir", "fer2013_dir"
    )
    @classmethod
    def _resolve_path(cls, value: Path | None) -> Path | None:
        """``~`` is expanded; a relative path is taken from the project's folder, not the current one."""
        if value is None:
            return None
        value = value.expanduser()
        return value if value.is_absolute() else (PROJECT_ROOT / value).resolve()

    @field_validator("allowed_origins", "hsemotion_extra_sha1")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @property
    def origins(self) -> list[str]:
        return [o.strip() for o in self.allowed_origins.split(",") if o.strip()]

    @property
    def extra_sha1(self) -> list[str]:
        return [h.strip().lower() for h in self.hsemotion_extra_sha1.split(",") if h.strip()]
