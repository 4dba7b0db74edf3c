"""Benchmark of the per-session tick, against the reference way of running it, in the same run.

For each face backend (``local``: the project's FER-2013 CNN on ONNX Runtime; ``b2``: an
EfficientNet-B2 with HSEmotion's architecture, *random weights*, on ONNX Runtime), over ``--updates``
updates on real inputs (frames of ``../shared/media/hamilton_640x480_15fps.mjpeg``, 1 s windows of
RAVDESS test-actor speech, a new window every 0.5 s as at RESULT_HZ=2), three ways of doing a tick:

- ``engine``: the engine's stages called one after another on this thread, each timed:
  ``decode`` (``EmotionEngine.decode_jpeg``), ``detect`` (``detect_faces``, MediaPipe), ``face``
  (``classify_faces``: crop + classify the largest face), ``voice`` (``voice_window_probs``: MFCC(40)
  + BiLSTM), ``fusion`` (``realtime.fusion``: smoothing of both histories, fusion, top-5). The
  voice model runs at every update (no silence gate): the worst case.
- ``session``: the live code, ``realtime.session.Session.tick`` (voice and face in the engine's
  worker pool at the same time, silence gate on), with its own ``latency_ms``; ``total`` is the
  tick as the client waits for it.
- ``baseline``: the reference system: every model in eager PyTorch with torch's default threads, one
  after another on the calling thread (the face CNN from its ``.pt``, the B2 as a timm module with
  the same weights; the BiLSTM as it is); decode, detect, crop, preprocessing and fusion the same.

The three run interleaved update by update on the same inputs, so that a change of machine load
hits all of them alike. ``speedup`` is the baseline's median tick over the engine's.

Then, per backend, the real server (uvicorn on a loopback port): start-up time from spawning the
process to ``/ready`` 200, and its resident memory (VmRSS) after start-up, after a warm-up of 2
sessions (one-off allocations of the worker threads), with 1 session and with ``--sessions``
sessions streaming (the load test's clients, the maximum while they stream), and after they closed.
The growth per extra session is (with N − with 1) / (N − 1).

``--experiments`` adds the measurements behind the tuning choices: per-face cost of the face model
by batch size and runtime threads, and face throughput with 1 or 2 threads calling at once.

Weights: ``weights/audio_bilstm.pt`` and ``weights/face_local.pt``/``.onnx``. A missing one is
replaced by a seeded random-weight model of the same architecture, and the report says so.

Example::

    python -m eval.bench --updates 200 --json runs/bench.json
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

import torch  # noqa: E402

# torch's default intra-op threads, read before the engine caps them: the reference runs with these.
TORCH_DEFAULT_THREADS = torch.get_num_threads()

from eval.loadtest import emit, machine, mjpeg_frames, rss_mb, run_load, speech  # noqa: E402
from realtime.audio import SAMPLE_RATE  # noqa: E402
from realtime.config import Settings  # noqa: E402
from realtime.fusion import History, fuse, prediction, top_k  # noqa: E402
from realtime.protocol import AudioMessage, FrameMessage  # noqa: E402

B2_LABEL = "EfficientNet-B2 (random weights, HSEmotion architecture)"
DEFAULT_CACHE = Path.home() / ".cache" / "emotion-bench"
WEIGHTS = PROJECT_ROOT / "weights"
STAGES = ("decode", "detect", "face", "voice", "fusion")
SEED = 0


# --- models: the real weights, or labelled stand-ins ----------------------------------------


@dataclass(frozen=True)
class Standin:
    onnx: Path
    torch_path: Path
    blob_id: str


def b2_standin(cache_dir: Path | None = None, seed: int = SEED) -> Standin:
    """HSEmotion's architecture (timm ``tf_efficientnet_b2``, 7 classes) with seeded random weights.

    Exported once to ONNX by ``realtime.hsemotion``'s own conversion (checked against eager torch),
    cached in ``cache_dir`` with its state dict for the eager baseline. The server trusts it
    through HSEMOTION_EXTRA_SHA1 = its git blob id.
    """
    import timm

    from realtime.hsemotion import TIMM_ARCHITECTURE, _export_onnx, git_blob_sha1

    cache_dir = Path(cache_dir or DEFAULT_CACHE)
    key = f"{TIMM_ARCHITECTURE}_7cls_seed{seed}_timm{timm.__version__}_torch{torch.__version__.split('+')[0]}"
    onnx_path, torch_path = cache_dir / f"{key}.onnx", cache_dir / f"{key}.pt"
    if not (onnx_path.is_file() and torch_path.is_file()):
        cache_dir.mkdir(parents=True, exist_ok=True)
        model = _b2_module(seed)
        torch.save(model.state_dict(), torch_path)
        _export_onnx(model, onnx_path)
    return Standin(onnx_path, torch_path, git_blob_sha1(onnx_path))


def _b2_module(seed: int) -> torch.nn.Module:
    import timm

    from realtime.hsemotion import TIMM_ARCHITECTURE
    from realtime.labels import NUM_LABELS

    torch.manual_seed(seed)
    return timm.create_model(TIMM_ARCHITECTURE, num_classes=NUM_LABELS, pretrained=False).eval()


def local_face_weights(cache_dir: Path) -> tuple[Path, str | None]:
    """``weights/face_local.pt``, or a seeded random VGG48 stand-in (and a note) when it is absent."""
    real = WEIGHTS / "face_local.pt"
    if real.is_file():
        return real, None
    from eval.train_face import build_model, save_weights

    path = cache_dir / f"face_vgg48_random_seed{SEED}.pt"
    if not path.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(SEED)
        save_weights(path, build_model("vgg48").eval(), "vgg48", 48)
    return path, f"{real} absent: local face model is a VGG48 with random weights (stand-in)"


def voice_weights(cache_dir: Path) -> tuple[Path, str | None]:
    """``weights/audio_bilstm.pt``, or a seeded random BiLSTM stand-in (and a note) when it is absent."""
    real = WEIGHTS / "audio_bilstm.pt"
    if real.is_file():
        return real, None
    from realtime.voice import VoiceBiLSTM, VoiceModelConfig, save_weights

    path = cache_dir / f"audio_bilstm_random_seed{SEED}.pt"
    if not path.is_file():
        torch.manual_seed(SEED)
        config = VoiceModelConfig()
        save_weights(path, VoiceBiLSTM(config).eval(), config, {"note": "random weights, benchmark stand-in"})
    return path, f"{real} absent: voice model is a BiLSTM with random weights (stand-in)"


@dataclass
class Backend:
    """One face backend: its settings, a label, and the eager-torch reference of its face model."""

    key: str
    label: str
    settings: Settings
    server_env: dict[str, str]
    eager_face: Callable[[Any, Sequence[np.ndarray]], np.ndarray]  # (engine face classifier, crops) -> probs
    notes: list[str]


def make_backend(key: str, cache_dir: Path, voice_path: Path, workers: int | None, threads: int) -> Backend:
    common: dict[str, Any] = {"voice_weights": voice_path, "model_threads": threads, "quickcheck": False}
    if workers:
        common["workers"] = workers
    env = {"VOICE_WEIGHTS": str(voice_path), "MODEL_THREADS": str(threads), **({"WORKERS": str(workers)} if workers else {})}
    if key == "local":
        from eval.train_face import ServingModel, load_weights

        pt_path, note = local_face_weights(cache_dir)
        onnx_path = pt_path.with_suffix(".onnx")
        model = ServingModel(load_weights(pt_path)[0]).eval()

        def eager_local(classifier: Any, crops: Sequence[np.ndarray]) -> np.ndarray:
            pixels = torch.from_numpy(classifier.preprocess(crops))  # the same preprocessing as ONNX
            with torch.inference_mode():
                probs = model(torch.cat([pixels, pixels.flip(-1)]))  # image and mirror, as the server
            n = len(crops)
            mean = (probs[:n] + probs[n:]) / 2
            return (mean / mean.sum(dim=1, keepdim=True)).numpy()

        settings = Settings(face_model="local", face_local_weights=onnx_path, **common)
        label = f"local CNN ({pt_path.name})" if note is None else "VGG48 (random weights, local architecture)"
        env.update({"FACE_MODEL": "local", "FACE_LOCAL_WEIGHTS": str(onnx_path)})
        return Backend(key, label, settings, env, eager_local, [note] if note else [])
    if key == "b2":
        from realtime.hsemotion import preprocess

        standin = b2_standin(cache_dir)
        model = _b2_module(SEED)
        model.load_state_dict(torch.load(standin.torch_path, map_location="cpu", weights_only=True))
        model.eval()

        def eager_b2(classifier: Any, crops: Sequence[np.ndarray]) -> np.ndarray:
            with torch.inference_mode():
                return model(torch.from_numpy(preprocess(crops))).softmax(dim=1).numpy()

        settings = Settings(
            face_model="hsemotion",
            hsemotion_weights=standin.onnx,
            hsemotion_extra_sha1=standin.blob_id,
            hsemotion_cache_dir=cache_dir,
            **common,
        )
        env.update({
            "FACE_MODEL": "hsemotion",
            "HSEMOTION_WEIGHTS": str(standin.onnx),
            "HSEMOTION_EXTRA_SHA1": standin.blob_id,
            "HSEMOTION_CACHE_DIR": str(cache_dir),
        })
        return Backend(key, B2_LABEL, settings, env, eager_b2, [f"{B2_LABEL}: timing only, its outputs mean nothing"])
    raise SystemExit(f"unknown backend {key!r}: local or b2")


# --- statistics -----------------------------------------------------------------------------


def stats(values: Sequence[float]) -> dict[str, float | int | None]:
    if not len(values):
        return {"n": 0, "median": None, "p95": None, "mean": None, "min": None, "max": None}
    array = np.asarray(values, dtype=np.float64)
    return {
        "n": int(array.size),
        "median": round(float(np.median(array)), 3),
        "p95": round(float(np.percentile(array, 95)), 3),
        "mean": round(float(array.mean()), 3),
        "min": round(float(array.min()), 3),
        "max": round(float(array.max()), 3),
    }


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


# --- one tick, three ways ---------------------------------------------------------------------


class Fusion:
    """The session's smoothing and fusion (``realtime.fusion``), with its own histories."""

    def __init__(self, settings: Settings) -> None:
        self.voice = History(settings.voice_smoothing, settings.evidence_max_age)
        self.face = History(settings.face_smoothing, settings.evidence_max_age)
        self.w_voice = settings.w_voice

    def __call__(self, now: float, voice: np.ndarray | None, face: np.ndarray | None) -> dict[str, Any]:
        self.voice.add(now, voice)
        self.face.add(now, face)
        v, f = self.voice.smoothed(now), self.face.smoothed(now)
        fused = fuse(v, f, self.w_voice)
        return {"voice": prediction(v), "face": prediction(f), "fused": prediction(fused), "top5": top_k(fused, 5)}


