"""HSEmotion `enet_b2_7` face classifier, loaded robustly from its published pickle.

The `hsemotion` package ships its models as whole pickled timm models (`torch.save(model)`), saved
with a timm of the 0.4-0.6 era. On today's stack such a file cannot be loaded as objects: torch >= 2.6
refuses it by default (`weights_only`), and timm 1.x no longer has the pickled module paths
(`timm.models.layers.conv2d_same`) nor the attributes the old objects carry (`gate`, `act1`).

This module therefore:
1. checks the file's git blob id against the published ones (plus ids the user adds through
   HSEMOTION_EXTRA_SHA1) before unpickling anything, since unpickling runs code;
2. unpickles it with every class outside a small allow-list replaced by an inert placeholder, so the
   old objects become plain containers of `_parameters`, `_buffers` and `_modules`;
3. reads the weights from that tree and loads them, strictly, into today's timm
   `tf_efficientnet_b2` (7 classes);
4. exports that model once to ONNX in `<HSEMOTION_CACHE_DIR>/converted/`, keyed by the blob id, so
   later starts never touch the pickle; inference runs on ONNX Runtime.

The published ONNX twin (`enet_b2_7.onnx`) is used directly once verified.
Preprocessing is HSEmotion's: RGB, PIL bilinear resize to 260x260, ImageNet mean/std.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import re
import shutil
import tempfile
import types
import urllib.request
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort
import torch
from PIL import Image

from realtime.config import Settings
from realtime.labels import NUM_LABELS

log = logging.getLogger(__name__)

MODEL_NAME = "enet_b2_7"
TIMM_ARCHITECTURE = "tf_efficientnet_b2"
IMAGE_SIZE = 260
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
DOWNLOAD_URL = (
    "https://github.com/HSE-asavchenko/face-emotion-recognition/blob/main/"
    "models/affectnet_emotions/{file}?raw=true"
)
DOWNLOAD_TIMEOUT_S = 60.0
ONNX_OPSET = 17

HSEMOTION_TRUSTED_SHA1: dict[str, str] = {
    "5a8ccbb17913461296003be726a22b6fc40d602b": (
        "enet_b2_7.pt, face-emotion-recognition models/affectnet_emotions, published Dec 2024"
    ),
    "cdd6a6070b72ed2e59e15e810ae0ecdbcb0f7626": (
        "enet_b2_7.onnx, face-emotion-recognition models/affectnet_emotions/onnx, published Dec 2024"
    ),
}

# Callables a whole-model pickle needs to rebuild tensors and containers. Everything else it names
# (timm and torch.nn classes, functions) becomes an inert placeholder; torch.load itself resolves
# the storage classes (`torch.FloatStorage`, ...) before asking the unpickler.
_ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    {
        ("collections", "OrderedDict"),
        ("builtins", "set"),
        ("__builtin__", "set"),
        ("builtins", "frozenset"),
        ("__builtin__", "frozenset"),
        ("torch._utils", "_rebuild_tensor"),
        ("torch._utils", "_rebuild_tensor_v2"),
        ("torch._utils", "_rebuild_parameter"),
        ("torch._utils", "_rebuild_parameter_with_state"),
        ("torch._tensor", "_rebuild_from_type_v2"),
        ("torch.nn.parameter", "Parameter"),
        ("torch", "Tensor"),
        ("torch._tensor", "Tensor"),
    }
)


class HSEmotionUnavailable(Exception):
    """No usable HSEmotion weights: none found, download not allowed or failed, or wrong model."""


class UntrustedWeightsError(Exception):
    """The weights file's git blob id is not one of the trusted ids, so it is never unpickled."""


