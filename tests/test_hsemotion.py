"""HSEmotion backend against a stand-in for the published `enet_b2_7.pt`, without network.

The stand-in (tests/fixtures/make_hsemotion_standin.py) is a 7-class timm `tf_efficientnet_b2`
pickled whole with timm 0.9 under the module paths of the published files' era, so it meets the
real failure modes on today's torch and timm. Its JSON holds the git blob id and what hsemotion
0.3.0 itself predicted with it on face crops of obama_640x480.jpg.
"""

from __future__ import annotations

import json
import lzma
import pickle
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from realtime.config import Settings
from realtime.face import load_face_classifier
from realtime.hsemotion import (
    HSEMOTION_TRUSTED_SHA1,
    HSEmotionClassifier,
    HSEmotionUnavailable,
    UntrustedWeightsError,
    converted_path,
    find_hsemotion_weights,
    git_blob_sha1,
    load_torch_model,
    preprocess,
)

FIXTURES = Path(__file__).parent / "fixtures"
META = json.loads((FIXTURES / "hsemotion_standin_b2_7.json").read_text())
STANDIN_ID: str = META["git_blob_sha1"]


@pytest.fixture(scope="session")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stand-in pickle, decompressed under the published file's name."""
    path = tmp_path_factory.mktemp("hsemotion") / "enet_b2_7.pt"
    path.write_bytes(lzma.decompress((FIXTURES / "hsemotion_standin_b2_7.pt.xz").read_bytes()))
    return path


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hsemotion_cache")


@pytest.fixture(scope="session")
def classifier(standin: Path, cache_dir: Path) -> HSEmotionClassifier:
    """Loaded once: verifies, converts the pickle to ONNX in cache_dir, opens ORT."""
    return HSEmotionClassifier.from_file(standin, trusted=[STANDIN_ID], cache_dir=cache_dir)


@pytest.fixture(scope="session")
def crops(media_dir: Path) -> list[np.ndarray]:
    """BGR crops at the fixture's boxes, then the first one in gray, as the JSON records them."""
    image = cv2.imread(str(media_dir / META["image"]))
    boxes = [image[y : y + h, x : x + w] for x, y, w, h in META["crops_xywh"]]
    return [*boxes, cv2.cvtColor(boxes[0], cv2.COLOR_BGR2GRAY)]


def test_git_blob_sha1_matches_git(tmp_path: Path) -> None:
    path = tmp_path / "blob.bin"
    path.write_bytes(bytes(range(256)) * 5000)
    expected = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True, check=True)
    assert git_blob_sha1(path) == expected.stdout.strip()


def test_published_ids_are_pinned() -> None:
    assert "5a8ccbb17913461296003be726a22b6fc40d602b" in HSEMOTION_TRUSTED_SHA1
    assert "cdd6a6070b72ed2e59e15e810ae0ecdbcb0f7626" in HSEMOTION_TRUSTED_SHA1


def test_standin_is_the_recorded_file(standin: Path) -> None:
    assert git_blob_sha1(standin) == STANDIN_ID


def test_bare_torch_load_fails_on_todays_stack(standin: Path) -> None:
    """The failures users report: weights_only refuses it, and the old timm module paths are gone."""
    with pytest.raises(pickle.UnpicklingError):
        torch.load(standin)
    with pytest.raises(ModuleNotFoundError, match=r"timm\.models\.layers\."):
        torch.load(standin, weights_only=False)