def engine_tick(engine: Any, fusion: Fusion, jpeg: bytes, window: np.ndarray, now: float) -> tuple[dict[str, float], bool]:
    """The engine's stages one after another, each timed (ms); and whether a face was found."""
    times: dict[str, float] = {}
    start = time.perf_counter()
    image = engine.decode_jpeg(jpeg)
    times["decode"] = _ms(start)
    start = time.perf_counter()
    boxes = engine.detect_faces(image)
    times["detect"] = _ms(start)
    start = time.perf_counter()
    face = engine.classify_faces(image, boxes[:1])[0] if boxes else None
    times["face"] = _ms(start)
    start = time.perf_counter()
    voice = engine.voice_window_probs(window)
    times["voice"] = _ms(start)
    start = time.perf_counter()
    fusion(now, voice, face)
    times["fusion"] = _ms(start)
    times["total"] = sum(times[s] for s in STAGES)
    return times, face is not None


def baseline_tick(
    engine: Any, backend: Backend, fusion: Fusion, jpeg: bytes, window: np.ndarray, now: float
) -> dict[str, float]:
    """The reference: eager torch models at torch's default threads, one after another."""
    from realtime.face import crop_face

    threads = torch.get_num_threads()
    torch.set_num_threads(TORCH_DEFAULT_THREADS)
    try:
        times: dict[str, float] = {}
        start = time.perf_counter()
        image = engine.decode_jpeg(jpeg)
        times["decode"] = _ms(start)
        start = time.perf_counter()
        boxes = engine.detect_faces(image)
        times["detect"] = _ms(start)
        start = time.perf_counter()
        face = None
        if boxes:
            crop = crop_face(image, boxes[0], engine.settings.face_margin)
            face = backend.eager_face(engine.face, [crop])[0]
        times["face"] = _ms(start)
        start = time.perf_counter()
        voice = engine.voice.predict_window(window)  # the BiLSTM is eager torch already
        times["voice"] = _ms(start)
        start = time.perf_counter()
        fusion(now, voice, face)
        times["fusion"] = _ms(start)
        times["total"] = sum(times[s] for s in STAGES)
        return times
    finally:
        torch.set_num_threads(threads)