def git_blob_sha1(path: Path) -> str:
    """Git's blob id of a file: SHA-1 of `b"blob <size>\\0" + content`, read in chunks."""
    digest = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def verify_weights(path: Path, trusted: Iterable[str]) -> str:
    """Return the file's git blob id, or raise UntrustedWeightsError if it is not trusted."""
    trusted_ids = sorted({h.strip().lower() for h in trusted})
    blob_id = git_blob_sha1(path)
    if blob_id not in trusted_ids:
        raise UntrustedWeightsError(
            f"refusing to load {path}: its git blob id {blob_id} is not trusted "
            f"(trusted: {', '.join(trusted_ids) or 'none'}). A pickle runs code when loaded, so only "
            f"the published HSEmotion files are accepted. If you trust this file, add its id to "
            f"HSEMOTION_EXTRA_SHA1 (comma-separated)."
        )
    return blob_id


def find_hsemotion_weights(settings: Settings) -> Path | None:
    """HSEMOTION_WEIGHTS if set and present, else `enet_b2_7.pt` or `.onnx` in the cache dir."""
    configured = settings.hsemotion_weights
    if configured is not None:
        if configured.is_file():
            return configured
        log.warning("HSEMOTION_WEIGHTS=%s does not exist; looking in the cache dir", configured)
    for suffix in (".pt", ".onnx"):
        candidate = settings.hsemotion_cache_dir / f"{MODEL_NAME}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def download_hsemotion_weights(cache_dir: Path, trusted: Iterable[str]) -> Path:
    """Download the published `enet_b2_7.pt` into the cache dir, verified before it is kept."""
    dest = cache_dir / f"{MODEL_NAME}.pt"
    url = DOWNLOAD_URL.format(file=dest.name)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=cache_dir, suffix=".part", delete=False) as part:
        part_path = Path(part.name)
        try:
            log.info("downloading HSEmotion %s from %s", MODEL_NAME, url)
            with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
                shutil.copyfileobj(response, part, 1 << 20)
        except OSError as exc:
            part_path.unlink(missing_ok=True)
            raise HSEmotionUnavailable(
                f"downloading {url} failed ({exc}). Download {dest.name} by hand into {cache_dir} "
                f"or set HSEMOTION_WEIGHTS to its path."
            ) from exc
    try:
        verify_weights(part_path, trusted)
    except UntrustedWeightsError:
        part_path.unlink(missing_ok=True)
        raise
    part_path.replace(dest)
    return dest


class _Placeholder:
    """Stands in for any class a pickle names outside the allow-list; keeps only its `__dict__`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Accept whatever arguments the pickle calls the original class with, and ignore them."""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], dict):
            state = state[0]  # (dict state, slot state)
        if isinstance(state, dict):
            self.__dict__.update(state)


class _InertUnpickler(pickle.Unpickler):
    """Unpickler that builds tensors for real and everything else as `_Placeholder` subclasses."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._placeholders: dict[tuple[str, str], type] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        key = (module, name)
        if key not in self._placeholders:
            self._placeholders[key] = type(name, (_Placeholder,), {"__module__": module})
        return self._placeholders[key]


def _inert_pickle_module() -> types.ModuleType:
    """A `pickle_module` for torch.load whose Unpickler never imports the pickle's classes."""
    module = types.ModuleType("hsemotion_inert_pickle")
    module.Unpickler = _InertUnpickler  # type: ignore[attr-defined]
    module.load = lambda file, **kwargs: _InertUnpickler(file, **kwargs).load()  # type: ignore[attr-defined]
    return module


def _tree_state_dict(node: Any, prefix: str, out: dict[str, torch.Tensor]) -> None:
    """Collect parameters and persistent buffers of a pickled module tree, by dotted name."""
    attrs = vars(node)
    for name, param in attrs.get("_parameters", {}).items():
        if param is not None:
            out[prefix + name] = param.detach()
    skip = attrs.get("_non_persistent_buffers_set", set())
    for name, buffer in attrs.get("_buffers", {}).items():
        if buffer is not None and name not in skip:
            out[prefix + name] = buffer
    for name, child in attrs.get("_modules", {}).items():
        if child is not None:
            _tree_state_dict(child, f"{prefix}{name}.", out)


