"""``POST /analyze`` on real files: photos, a RAVDESS clip in every claimed format, a real video.

The app runs with its lifespan (real models loaded) through FastAPI's TestClient. Lossy and
container formats are made in the test from the RAVDESS clip with PyAV's own encoders.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import httpx
import numpy as np
import pytest
import soundfile as sf
from fastapi.testclient import TestClient

from app import create_app
from realtime.audio import window_starts
from realtime.audio import SAMPLE_RATE, clip_windows, load_audio_file
from realtime.config import Settings
from realtime.engine import EmotionEngine
from realtime.labels import LABELS
from realtime.media import TooLong, decode_audio, iter_video_frames

SPEECH_CLIP = "Actor_19/03-01-05-02-01-01-19"  # angry, strong intensity, a test actor
OBAMA_FACE = {"x": (0.40, 0.66), "y": (0.06, 0.32)}  # where the face centre lies in obama.jpg

# suffix: (container, codec, encoder sample rate (None: the clip's), encoder options)
AUDIO_ENCODINGS: dict[str, tuple[str, str, int | None, dict[str, str]]] = {
    "mp3": ("mp3", "libmp3lame", None, {}),
    "ogg": ("ogg", "libopus", 48_000, {}),
    "oga": ("ogg", "vorbis", None, {"strict": "experimental"}),  # FFmpeg's own Vorbis encoder
    "webm": ("webm", "libopus", 48_000, {}),
    "m4a": ("mp4", "aac", None, {}),
}


# --- fixtures ---------------------------------------------------------------------------------


def _settings(tmp: Path, **overrides: Any) -> Settings:
    return Settings(face_model="local", hsemotion_cache_dir=tmp / "no-hsemotion", **overrides)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    with TestClient(create_app(_settings(tmp_path_factory.mktemp("app")))) as client:
        models = client.app.state.engine.models
        assert models.voice and models.face, f"the voice and face models must be loaded: {models.notes}"
        yield client


@pytest.fixture(scope="module")
def strict_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """An app with low limits: 100 kB per request, 2 s of media."""
    settings = _settings(tmp_path_factory.mktemp("strict"), max_upload_bytes=100_000, max_media_seconds=2.0)
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture(scope="module")
def speech_flac(ravdess_dir: Path) -> Path:
    path = ravdess_dir / f"{SPEECH_CLIP}.flac"
    assert path.is_file(), f"{path} not found"
    return path


@pytest.fixture(scope="module")
def speech_files(speech_flac: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The RAVDESS clip as FLAC (the original), WAV, and every lossy format, in stereo."""
    tmp = tmp_path_factory.mktemp("speech")
    samples, rate = sf.read(speech_flac, dtype="float32")
    files = {"flac": speech_flac, "wav": tmp / "speech.wav"}
    sf.write(files["wav"], samples, rate)
    for suffix, encoding in AUDIO_ENCODINGS.items():
        files[suffix] = tmp / f"speech.{suffix}"
        _encode_audio(samples, rate, files[suffix], *encoding)
    return files


def _encode_audio(
    samples: np.ndarray,
    rate: int,
    path: Path,
    container: str,
    codec: str,
    codec_rate: int | None,
    options: dict[str, str],
) -> None:
    """Encode a mono clip as stereo with one of PyAV's encoders."""
    out_rate = codec_rate or rate
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=out_rate, layout="stereo", options=options)
        frame = av.AudioFrame.from_ndarray(np.stack([samples, samples]), format="fltp", layout="stereo")
        frame.sample_rate = rate
        context = stream.codec_context
        resampler = av.AudioResampler(context.format, "stereo", out_rate, frame_size=context.frame_size or None)
        for chunk in resampler.resample(frame) + resampler.resample(None):
            out.mux(stream.encode(chunk))
        out.mux(stream.encode(None))