def warm_pool(engine: Any, jpeg: bytes) -> list[float]:
    """Analyse one frame on every worker thread of the engine's pool, at once; the time of each (ms).

    The first frame a thread analyses builds that thread's MediaPipe graph and the runtimes'
    buffers; done here, the measured ticks are the steady state, and the one-off cost is reported.
    """
    workers = engine.settings.workers
    barrier = threading.Barrier(workers)

    def first_frame(_: int) -> float:
        barrier.wait(timeout=60)  # every call on its own thread
        start = time.perf_counter()
        engine.analyze_jpeg(jpeg)
        return round(_ms(start), 1)

    return list(engine.pool.map(first_frame, range(workers)))


async def measure_backend(
    backend: Backend, updates: int, warmup: int, frames: list[bytes], audio: np.ndarray, baseline: bool
) -> dict[str, Any]:
    from realtime.engine import EmotionEngine
    from realtime.session import Session

    start = time.perf_counter()
    engine = EmotionEngine.from_settings(backend.settings)
    load_s = time.perf_counter() - start
    if engine.face is None or engine.voice is None:
        raise SystemExit(f"{backend.key}: models not loaded: {engine.notes}")
    pool_warm_up_ms = warm_pool(engine, frames[0])
    session = Session(backend.settings, engine)
    engine_fusion, baseline_fusion = Fusion(backend.settings), Fusion(backend.settings)
    window_samples, hop = SAMPLE_RATE, SAMPLE_RATE // 2
    samples: dict[str, dict[str, list[float]]] = {"engine": {}, "session": {}, "baseline": {}}
    faces_found = 0
    voice_runs = 0
    session_wall: list[float] = []
    try:
        for i in range(warmup + updates):
            jpeg = frames[(i * 4) % len(frames)]  # the 15 fps clip at about 4 frames per second
            end = window_samples + (i * hop) % (audio.size - window_samples)
            window = audio[end - window_samples : end]
            now = time.monotonic()
            times, found = engine_tick(engine, engine_fusion, jpeg, window, now)
            # The live session: it receives the last 0.5 s of audio and the frame, then ticks.
            session.receive(AudioMessage(audio[end - hop : end].copy(), None))
            session.receive(FrameMessage(jpeg, None))
            tick_start = time.perf_counter()
            messages = await session.tick()
            tick_wall = _ms(tick_start)
            result = next(m for m in messages if m["type"] == "result")
            base = baseline_tick(engine, backend, baseline_fusion, jpeg, window, now) if baseline else None
            if i < warmup:
                continue
            faces_found += found
            voice_runs += "voice" in result["latency_ms"]
            session_wall.append(tick_wall)
            for way, values in (("engine", times), ("session", result["latency_ms"]), ("baseline", base or {})):
                for stage, ms in values.items():
                    samples[way].setdefault(stage, []).append(float(ms))
    finally:
        engine.close()

    ways = {way: {stage: stats(v) for stage, v in by_stage.items()} for way, by_stage in samples.items() if by_stage}
    report: dict[str, Any] = {
        "label": backend.label,
        "face_model": engine.models.face,
        "voice_model": engine.models.voice,
        "engine_load_s": round(load_s, 2),
        "pool_thread_first_frame_ms": pool_warm_up_ms,
        "updates": updates,
        "faces_found": faces_found,
        "session_voice_runs": voice_runs,
        "tick_ms": {
            "engine_sequential": ways["engine"]["total"],
            "session": ways["session"]["total"],
            **({"baseline": ways["baseline"]["total"]} if baseline else {}),
        },
        "stages_ms": ways,
        "session_tick_wall_ms": stats(session_wall),
        "notes": backend.notes,
    }
    if baseline:
        base_median = ways["baseline"]["total"]["median"]
        report["speedup_median"] = {
            "baseline_over_engine": round(base_median / ways["engine"]["total"]["median"], 2),
            "baseline_over_session": round(base_median / ways["session"]["total"]["median"], 2),
        }
    return report


