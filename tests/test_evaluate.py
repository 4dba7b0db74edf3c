"""The evaluation CLI on small real subsets: the files it writes, and figures recomputed from the models."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import soundfile as sf

from eval.datasets import DatasetError, image_folder_items, manifest_items, parse_label_map, ravdess_items
from eval.evaluate import main
from eval.metrics import summarize
from realtime.audio import load_audio_file
from realtime.config import Settings
from realtime.engine import EmotionEngine
from realtime.fusion import fuse
from realtime.labels import LABEL_INDEX, LABELS

PER_CLASS = 2
CLIP = "Actor_19/03-01-05-01-01-01-19.flac"  # angry, a test actor


@pytest.fixture(scope="module")
def report(
    ravdess_dir: Path, fer2013_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("report")
    argv = ["--ravdess", str(ravdess_dir), "--actors", "19-24", "--faces", str(fer2013_dir / "test"),
            "--per-class", str(PER_CLASS), "--out", str(out)]
    return out, main(argv)


@pytest.fixture(scope="module")
def engine() -> Iterator[EmotionEngine]:
    engine = EmotionEngine.from_settings(Settings())
    yield engine
    engine.close()


def _predictions(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def _probs(row: dict[str, str]) -> np.ndarray:
    return np.array([float(row[f"p_{label}"]) for label in LABELS])


def test_the_report_folder_holds_metrics_pngs_and_a_summary(report: tuple[Path, dict[str, Any]]) -> None:
    out, metrics = report
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert metrics["command"].startswith("python -m eval.evaluate --ravdess")
    assert set(metrics["results"]) == {"speech", "speech_windows", "faces", "fused"}
    for key in ("speech", "faces", "fused"):
        result = metrics["results"][key]
        assert result["n"] == 7 * PER_CLASS
        assert {"top1", "top5", "macro_f1", "per_class", "confusion"} <= set(result)
        assert set(result["per_class"]) == set(LABELS)
        assert np.sum(result["confusion"]) == result["n"]
        image = cv2.imread(str(out / f"confusion_{key}.png"))
        assert image is not None and min(image.shape[:2]) > 300
    for kind, weights in metrics["models"]["weights"].items():
        digest = hashlib.sha256(Path(weights["path"]).read_bytes()).hexdigest()
        assert weights["sha256"] == digest, kind
    summary = (out / "report.md").read_text()
    assert metrics["command"] in summary and "macro-F1" in summary and "synthetic" in summary


def test_the_figures_are_what_the_models_predict_now(
    report: tuple[Path, dict[str, Any]], engine: EmotionEngine
) -> None:
    out, metrics = report
    speech = _predictions(out / "predictions_speech.csv")
    faces = _predictions(out / "predictions_faces.csv")
    for row in speech[:: PER_CLASS * 2]:
        pcm = np.round(load_audio_file(row["source"]) * 32768).clip(-32768, 32767).astype(np.int16)
        np.testing.assert_allclose(engine.voice_probs(pcm, 16_000), _probs(row), atol=1e-5)
    for row in faces[:: PER_CLASS * 2]:
        np.testing.assert_allclose(engine.face_crop_probs(cv2.imread(row["source"])), _probs(row), atol=1e-5)

    by_source = {row["source"]: _probs(row) for row in speech + faces}
    for row in _predictions(out / "predictions_fused.csv"):
        clip, image = row["source"].split(" + ")
        expected = fuse(by_source[clip], by_source[image], engine.settings.w_voice)
        np.testing.assert_allclose(_probs(row), expected, atol=1e-5)

    for key, rows in (("speech", speech), ("faces", faces)):
        y_true = np.array([LABEL_INDEX[row["label"]] for row in rows])
        recomputed = summarize(y_true, np.stack([_probs(row) for row in rows]), LABELS)
        assert recomputed["confusion"] == metrics["results"][key]["confusion"], key
        for figure in ("n", "top1", "top5", "macro_f1"):
            assert recomputed[figure] == pytest.approx(metrics["results"][key][figure], abs=1e-6), (key, figure)


def test_photos_without_a_face_are_counted_not_dropped(media_dir: Path, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    for label, name in (("happy", "obama.jpg"), ("neutral", "dogs.jpg")):
        (photos / label).mkdir(parents=True)
        shutil.copy(media_dir / name, photos / label / name)

    metrics = main(["--faces", str(photos), "--detect", "--out", str(tmp_path / "out")])

    faces = metrics["results"]["faces"]
    assert faces["n"] == 1
    assert faces["skipped"] == {"no face found": 1}
    assert faces["skipped_files"] == [str(photos / "neutral" / "dogs.jpg")]
    assert "1 no face found" in (tmp_path / "out" / "report.md").read_text()


def test_a_manifest_with_an_unknown_label_fails_with_a_clear_message(
    ravdess_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "clips.csv"
    manifest.write_text(f"path,label\n{ravdess_dir / CLIP},angry\n{ravdess_dir / CLIP},bored\n")

    with pytest.raises(SystemExit) as exit_info:
        main(["--manifest", str(manifest), "--out", str(tmp_path / "out")])

    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert str(manifest) in error and "'bored' (line 3)" in error and "--label-map" in error
    assert not (tmp_path / "out").exists()


def test_a_label_map_and_relative_paths_read_any_audio_folder(ravdess_dir: Path, tmp_path: Path) -> None:
    samples, rate = sf.read(ravdess_dir / CLIP)
    sf.write(tmp_path / "a.wav", samples, rate)
    (tmp_path / "clips.csv").write_text("path,label\na.wav,Calm\na.wav,fearful\n")

    items = manifest_items(tmp_path / "clips.csv", parse_label_map("calm=neutral,fearful=fear"))

    assert [(item.path, item.label) for item in items] == [
        (tmp_path / "a.wav", "neutral"),
        (tmp_path / "a.wav", "fear"),
    ]


def test_ravdess_folders_accept_wav_and_select_actors(ravdess_dir: Path, tmp_path: Path) -> None:
    samples, rate = sf.read(ravdess_dir / CLIP)
    (tmp_path / "Actor_19").mkdir()
    sf.write(tmp_path / "Actor_19" / "03-01-05-01-01-01-19.wav", samples, rate)

    assert [item.label for item in ravdess_items(tmp_path, [19])] == ["angry"]
    with pytest.raises(DatasetError, match=r"no clips of actors \[1\]"):
        ravdess_items(tmp_path, [1])
    assert len(ravdess_items(ravdess_dir, range(19, 25))) == 360


def test_dataset_errors_name_the_folder_and_what_was_expected(fer2013_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=f"{tmp_path / 'nope'}: not a folder; expected RAVDESS"):
        ravdess_items(tmp_path / "nope")
    with pytest.raises(DatasetError, match="pass its test folder"):
        image_folder_items(fer2013_dir)  # the root, with train/ and test/, instead of test/
    with pytest.raises(DatasetError, match="expected name=label"):
        parse_label_map("calm=relaxed")