def _read_pickled_weights(path: Path) -> dict[str, torch.Tensor]:
    """The weights of a whole pickled timm model, without importing or running its classes.

    Call only on a verified file. HSEmotion's classifier is `Sequential(Linear)`; its keys are
    renamed to timm's plain `classifier.weight`/`classifier.bias`.
    """
    root = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_inert_pickle_module())
    if not isinstance(root, _Placeholder) or "_modules" not in vars(root):
        raise HSEmotionUnavailable(
            f"{path} is not a whole pickled model (torch.save(model)) as HSEmotion publishes; "
            f"found {type(root).__name__}"
        )
    weights: dict[str, torch.Tensor] = {}
    _tree_state_dict(root, "", weights)
    return {re.sub(r"^classifier\.0\.", "classifier.", key): value for key, value in weights.items()}


def _timm_model(weights: dict[str, torch.Tensor], source: Path) -> torch.nn.Module:
    """Today's timm `tf_efficientnet_b2` with 7 classes, loaded strictly from `weights`."""
    import timm  # heavy import, needed only when converting a pickle

    model = timm.create_model(TIMM_ARCHITECTURE, num_classes=NUM_LABELS, pretrained=False)
    expected = model.state_dict()
    missing = sorted(expected.keys() - weights.keys())
    unexpected = sorted(weights.keys() - expected.keys())
    mismatched = [
        f"{key} {tuple(weights[key].shape)} != {tuple(expected[key].shape)}"
        for key in sorted(expected.keys() & weights.keys())
        if weights[key].shape != expected[key].shape
    ]
    if missing or unexpected or mismatched:
        raise HSEmotionUnavailable(
            f"{source} does not hold a {NUM_LABELS}-class {TIMM_ARCHITECTURE} (HSEmotion {MODEL_NAME}):"
            f" missing {missing[:5]} ({len(missing)}), unexpected {unexpected[:5]} ({len(unexpected)}),"
            f" wrong shape {mismatched[:5]} ({len(mismatched)})"
        )
    model.load_state_dict(weights, strict=True)
    return model.eval()


def load_torch_model(path: Path, *, trusted: Iterable[str]) -> torch.nn.Module:
    """Eager timm model from a verified HSEmotion pickle (for conversion, tests and benchmarks)."""
    verify_weights(path, trusted)
    return _timm_model(_read_pickled_weights(path), path)