@pytest.fixture(scope="module")
def webm_video(media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 3 s of the Hamilton clip as WebM (VP8 320x180 + Opus), as a browser records it."""
    path = tmp_path_factory.mktemp("video") / "clip.webm"
    with av.open(str(media_dir / "short_hamilton_clip.mp4")) as src, av.open(str(path), "w", format="webm") as out:
        video = out.add_stream("libvpx", rate=30)
        video.width, video.height, video.pix_fmt = 320, 180, "yuv420p"
        audio = out.add_stream("libopus", rate=48_000, layout="stereo")
        to_opus = av.AudioResampler("s16", "stereo", 48_000)
        for frame in (f for f in src.decode(video=0, audio=0) if f.time <= 3.0):
            if isinstance(frame, av.VideoFrame):
                small = frame.reformat(320, 180, "yuv420p")
                small.pts, small.time_base = round(frame.time * 30), Fraction(1, 30)
                out.mux(video.encode(small))
            else:
                for chunk in to_opus.resample(frame):
                    out.mux(audio.encode(chunk))
        out.mux(video.encode(None))
        out.mux(audio.encode(None))
    return path


def _post(client: TestClient, **files: Path | tuple[str, bytes]) -> httpx.Response:
    form = {
        field: (value.name, value.read_bytes()) if isinstance(value, Path) else value for field, value in files.items()
    }
    return client.post("/analyze", files=form, data={"top_k": "3"})


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()


def _error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert len(error["message"]) > 10
    return error["message"]


def _check_emotion(emotion: dict[str, Any], k: int = 3) -> None:
    probs = emotion["probs"]
    assert list(probs) == list(LABELS)
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-3)
    assert len(emotion["top_k"]) == k
    assert emotion["top_k"][0][0].lower() == emotion["label"] == max(probs, key=probs.get)
    assert [p for _, p in emotion["top_k"]] == sorted((p for _, p in emotion["top_k"]), reverse=True)


# --- images -----------------------------------------------------------------------------------


def test_one_face(client: TestClient, media_dir: Path) -> None:
    image = _ok(_post(client, image=media_dir / "obama.jpg"))["image"]
    assert (image["width"], image["height"]) == (910, 1137)
    [face] = image["faces"]
    box = face["box"]
    assert OBAMA_FACE["x"][0] < box["x"] + box["w"] / 2 < OBAMA_FACE["x"][1]
    assert OBAMA_FACE["y"][0] < box["y"] + box["h"] / 2 < OBAMA_FACE["y"][1]
    assert 0.1 < box["w"] < 0.4 and box["score"] > 0.5
    _check_emotion(face["emotion"])
    assert face["emotion"]["label"] == "happy"  # a broad smile


def test_two_faces_largest_first(client: TestClient, media_dir: Path) -> None:
    faces = _ok(_post(client, image=media_dir / "two_people.jpg"))["image"]["faces"]
    assert len(faces) == 2
    areas = [f["box"]["w"] * f["box"]["h"] for f in faces]
    assert areas == sorted(areas, reverse=True)
    centres = sorted(f["box"]["x"] + f["box"]["w"] / 2 for f in faces)
    assert centres[0] < 0.5 < centres[1]  # one person on each side
    for face in faces:
        _check_emotion(face["emotion"])


def test_no_face_is_422(client: TestClient, media_dir: Path) -> None:
    message = _error(_post(client, image=media_dir / "dogs.jpg"), 422, "no_face")
    assert "no face" in message


@pytest.mark.parametrize("suffix", ["png", "webp", "bmp"])
def test_other_image_formats(client: TestClient, media_dir: Path, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"obama.{suffix}"
    cv2.imwrite(str(path), cv2.imread(str(media_dir / "obama_640x480.jpg")))
    assert len(_ok(_post(client, image=path))["image"]["faces"]) == 1


# --- audio ------------------------------------------------------------------------------------


def test_ravdess_flac_and_wav(client: TestClient, speech_files: dict[str, Path]) -> None:
    flac = _ok(_post(client, audio=speech_files["flac"]))["audio"]
    wav = _ok(_post(client, audio=speech_files["wav"]))["audio"]
    assert flac == wav  # lossless: the same samples, the same result

    assert flac["emotion"]["label"] == "angry"  # the clip's acted emotion
    samples = load_audio_file(speech_files["flac"])
    assert flac["duration"] == pytest.approx(samples.size / SAMPLE_RATE, abs=1e-3)
    _check_emotion(flac["emotion"])
    # the same clip-level rule as the engine's Python API (EmotionEngine.voice_probs)
    engine: EmotionEngine = client.app.state.engine
    expected = engine.voice.predict_clip(samples, silence_db=engine.settings.silence_db)
    assert list(flac["emotion"]["probs"].values()) == pytest.approx(expected.tolist(), abs=1e-3)

    timeline = flac["timeline"]
    assert len(timeline) == len(clip_windows(samples))
    assert [w["start"] for w in timeline[:-1]] == pytest.approx([0.5 * i for i in range(len(timeline) - 1)])
    assert timeline[-1]["end"] == pytest.approx(flac["duration"], abs=1e-3)
    assert any(w["silent"] for w in timeline) and not all(w["silent"] for w in timeline)
    for window in timeline:
        assert window["end"] - window["start"] == pytest.approx(1.0, abs=1e-3)
        _check_emotion(window["emotion"])


@pytest.mark.parametrize("suffix", list(AUDIO_ENCODINGS))
def test_lossy_and_container_formats(client: TestClient, speech_files: dict[str, Path], suffix: str) -> None:
    """MP3, OGG Opus, OGG Vorbis, WebM Opus, M4A AAC: decoded to the same clip, nearly the same result."""
    reference = _ok(_post(client, audio=speech_files["flac"]))["audio"]
    audio = _ok(_post(client, audio=speech_files[suffix]))["audio"]
    assert audio["duration"] == pytest.approx(reference["duration"], abs=0.15)  # codec padding
    _check_emotion(audio["emotion"])
    assert audio["emotion"]["label"] == "angry"
    difference = [abs(audio["emotion"]["probs"][label] - reference["emotion"]["probs"][label]) for label in LABELS]
    assert max(difference) < 0.15, (audio["emotion"], reference["emotion"])


def test_decoding_matches_the_training_loader(speech_flac: Path) -> None:
    """PyAV + resample_to_16k give the very samples the voice model was trained on."""
    assert np.array_equal(decode_audio(speech_flac, max_seconds=60), load_audio_file(speech_flac))


def test_window_starts_are_clip_windows() -> None:
    for seconds in (0.3, 1.0, 1.2, 3.84, 10.0):
        samples = np.random.default_rng(0).standard_normal(int(seconds * SAMPLE_RATE)).astype(np.float32)
        windows = clip_windows(samples)
        starts = window_starts(samples.size)
        assert len(starts) == len(windows)
        assert np.array_equal(windows[-1][: samples.size - starts[-1]], samples[starts[-1] : starts[-1] + SAMPLE_RATE])


# --- video ------------------------------------------------------------------------------------


def test_mp4_video(client: TestClient, media_dir: Path) -> None:
    video = _ok(_post(client, video=media_dir / "short_hamilton_clip.mp4"))["video"]
    assert video["sample_fps"] == 2.0
    frames = video["face_timeline"]
    times = [f["time"] for f in frames]
    assert 17 <= len(frames) <= 21 and 0 <= times[0] < 1.0 and times[-1] < 10.1  # a 10 s clip at 2 fps
    assert 0 < times[1] - times[0] <= 0.5  # then on the grid 0.5, 1.0, 1.5, … s
    assert all(0.4 < b - a < 0.6 for a, b in zip(times[1:], times[2:]))
    with_face = [f for f in frames if f["box"] is not None]
    assert len(with_face) >= 0.8 * len(frames)
    assert all(f["emotion"] is None for f in frames if f["box"] is None)

    voice_windows = video["voice_timeline"]
    assert voice_windows[-1]["end"] == pytest.approx(10.0, abs=0.1)
    assert len(voice_windows) == len(window_starts(round(voice_windows[-1]["end"] * SAMPLE_RATE)))

    for emotion in (video["face"], video["voice"], video["fused"]):
        _check_emotion(emotion)
    w = video["w_voice"]
    for label in LABELS:
        mixed = w * video["voice"]["probs"][label] + (1 - w) * video["face"]["probs"][label]
        assert video["fused"]["probs"][label] == pytest.approx(mixed, abs=2e-4)
    face_mean = np.mean([[f["emotion"]["probs"][label] for label in LABELS] for f in with_face], axis=0)
    assert list(video["face"]["probs"].values()) == pytest.approx(face_mean.tolist(), abs=1e-3)


def test_webm_video(client: TestClient, webm_video: Path) -> None:
    video = _ok(_post(client, video=webm_video))["video"]
    assert 5 <= len(video["face_timeline"]) <= 7  # 3 s at 2 fps
    assert any(f["box"] for f in video["face_timeline"])
    assert video["voice_timeline"][-1]["end"] == pytest.approx(3.0, abs=0.15)
    _check_emotion(video["fused"])


def test_all_three_at_once(client: TestClient, media_dir: Path, speech_files: dict[str, Path]) -> None:
    video = media_dir / "short_hamilton_clip.mp4"
    body = _ok(_post(client, image=media_dir / "obama.jpg", audio=speech_files["mp3"], video=video))
    assert body["labels"] == list(LABELS)
    assert body["models"]["voice"] and body["models"]["face"]
    assert body["image"]["faces"] and body["audio"]["timeline"] and body["video"]["face_timeline"]


async def test_uploads_do_not_stall_the_event_loop(tmp_path: Path, media_dir: Path) -> None:
    """While a video is analysed, the same event loop keeps answering other requests quickly."""
    settings = _settings(tmp_path)
    app = create_app(settings)
    app.state.engine = EmotionEngine.from_settings(settings)
    video = (media_dir / "short_hamilton_clip.mp4").read_bytes()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
            analysis = asyncio.create_task(http.post("/analyze", files={"video": ("clip.mp4", video)}))
            waits = []
            while not analysis.done():
                start = time.perf_counter()
                assert (await http.get("/health")).status_code == 200
                waits.append(time.perf_counter() - start)
                await asyncio.sleep(0.05)
            assert (await analysis).status_code == 200
    finally:
        app.state.engine.close()
    assert len(waits) >= 5 and max(waits) < 1.0, waits


# --- refusals ---------------------------------------------------------------------------------


def test_truncated_files_are_422(client: TestClient, media_dir: Path, speech_flac: Path) -> None:
    mp4 = (media_dir / "short_hamilton_clip.mp4").read_bytes()
    flac = speech_flac.read_bytes()
    _error(_post(client, video=("clip.mp4", mp4[: len(mp4) // 2])), 422, "corrupt_media")
    _error(_post(client, audio=("clip.flac", flac[: len(flac) // 2])), 422, "corrupt_media")
    jpeg = (media_dir / "obama.jpg").read_bytes()
    _error(_post(client, image=("obama.jpg", jpeg[: len(jpeg) // 2])), 422, "corrupt_media")


def test_text_named_jpg_is_415(client: TestClient) -> None:
    text = ("photo.jpg", b"This is a text file, not a photo.\n" * 20)
    assert "JPEG" in _error(_post(client, image=text), 415, "unsupported_media")
    _error(_post(client, audio=text), 415, "unsupported_media")
    _error(_post(client, video=text), 415, "unsupported_media")


def test_wrong_kind_of_media_is_415(client: TestClient, media_dir: Path, speech_files: dict[str, Path]) -> None:
    _error(_post(client, video=speech_files["wav"]), 415, "unsupported_media")  # no picture
    _error(_post(client, video=media_dir / "obama.jpg"), 415, "unsupported_media")  # a still
    _error(_post(client, audio=media_dir / "obama.jpg"), 415, "unsupported_media")  # no sound


def test_oversized_upload_is_413(strict_client: TestClient, media_dir: Path) -> None:
    _error(_post(strict_client, image=media_dir / "obama.jpg"), 413, "too_large")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is counted as the body arrives
        yield b"--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"x.jpg\"\r\n\r\n"
        for _ in range(50):
            yield bytes(10_000)

    headers = {"content-type": "multipart/form-data; boundary=b"}
    response = strict_client.post("/analyze", content=chunks(), headers=headers)
    assert "content-length" not in response.request.headers
    _error(response, 413, "too_large")


def test_too_long_is_413(strict_client: TestClient, speech_flac: Path) -> None:
    assert "2 s" in _error(_post(strict_client, audio=speech_flac), 413, "too_long")


def test_too_long_is_caught_while_decoding(media_dir: Path) -> None:
    """A raw MJPEG stream declares no duration: the limit holds as the frames are decoded."""
    frames = iter_video_frames(media_dir / "hamilton_640x480_15fps.mjpeg", sample_fps=2.0, max_seconds=3.0)
    with pytest.raises(TooLong):
        for frame in frames:
            assert frame.time <= 3.0


def test_bad_requests(client: TestClient, media_dir: Path) -> None:
    _error(client.post("/analyze"), 400, "no_input")
    _error(client.post("/analyze", files={"other": ("a.jpg", b"x")}), 400, "no_input")
    _error(_post(client, audio=("empty.wav", b"")), 400, "empty_upload")
    jpeg = (media_dir / "obama_640x480.jpg").read_bytes()
    response = client.post("/analyze", files={"image": ("a.jpg", jpeg)}, data={"top_k": "8"})
    assert "top_k" in _error(response, 422, "invalid_request")


def test_openapi_documents_analyze(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/analyze"]["post"]
    form = operation["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert set(spec["components"]["schemas"][form]["properties"]) == {"image", "audio", "video", "top_k"}
    assert {"200", "400", "413", "415", "422", "503"} <= set(operation["responses"])
    assert client.get("/docs").status_code == 200
