"""Shared paths to the real data and media in ../shared (never copied into the repository)."""

from __future__ import annotations

from pathlib import Path

import pytest

from realtime.config import PROJECT_ROOT

SHARED = PROJECT_ROOT.parent / "shared"
RAVDESS = SHARED / "data" / "ravdess"
FER2013 = SHARED / "data" / "fer2013"
MEDIA = SHARED / "media"


@pytest.fixture(scope="session")
def ravdess_dir() -> Path:
    assert RAVDESS.is_dir(), f"RAVDESS not found at {RAVDESS}"
    return RAVDESS


@pytest.fixture(scope="session")
def fer2013_dir() -> Path:
    assert FER2013.is_dir(), f"FER-2013 not found at {FER2013}"
    return FER2013


@pytest.fixture(scope="session")
def media_dir() -> Path:
    assert MEDIA.is_dir(), f"media not found at {MEDIA}"
    return MEDIA