# --- experiments behind the tuning choices ------------------------------------------------------


def face_crops(engine: Any, frames: list[bytes], count: int) -> list[np.ndarray]:
    from realtime.face import crop_face

    crops = []
    for jpeg in frames[::5]:
        image = engine.decode_jpeg(jpeg)
        boxes = engine.detect_faces(image)
        if boxes:
            crops.append(crop_face(image, boxes[0], engine.settings.face_margin))
        if len(crops) == count:
            break
    return crops


def _per_face_ms(predict: Callable[[list[np.ndarray]], np.ndarray], crops: list[np.ndarray], batch: int, seconds: float) -> float:
    predict(crops[:batch])  # warm-up
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        predict(crops[:batch])
        done += batch
    return round(_ms(start) / done, 3)


def _throughput(predict: Callable[[list[np.ndarray]], np.ndarray], crops: list[np.ndarray], batch: int, threads: int, seconds: float) -> float:
    """Faces per second when ``threads`` threads call ``predict`` on batches of ``batch`` at once."""
    stop = time.perf_counter() + seconds
    counts = [0] * threads

    def work(k: int) -> None:
        while time.perf_counter() < stop:
            predict(crops[:batch])
            counts[k] += batch

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))
    return round(sum(counts) / (time.perf_counter() - start), 1)


