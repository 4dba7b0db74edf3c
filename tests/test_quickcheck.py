"""The start-up quick check on real data: its table, its time bound, and that it never blocks start-up."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app import create_app
from eval import quickcheck
from eval.quickcheck import print_quickcheck, run_quickcheck
from realtime.config import Settings
from realtime.engine import EmotionEngine

SMALL_N = 2
HEADER = ["dataset", "N", "top-1", "top-5", "macro-F1", "seconds"]
SCORE = r"[01]\.\d{3}"
ROW = re.compile(rf"^(?P<dataset>.+?)\s+(?P<n>\d+)\s+(?P<top1>{SCORE})\s+(?P<top5>{SCORE})\s+{SCORE}\s+\d+\.\d$")


@pytest.fixture(scope="module")
def settings(ravdess_dir: Path, fer2013_dir: Path) -> Settings:
    return Settings(ravdess_dir=ravdess_dir, fer2013_dir=fer2013_dir, quickcheck_per_class=SMALL_N)


@pytest.fixture(scope="module")
def engine(settings: Settings) -> Iterator[EmotionEngine]:
    engine = EmotionEngine.from_settings(settings)
    assert engine.voice is not None and engine.face is not None, f"models missing: {engine.notes}"
    yield engine
    engine.close()


def test_table_has_one_row_per_set_and_the_check_stays_under_a_minute(
    engine: EmotionEngine, settings: Settings
) -> None:
    report = run_quickcheck(engine, settings, progress=False)

    assert report.warnings == ()
    assert [row.key for row in report.rows] == ["speech", "faces", "fused"]
    lines = report.table().splitlines()
    assert lines[0].startswith(f"Quick check: {SMALL_N} per class")
    assert lines[1].split() == HEADER
    rows = [ROW.match(line) for line in lines[2:5]]
    assert all(rows), lines
    assert [int(row["n"]) for row in rows if row] == [7 * SMALL_N] * 3
    assert all(float(row["top1"]) <= float(row["top5"]) for row in rows if row)
    assert "synthetic" in lines[5] and "Not a multimodal benchmark" in lines[5]
    # The default N (Settings.quickcheck_per_class) must keep the whole check under 60 s here;
    # scaling this small run's time by N is an upper bound (it includes one-off warm-up).
    default_n = Settings.model_fields["quickcheck_per_class"].default
    assert report.seconds * max(1.0, default_n / SMALL_N) < 60.0, report.table()


def test_a_missing_dataset_is_one_warning_line_and_the_other_rows_remain(
    engine: EmotionEngine, settings: Settings, tmp_path: Path
) -> None:
    missing = tmp_path / "no-ravdess"
    report = run_quickcheck(engine, settings.model_copy(update={"ravdess_dir": missing}), progress=False)

    assert len(report.warnings) == 1
    assert str(missing) in report.warnings[0] and "Actor_01" in report.warnings[0]
    assert "\n" not in report.warnings[0]
    assert [row.key for row in report.rows] == ["faces"]


def test_a_malformed_face_folder_names_the_folder_and_what_was_expected(
    engine: EmotionEngine, settings: Settings, tmp_path: Path
) -> None:
    (tmp_path / "test" / "smiling").mkdir(parents=True)
    report = run_quickcheck(engine, settings.model_copy(update={"fer2013_dir": tmp_path}), progress=False)

    assert len(report.warnings) == 1
    assert str(tmp_path / "test") in report.warnings[0]
    assert "smiling" in report.warnings[0] and "one sub-folder per label" in report.warnings[0]
    assert [row.key for row in report.rows] == ["speech"]


def test_a_missing_model_is_a_warning_and_its_row_is_left_out(engine: EmotionEngine, settings: Settings) -> None:
    face_only = EmotionEngine(settings, voice=None, detector=None, face=engine.face)
    try:
        report = run_quickcheck(face_only, settings, progress=False)
    finally:
        face_only.close()

    assert report.warnings == ("quick check: no voice model is loaded, its row is skipped",)
    assert [row.key for row in report.rows] == ["faces"]


def test_the_server_prints_the_table_before_serving_even_with_a_dataset_missing(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings.model_copy(update={"quickcheck": True, "ravdess_dir": tmp_path / "none"}))
    with caplog.at_level(logging.WARNING), TestClient(app) as client:
        printed = capsys.readouterr().out  # before any request
        assert client.get("/health").status_code == 200

    assert "Quick check" in printed and "FER-2013 test (crops)" in printed
    assert any(str(tmp_path / "none") in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


def test_any_other_failure_is_a_logged_warning(
    engine: EmotionEngine, settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_: object) -> None:
        raise OSError("disk on fire")

    monkeypatch.setattr(quickcheck, "run_quickcheck", broken)
    with caplog.at_level(logging.WARNING):
        print_quickcheck(engine, settings)

    assert "quick check failed, serving anyway: OSError: disk on fire" in caplog.text