def test_untrusted_file_is_refused_before_unpickling(
    standin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_unpickling(*args: object, **kwargs: object) -> None:
        raise AssertionError("an unverified file was unpickled")

    monkeypatch.setattr(torch, "load", no_unpickling)
    with pytest.raises(UntrustedWeightsError) as refused:
        HSEmotionClassifier.from_file(standin, trusted=HSEMOTION_TRUSTED_SHA1, cache_dir=tmp_path)
    message = str(refused.value)
    assert str(standin) in message and STANDIN_ID in message and "HSEMOTION_EXTRA_SHA1" in message
    assert "5a8ccbb17913461296003be726a22b6fc40d602b" in message
    with pytest.raises(UntrustedWeightsError):
        load_torch_model(standin, trusted=HSEMOTION_TRUSTED_SHA1)
    assert not (tmp_path / "converted").exists()


def test_matches_hsemotion_itself(classifier: HSEmotionClassifier, crops: list[np.ndarray]) -> None:
    """ORT on the converted file gives what hsemotion 0.3.0 with timm 0.9 gave on the same crops."""
    probs = classifier.predict_batch(crops)
    assert classifier.name == "hsemotion:enet_b2_7"
    assert probs.shape == (len(crops), 7) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(probs, np.array(META["hsemotion_probs"]), atol=1e-4)
    assert np.ptp(probs[:, 5]) > 0.03, "the stand-in should tell the crops apart"


def test_converted_equals_eager_from_pickle(
    classifier: HSEmotionClassifier, standin: Path, crops: list[np.ndarray]
) -> None:
    model = load_torch_model(standin, trusted=[STANDIN_ID])
    with torch.no_grad():
        eager = torch.softmax(model(torch.from_numpy(preprocess(crops))), dim=1).numpy()
    np.testing.assert_allclose(classifier.predict_batch(crops), eager, atol=1e-5)


def test_later_starts_skip_the_pickle(
    classifier: HSEmotionClassifier,
    standin: Path,
    cache_dir: Path,
    crops: list[np.ndarray],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert converted_path(standin, STANDIN_ID, cache_dir).is_file()
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("the pickle was loaded again"))
    again = HSEmotionClassifier.from_file(standin, trusted=[STANDIN_ID], cache_dir=cache_dir, threads=2)
    np.testing.assert_allclose(again.predict_batch(crops), classifier.predict_batch(crops), atol=1e-6)


def test_onnx_file_is_used_directly(
    classifier: HSEmotionClassifier, standin: Path, cache_dir: Path, tmp_path: Path, crops: list[np.ndarray]
) -> None:
    """A verified `.onnx` (as the published ONNX twin) runs without conversion."""
    onnx_file = tmp_path / "enet_b2_7.onnx"
    shutil.copy(converted_path(standin, STANDIN_ID, cache_dir), onnx_file)
    with pytest.raises(UntrustedWeightsError):
        HSEmotionClassifier.from_file(onnx_file, trusted=HSEMOTION_TRUSTED_SHA1, cache_dir=tmp_path)
    direct = HSEmotionClassifier.from_file(onnx_file, trusted=[git_blob_sha1(onnx_file)], cache_dir=tmp_path)
    assert not (tmp_path / "converted").exists()
    np.testing.assert_allclose(direct.predict_batch(crops), classifier.predict_batch(crops), atol=1e-6)


def test_concurrent_predictions_agree(classifier: HSEmotionClassifier, crops: list[np.ndarray]) -> None:
    expected = classifier.predict_batch(crops[:1])
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(classifier.predict_batch, [crops[:1]] * 4))
    for result in results:
        np.testing.assert_allclose(result, expected, atol=1e-6)


def test_empty_and_bad_input(classifier: HSEmotionClassifier) -> None:
    assert classifier.predict_batch([]).shape == (0, 7)
    with pytest.raises(ValueError, match="uint8"):
        classifier.predict_batch([np.zeros((10, 10, 3), dtype=np.float32)])
    with pytest.raises(ValueError, match="BGR"):
        classifier.predict_batch([np.zeros((10, 10, 4), dtype=np.uint8)])


def test_wrong_model_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 7)), path)
    with pytest.raises(HSEmotionUnavailable, match=r"7-class tf_efficientnet_b2.*missing"):
        HSEmotionClassifier.from_file(path, trusted=[git_blob_sha1(path)], cache_dir=tmp_path)


def test_from_settings(
    classifier: HSEmotionClassifier, standin: Path, cache_dir: Path, tmp_path: Path, crops: list[np.ndarray]
) -> None:
    base = dict(_env_file=None, hsemotion_cache_dir=cache_dir, hsemotion_allow_download=False)
    with pytest.raises(UntrustedWeightsError):
        HSEmotionClassifier.from_settings(Settings(**base, hsemotion_weights=standin))
    trusted = Settings(**base, hsemotion_weights=standin, hsemotion_extra_sha1=f" {STANDIN_ID.upper()} ")
    loaded = HSEmotionClassifier.from_settings(trusted)
    np.testing.assert_allclose(loaded.predict_batch(crops), classifier.predict_batch(crops), atol=1e-6)

    empty = Settings(_env_file=None, hsemotion_cache_dir=tmp_path, hsemotion_allow_download=False)
    with pytest.raises(HSEmotionUnavailable, match="HSEMOTION_ALLOW_DOWNLOAD"):
        HSEmotionClassifier.from_settings(empty)


def test_find_weights(standin: Path, tmp_path: Path) -> None:
    settings = Settings(_env_file=None, hsemotion_cache_dir=tmp_path, hsemotion_weights=tmp_path / "missing.pt")
    assert find_hsemotion_weights(settings) is None
    (tmp_path / "enet_b2_7.onnx").write_bytes(b"")
    assert find_hsemotion_weights(settings) == tmp_path / "enet_b2_7.onnx"
    (tmp_path / "enet_b2_7.pt").write_bytes(b"")
    assert find_hsemotion_weights(settings) == tmp_path / "enet_b2_7.pt"
    configured = Settings(_env_file=None, hsemotion_cache_dir=tmp_path, hsemotion_weights=standin)
    assert find_hsemotion_weights(configured) == standin



def test_auto_prefers_hsemotion_when_its_weights_are_found(standin: Path, cache_dir: Path) -> None:
    settings = Settings(
        _env_file=None, face_model="auto", hsemotion_weights=standin,
        hsemotion_extra_sha1=STANDIN_ID, hsemotion_cache_dir=cache_dir,
    )
    classifier, reason = load_face_classifier(settings)
    assert isinstance(classifier, HSEmotionClassifier)
    assert reason.startswith(f"auto: HSEmotion weights found at {standin}")