def experiments(backend: Backend, frames: list[bytes], seconds: float) -> dict[str, Any]:
    """Per-face cost by batch size and ORT threads; throughput of 1 or 2 concurrent callers."""
    from realtime.engine import EmotionEngine
    from realtime.face import load_face_classifier

    engine = EmotionEngine.from_settings(backend.settings)
    try:
        crops = face_crops(engine, frames, 8)
        while len(crops) < 8:
            crops += crops[: 8 - len(crops)]
        out: dict[str, Any] = {"per_face_ms_by_batch": {}, "per_face_ms_by_ort_threads": {}, "faces_per_s": {}}
        for batch in (1, 2, 4, 8):
            out["per_face_ms_by_batch"][batch] = _per_face_ms(engine.face.predict_batch, crops, batch, seconds)
        for threads in (1, 2):
            face, _ = load_face_classifier(backend.settings.model_copy(update={"model_threads": threads}))
            out["per_face_ms_by_ort_threads"][threads] = _per_face_ms(face.predict_batch, crops, 1, seconds)
        for callers, batch in ((1, 1), (2, 1), (1, 2), (1, 4), (2, 4)):
            out["faces_per_s"][f"{callers}x_batch{batch}"] = _throughput(engine.face.predict_batch, crops, batch, callers, seconds)
        torch.set_num_threads(TORCH_DEFAULT_THREADS)
        out["eager_torch_per_face_ms_default_threads"] = _call_ms(lambda: backend.eager_face(engine.face, crops[:1]), seconds)
        torch.set_num_threads(backend.settings.model_threads)
        window = speech(1.5)[:SAMPLE_RATE]
        voice = {}
        for threads in sorted({1, TORCH_DEFAULT_THREADS}):
            torch.set_num_threads(threads)
            voice[threads] = _call_ms(lambda: engine.voice_window_probs(window), seconds)
        torch.set_num_threads(backend.settings.model_threads)
        out["voice_ms_by_torch_threads"] = voice
        out.update(_voice_parts(engine, window, seconds))
        out.update(_image_parts(engine, frames, seconds))
        return out
    finally:
        engine.close()


def _call_ms(fn: Callable[[], object], seconds: float) -> float:
    fn()
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        done += 1
    return round(_ms(start) / done, 3)