def _export_onnx(model: torch.nn.Module, dest: Path) -> None:
    """Export to ONNX with a dynamic batch axis; written atomically and checked against eager."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    probe = torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(0))
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, suffix=".onnx.part")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        # The TorchScript exporter (dynamo=False): the torch.export one needs onnxscript, which the
        # project does not install. Its deprecation warning says nothing a user can act on.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(
                model,
                (probe,),
                str(tmp),
                input_names=["input"],
                output_names=["logits"],
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                opset_version=ONNX_OPSET,
                dynamo=False,
            )
            eager = model(probe).numpy()
        exported = _session(tmp, threads=1).run(None, {"input": probe.numpy()})[0]
        if not np.allclose(exported, eager, atol=1e-3, rtol=1e-3):
            raise RuntimeError(
                f"ONNX export of {TIMM_ARCHITECTURE} differs from eager torch "
                f"(max |diff| {np.abs(exported - eager).max():.2e}); not caching it"
            )
        tmp.chmod(0o644)  # mkstemp creates it private; the cache is an ordinary file
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)


def _session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def converted_path(source: Path, blob_id: str, cache_dir: Path) -> Path:
    """Where the ONNX conversion of a verified pickle is cached."""
    return cache_dir / "converted" / f"{source.stem}.{blob_id}.onnx"


def preprocess(crops: Sequence[np.ndarray]) -> np.ndarray:
    """HSEmotion's input: RGB, PIL bilinear resize to 260x260, /255, ImageNet mean/std, NCHW float32.

    Crops are BGR (H, W, 3) or gray (H, W) uint8 of any size.
    """
    batch = np.empty((len(crops), 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
    for i, crop in enumerate(crops):
        if crop.dtype != np.uint8 or crop.ndim not in (2, 3) or (crop.ndim == 3 and crop.shape[2] != 3):
            raise ValueError(f"expected a BGR (H, W, 3) or gray (H, W) uint8 crop, got {crop.dtype} {crop.shape}")
        rgb = cv2.cvtColor(crop, cv2.COLOR_GRAY2RGB if crop.ndim == 2 else cv2.COLOR_BGR2RGB)
        resized = Image.fromarray(rgb).resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BILINEAR)
        pixels = np.asarray(resized, dtype=np.float32) / 255.0
        batch[i] = ((pixels - MEAN) / STD).transpose(2, 0, 1)
    return batch


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (shifted / shifted.sum(axis=1, keepdims=True)).astype(np.float32)


class HSEmotionClassifier:
    """HSEmotion `enet_b2_7` on ONNX Runtime; a FaceClassifier. Safe to call from many threads."""

    def __init__(self, session: ort.InferenceSession, name: str) -> None:
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or outputs[0].shape[-1] != NUM_LABELS:
            raise HSEmotionUnavailable(
                f"{name}: expected one NCHW image input and {NUM_LABELS} outputs, got inputs "
                f"{[i.shape for i in inputs]} and outputs {[o.shape for o in outputs]}"
            )
        self.name = name
        self._session = session
        self._input = inputs[0].name
        # An export with a fixed batch size of 1 is run one crop at a time.
        self._fixed_batch = isinstance(inputs[0].shape[0], int)

    def predict_batch(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """(N, 7) float32 probabilities in LABELS order for BGR or gray uint8 face crops."""
        if not crops:
            return np.empty((0, NUM_LABELS), dtype=np.float32)
        batch = preprocess(crops)
        if self._fixed_batch:
            logits = np.concatenate([self._session.run(None, {self._input: x[None]})[0] for x in batch])
        else:
            logits = self._session.run(None, {self._input: batch})[0]
        return _softmax(logits.astype(np.float64))

    @classmethod
    def from_file(
        cls, path: Path, *, trusted: Iterable[str], cache_dir: Path, threads: int = 1
    ) -> HSEmotionClassifier:
        """Verify `path` (a `.pt` pickle or `.onnx`), convert a pickle once into the cache, load ORT."""
        blob_id = verify_weights(path, trusted)
        name = f"hsemotion:{path.stem}"
        if path.suffix == ".onnx":
            return cls(_session(path, threads), name)
        onnx_path = converted_path(path, blob_id, cache_dir)
        if not onnx_path.is_file():
            log.info("converting %s to %s (once)", path, onnx_path)
            try:
                _export_onnx(_timm_model(_read_pickled_weights(path), path), onnx_path)
            except OSError as exc:
                raise HSEmotionUnavailable(
                    f"cannot write the converted model to {onnx_path.parent} ({exc}); "
                    f"set HSEMOTION_CACHE_DIR to a writable folder"
                ) from exc
        return cls(_session(onnx_path, threads), name)

    @classmethod
    def from_settings(cls, settings: Settings) -> HSEmotionClassifier:
        """Find the weights (download only if HSEMOTION_ALLOW_DOWNLOAD), verify, convert, load."""
        trusted = [*HSEMOTION_TRUSTED_SHA1, *settings.extra_sha1]
        path = find_hsemotion_weights(settings)
        if path is None:
            if not settings.hsemotion_allow_download:
                raise HSEmotionUnavailable(
                    f"HSEmotion weights not found: put {MODEL_NAME}.pt (or {MODEL_NAME}.onnx) from "
                    f"github.com/HSE-asavchenko/face-emotion-recognition (models/affectnet_emotions) "
                    f"into {settings.hsemotion_cache_dir}, or set HSEMOTION_WEIGHTS to the file, or "
                    f"set HSEMOTION_ALLOW_DOWNLOAD=true on a machine with internet, or use FACE_MODEL=local"
                )
            path = download_hsemotion_weights(settings.hsemotion_cache_dir, trusted)
        return cls.from_file(
            path, trusted=trusted, cache_dir=settings.hsemotion_cache_dir, threads=settings.model_threads
        )