def _voice_parts(engine: Any, window: np.ndarray, seconds: float) -> dict[str, Any]:
    """MFCC alone (BLAS threads 1 vs default), and the BiLSTM alone in eager torch vs ONNX Runtime."""
    import tempfile

    import onnxruntime as ort
    from threadpoolctl import threadpool_limits

    from realtime.audio import mfcc_features

    out: dict[str, Any] = {"mfcc_only_ms_by_blas_threads": {}}
    for limit in (1, None):
        with threadpool_limits(limits=limit, user_api="blas"):
            out["mfcc_only_ms_by_blas_threads"][limit or "default"] = _call_ms(lambda: mfcc_features(window), seconds)
    features = torch.from_numpy(mfcc_features(window)[None])
    model = engine.voice.model
    torch.set_num_threads(1)

    def eager() -> None:
        with torch.inference_mode():
            model(features)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bilstm.onnx"
        with torch.no_grad():
            torch.onnx.export(model, (features,), str(path), input_names=["mfcc"], output_names=["logits"],
                              dynamic_axes={"mfcc": {0: "batch"}}, opset_version=17, dynamo=False)
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        x = features.numpy()
        with torch.no_grad():
            diff = float(np.abs(session.run(None, {"mfcc": x})[0] - model(features).numpy()).max())
        out["bilstm_only_ms_1_thread"] = {
            "eager_torch": _call_ms(eager, seconds),
            "onnxruntime": _call_ms(lambda: session.run(None, {"mfcc": x}), seconds),
            "onnx_max_abs_diff_logits": diff,
        }
    torch.set_num_threads(engine.settings.model_threads)
    return out


def _image_parts(engine: Any, frames: list[bytes], seconds: float) -> dict[str, Any]:
    """JPEG decode at full and half resolution (libjpeg's DCT scaling), detection on each."""
    import cv2

    jpeg = frames[0]
    full = engine.decode_jpeg(jpeg)
    half = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_REDUCED_COLOR_2)
    return {
        "decode_ms": {
            "full_640x480": _call_ms(lambda: engine.decode_jpeg(jpeg), seconds),
            "reduced_320x240": _call_ms(
                lambda: cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_REDUCED_COLOR_2), seconds
            ),
        },
        "detect_ms": {
            "full_640x480": _call_ms(lambda: engine.detect_faces(full), seconds),
            "reduced_320x240": _call_ms(lambda: engine.detect_faces(half), seconds),
            "faces_found_full_vs_reduced": [len(engine.detect_faces(full)), len(engine.detect_faces(half))],
        },
    }


# --- the real server: start-up and memory -----------------------------------------------------


def measure_server(backend: Backend, sessions: int, seconds: float, frames: list[bytes], audio: np.ndarray, log_dir: Path | None) -> dict[str, Any]:
    from eval.server_process import server_process

    log_path = log_dir / f"bench_server_{backend.key}.log" if log_dir else None
    with server_process(backend.server_env, log_path=log_path) as server:
        url = server.base.replace("http://", "ws://") + "/ws"
        rss_ready = rss_mb(server.pid)
        # Two sessions first, so that both worker threads have made their one-off allocations
        # (a MediaPipe graph per thread, runtime arenas): what follows is the cost of a session.
        warm = asyncio.run(run_load(url, 2, seconds, server.pid, audio=audio, frames=frames))
        one = asyncio.run(run_load(url, 1, seconds, server.pid, audio=audio, frames=frames))
        many = asyncio.run(run_load(url, sessions, seconds, server.pid, audio=audio, frames=frames))
        rss_one, rss_many = one["server_rss_mb"]["max"], many["server_rss_mb"]["max"]
        growth = (rss_many - rss_one) / (sessions - 1) if sessions > 1 and rss_one and rss_many else None
        return {
            "ready_s": round(server.ready_s, 2),
            "rss_mb": {
                "after_ready": round(rss_ready, 1) if rss_ready else None,
                "after_warm_up_2_sessions": warm["server_rss_mb"]["end"],
                "with_1_session": rss_one,
                f"with_{sessions}_sessions": rss_many,
                "after_sessions_closed": many["server_rss_mb"]["end"],
            },
            "rss_growth_mb_per_extra_session": None if growth is None else round(growth, 2),
            "sessions": sessions,
            "session_seconds": seconds,
            "errors": sum(run["aggregate"]["errors"] for run in (warm, one, many)),
            "results_per_s_median": many["aggregate"]["results_per_s"]["median"],
        }


# --- CLI ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=200, help="measured updates per backend (after --warmup)")
    parser.add_argument("--warmup", type=int, default=5, help="updates run first and not counted")
    parser.add_argument("--backends", default="local,b2", help="comma-separated: local, b2")
    parser.add_argument("--workers", type=int, help="engine worker threads (default: the settings' WORKERS)")
    parser.add_argument("--model-threads", type=int, default=1, help="threads per model runtime call (MODEL_THREADS)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the eager-PyTorch reference")
    parser.add_argument("--no-server", action="store_true", help="skip start-up time and server memory")
    parser.add_argument("--sessions", type=int, default=10, help="sessions for the server memory figure")
    parser.add_argument("--session-seconds", type=float, default=4.0, help="how long those sessions stream")
    parser.add_argument("--experiments", action="store_true", help="also batch-size, threads and throughput figures")
    parser.add_argument("--experiment-seconds", type=float, default=1.5, help="time per experiment point")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="stand-in models are built here")
    parser.add_argument("--log-dir", type=Path, help="folder for the servers' logs")
    parser.add_argument("--json", type=Path, help="also write the report to this file")
    args = parser.parse_args(argv)
    if args.updates < 1 or args.warmup < 0 or args.sessions < 1:
        parser.error("--updates and --sessions must be >= 1, --warmup >= 0")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"kind": "bench", "machine": machine()}
    voice_path, voice_note = voice_weights(args.cache_dir)
    frames = mjpeg_frames()
    audio = speech(args.updates * 0.5 + 2.0 + args.warmup * 0.5)
    report["inputs"] = {
        "frames": f"{len(frames)} JPEG frames of hamilton_640x480_15fps.mjpeg (640x480), every 4th in turn",
        "audio": f"{audio.size / SAMPLE_RATE:.0f} s of RAVDESS speech (test actors 19-24), 1 s windows every 0.5 s",
        "updates": args.updates,
        "warmup": args.warmup,
    }
    report["settings"] = {
        "model_threads": args.model_threads,
        "workers": args.workers or Settings().workers,
        "torch_default_threads": TORCH_DEFAULT_THREADS,
        "ort_version": __import__("onnxruntime").__version__,
        "torch_version": torch.__version__,
    }
    report["notes"] = [n for n in (voice_note,) if n]
    report["backends"] = {}
    report["experiments"] = {}
    report["server"] = {}
    backends = [make_backend(k.strip(), args.cache_dir, voice_path, args.workers, args.model_threads)
                for k in args.backends.split(",") if k.strip()]
    for backend in backends:
        result = asyncio.run(measure_backend(backend, args.updates, args.warmup, frames, audio, not args.no_baseline))
        report["backends"][backend.key] = result
        if args.experiments:
            report["experiments"][backend.key] = experiments(backend, frames, args.experiment_seconds)
    if not args.no_server:
        for backend in backends:
            try:
                report["server"][backend.key] = measure_server(
                    backend, args.sessions, args.session_seconds, frames, audio, args.log_dir
                )
            except (RuntimeError, TimeoutError) as exc:  # keep the tick figures of a long run
                report["server"][backend.key] = {"error": str(exc)}
    report["machine"]["load_average_1m_after"] = round(os.getloadavg()[0], 2)
    report["machine"]["threads_alive_in_bench"] = threading.active_count()
    emit(report, args.json, summary(report))
    return report


def summary(report: dict[str, Any]) -> str:
    """A few human lines: medians per backend and the ratio to the baseline."""
    lines = []
    for key, b in report["backends"].items():
        ticks = b["tick_ms"]
        line = f"{key} [{b['label']}]: tick p50 engine {ticks['engine_sequential']['median']:.1f} ms, session {ticks['session']['median']:.1f} ms"
        if "baseline" in ticks:
            line += f", baseline {ticks['baseline']['median']:.1f} ms -> x{b['speedup_median']['baseline_over_engine']:.2f}"
        lines.append(line)
    for key, s in report["server"].items():
        if "error" in s:
            lines.append(f"{key} server: {s['error']}")
            continue
        lines.append(f"{key} server: ready {s['ready_s']} s, RSS {s['rss_mb']}, +{s['rss_growth_mb_per_extra_session']} MB/session")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
