"""File analysis over HTTP: ``POST /analyze`` with a photo, a voice recording and/or a video clip.

The same engine as the live stream does the work, in its worker pool, in small jobs (one window
batch or one video frame each), so that an upload never holds the pool long enough to stall the
live sessions. Uploads are spooled by Starlette to anonymous temporary files (in memory up to
1 MB), counted while they arrive (over ``MAX_UPLOAD_BYTES``: 413 before the rest is read), and
closed, which deletes them, when the response is sent. Nothing is kept.

Every refusal is JSON ``{"error": {"code", "message"}}`` with a fitting status, never a 500.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import Message, Receive

from realtime.audio import SAMPLE_RATE, level_db, window_starts
from realtime.engine import EmotionEngine, FrameAnalysis
from realtime.face import FaceBox
from realtime.fusion import fuse, prediction, top_k
from realtime.labels import LABELS
from realtime.media import (
    EmptyUpload,
    MediaError,
    TooLarge,
    UnsupportedMedia,
    VideoFrame,
    decode_audio,
    decode_image,
    iter_video_frames,
)
from realtime.voice import VoiceClassifier

WINDOW_S, HOP_S = 1.0, 0.5  # the voice timeline: the engine's windows (VoiceClassifier.predict_clip)
WINDOWS_PER_JOB = 32  # voice windows per pool job: a long clip shares the pool with live sessions


class NoInput(MediaError):
    status, code = 400, "no_input"


class NoFace(MediaError):
    status, code = 422, "no_face"


class ModelUnavailable(MediaError):
    status, code = 503, "model_unavailable"


# --- response models --------------------------------------------------------------------------


class Emotion(BaseModel):
    label: str = Field(description="The primary emotion: the most likely label", examples=["happy"])
    probs: dict[str, float] = Field(description="Probability of each of the 7 labels, summing to 1")
    top_k: list[tuple[str, float]] = Field(
        description="The k most likely labels (first letter capitalised) with their probabilities, descending",
        examples=[[["Happy", 0.81], ["Neutral", 0.12]]],
    )


class Box(BaseModel):
    """A face box normalised to the image: top-left corner and size, each in [0, 1]."""

    x: float
    y: float
    w: float
    h: float
    score: float = Field(description="Detector confidence")


class FaceResult(BaseModel):
    box: Box
    emotion: Emotion


class ImageResult(BaseModel):
    width: int
    height: int
    faces: list[FaceResult] = Field(description="Every face found, largest first (never empty)")


class VoiceWindow(BaseModel):
    start: float = Field(description="Seconds from the start of the sound")
    end: float
    level_db: float = Field(description="RMS level in dBFS")
    silent: bool = Field(description="Below the silence gate (SILENCE_DB): left out of the summary")
    emotion: Emotion


class AudioResult(BaseModel):
    duration: float = Field(description="Seconds")
    emotion: Emotion = Field(
        description="The whole clip: mean over the windows above the silence gate (over all when none is)"
    )
    timeline: list[VoiceWindow] = Field(description="1 s windows every 0.5 s; the last one ends with the clip")


class FaceFrame(BaseModel):
    time: float = Field(description="Seconds from the start of the file")
    box: Box | None = Field(description="The largest face, or null when the frame shows none")
    emotion: Emotion | None


class VideoResult(BaseModel):
    sample_fps: float = Field(description="Frames analysed per second of video (VIDEO_SAMPLE_FPS)")
    face: Emotion | None = Field(description="Mean over the frames with a face; null when no frame has one")
    voice: Emotion | None = Field(description="The sound track, as for `audio`; null without one")
    fused: Emotion = Field(
        description="w_voice·voice + (1−w_voice)·face; one modality alone when the other is null"
    )
    w_voice: float
    face_timeline: list[FaceFrame]
    voice_timeline: list[VoiceWindow]


class Models(BaseModel):
    voice: str | None
    face: str | None


class AnalyzeResponse(BaseModel):
    labels: list[str] = Field(description="The 7 labels, in the order used everywhere")
    models: Models = Field(description="The models that produced the result (null: not loaded)")
    image: ImageResult | None = None
    audio: AudioResult | None = None
    video: VideoResult | None = None


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in {
        400: "No file sent (`no_input`), an empty file (`empty_upload`), a malformed form (`invalid_request`)",
        413: "Over MAX_UPLOAD_BYTES or MAX_FRAME_PIXELS (`too_large`), over MAX_MEDIA_SECONDS (`too_long`)",
        415: "Not a format the API reads, or no track of the kind sent (`unsupported_media`)",
        422: "Corrupt or truncated (`corrupt_media`), no face (`no_face`), a bad `top_k` (`invalid_request`)",
        503: "The model the file needs is not loaded (`model_unavailable`)",
    }.items()
}


def error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse(ErrorResponse(error=ErrorDetail(code=code, message=message)).model_dump(), status_code=status)


# --- the upload size limit and the error responses ---------------------------------------------


class _LimitedBody:
    """The request body's ``receive``, refusing the request once more than ``limit`` bytes arrived."""

    def __init__(self, receive: Receive, limit: int) -> None:
        self._receive = receive
        self.limit = limit
        self.received = 0

    @property
    def exceeded(self) -> bool:
        return self.received > self.limit

    def too_large(self) -> TooLarge:
        return TooLarge(f"the upload is over the limit of {self.limit} bytes (MAX_UPLOAD_BYTES); send a smaller file")

    async def receive(self) -> Message:
        message = await self._receive()
        self.received += len(message.get("body", b""))
        if self.exceeded:
            raise self.too_large()
        return message


def _declared_length(request: Request) -> int:
    try:
        return int(request.headers.get("content-length", "0"))
    except ValueError:
        return 0


class UploadRoute(APIRoute):
    """Counts the body while it streams in, and answers every refusal as an :class:`ErrorResponse`.

    FastAPI reads a multipart body before the endpoint runs, so the limit has to sit here, around
    the route's handler, where it also applies to the per-app settings.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handler(request: Request) -> Response:
            body = _LimitedBody(request.receive, request.app.state.engine.settings.max_upload_bytes)
            try:
                if _declared_length(request) > body.limit:
                    raise body.too_large()
                return await handle(Request(request.scope, body.receive))
            except MediaError as error:
                return error_response(error.status, error.code, str(error))
            except RequestValidationError as error:
                problems = "; ".join(f"{'.'.join(map(str, e['loc'][1:]))}: {e['msg']}" for e in error.errors())
                return error_response(422, "invalid_request", problems)
            except HTTPException as error:
                if body.exceeded:  # FastAPI reports a failed body read as a 400
                    too_large = body.too_large()
                    return error_response(too_large.status, too_large.code, str(too_large))
                return error_response(error.status_code, "invalid_request", str(error.detail))

        return handler


router = APIRouter(tags=["file analysis"], route_class=UploadRoute)


# --- results ----------------------------------------------------------------------------------


def _emotion(probs: np.ndarray, k: int) -> Emotion:
    """The label and probabilities as in the stream's results (``prediction``), and the top k."""
    predicted = prediction(probs)
    assert predicted is not None  # probs is not None
    return Emotion(label=predicted["label"], probs=predicted["probs"], top_k=top_k(probs, k))


def _box(box: FaceBox) -> Box:
    return Box(x=round(box.x, 4), y=round(box.y, 4), w=round(box.w, 4), h=round(box.h, 4), score=round(box.score, 4))


def _voice_model(engine: EmotionEngine) -> VoiceClassifier:
    if engine.voice is None:
        raise ModelUnavailable(f"no voice model is loaded (VOICE_WEIGHTS={engine.settings.voice_weights}); see /ready")
    return engine.voice


def _require_face_model(engine: EmotionEngine) -> None:
    if engine.face is None or engine.detector is None:
        raise ModelUnavailable("no face model is loaded (see FACE_MODEL and /ready)")


# --- image ------------------------------------------------------------------------------------


def analyze_image(engine: EmotionEngine, data: bytes, k: int) -> ImageResult:
    """Every face of an image file, largest first. Runs in the pool."""
    image = decode_image(data, engine.settings.max_frame_pixels)
    boxes = engine.detect_faces(image)
    if not boxes:
        raise NoFace("no face found in the image; send a photo in which a face is visible, frontal and not tiny")
    probs = engine.classify_faces(image, boxes)
    faces = [FaceResult(box=_box(box), emotion=_emotion(p, k)) for box, p in zip(boxes, probs)]
    return ImageResult(width=image.shape[1], height=image.shape[0], faces=faces)


# --- voice ------------------------------------------------------------------------------------


def _score_windows(voice: VoiceClassifier, samples: np.ndarray, starts: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities (N, 7) and levels (N,) of the windows at ``starts``. Runs in the pool."""
    size = round(WINDOW_S * SAMPLE_RATE)
    windows = np.stack([np.pad(samples[s : s + size], (0, max(0, s + size - samples.size))) for s in starts])
    return voice.predict_windows(windows), np.array([level_db(w) for w in windows])


async def voice_timeline(engine: EmotionEngine, samples: np.ndarray, k: int) -> tuple[np.ndarray, list[VoiceWindow]]:
    """The clip's probabilities (7,) and its timeline of 1 s windows.

    The clip's probabilities follow ``VoiceClassifier.predict_clip`` (``EmotionEngine.voice_probs``):
    the mean over the windows above the silence gate, or over all windows when none is above it.
    """
    voice = _voice_model(engine)
    starts = window_starts(samples.size, WINDOW_S, HOP_S)
    probs, levels = [], []
    for i in range(0, len(starts), WINDOWS_PER_JOB):
        p, level = await engine.run(_score_windows, voice, samples, starts[i : i + WINDOWS_PER_JOB])
        probs.append(p)
        levels.append(level)
    all_probs, all_levels = np.concatenate(probs), np.concatenate(levels)
    silent = all_levels <= engine.settings.silence_db
    clip = (all_probs if silent.all() else all_probs[~silent]).mean(axis=0)
    duration = samples.size / SAMPLE_RATE
    timeline = [
        VoiceWindow(
            start=round(start / SAMPLE_RATE, 3),
            end=round(min(start / SAMPLE_RATE + WINDOW_S, duration), 3),
            level_db=round(float(level), 1),
            silent=bool(quiet),
            emotion=_emotion(p, k),
        )
        for start, p, level, quiet in zip(starts, all_probs, all_levels, silent)
    ]
    return clip, timeline


async def analyze_audio(engine: EmotionEngine, upload: UploadFile, k: int) -> AudioResult:
    _voice_model(engine)  # 503 before decoding anything when there is none
    samples = await engine.run(decode_audio, upload.file, engine.settings.max_media_seconds)
    if samples is None:
        raise UnsupportedMedia("the `audio` file has no audio track")
    clip, timeline = await voice_timeline(engine, samples, k)
    return AudioResult(duration=round(samples.size / SAMPLE_RATE, 3), emotion=_emotion(clip, k), timeline=timeline)


# --- video ------------------------------------------------------------------------------------


def _next_face(engine: EmotionEngine, frames: Iterator[VideoFrame]) -> tuple[float, FrameAnalysis] | None:
    """Decode the next sampled frame and find its largest face; None at the end. Runs in the pool."""
    frame = next(frames, None)
    return None if frame is None else (frame.time, engine.analyze_image(frame.image))


async def face_timeline(engine: EmotionEngine, upload: UploadFile) -> list[tuple[float, FrameAnalysis]]:
    """The largest face of each sampled frame, one frame per pool job."""
    settings = engine.settings
    frames = iter_video_frames(upload.file, settings.video_sample_fps, settings.max_media_seconds)
    steps = []
    while (step := await engine.run(_next_face, engine, frames)) is not None:
        steps.append(step)
    return steps


def _face_frame(time: float, analysis: FrameAnalysis, k: int) -> FaceFrame:
    box, probs = analysis.box, analysis.probs
    return FaceFrame(
        time=round(time, 3),
        box=_box(box) if box is not None else None,
        emotion=_emotion(probs, k) if probs is not None else None,
    )


def _optional_emotion(probs: np.ndarray | None, k: int) -> Emotion | None:
    return _emotion(probs, k) if probs is not None else None


async def analyze_video(engine: EmotionEngine, upload: UploadFile, k: int) -> VideoResult:
    """Sampled frames through the face path, the sound track through the voice path, and both fused.

    A modality whose model is not loaded is left out (``models`` in the response says which).
    """
    settings = engine.settings
    if engine.face is None and engine.voice is None:
        raise ModelUnavailable("neither a face nor a voice model is loaded; see /ready")
    steps = await face_timeline(engine, upload) if engine.face is not None else []
    found = [analysis.probs for _, analysis in steps if analysis.probs is not None]
    face = np.mean(found, axis=0) if found else None
    samples = None
    if engine.voice is not None:
        samples = await engine.run(decode_audio, upload.file, settings.max_media_seconds)
    voice, voice_windows = await voice_timeline(engine, samples, k) if samples is not None else (None, [])
    fused = fuse(voice, face, settings.w_voice)
    if fused is None:
        raise NoFace(f"no face found in any of the {len(steps)} sampled frames, and the video has no sound track")
    return VideoResult(
        sample_fps=settings.video_sample_fps,
        face=_optional_emotion(face, k),
        voice=_optional_emotion(voice, k),
        fused=_emotion(fused, k),
        w_voice=settings.w_voice,
        face_timeline=[_face_frame(time, analysis, k) for time, analysis in steps],
        voice_timeline=voice_windows,
    )


# --- the endpoint -----------------------------------------------------------------------------


def _given(upload: UploadFile | None, field: str) -> UploadFile | None:
    """The upload, or None when the field was not sent; an empty file is refused."""
    if upload is None:
        return None
    if not upload.size:
        raise EmptyUpload(f"the `{field}` file is empty (0 bytes)")
    return upload


@router.post(
    "/analyze",
    response_model=AnalyzeResponse,
    responses=ERROR_RESPONSES,
    summary="Emotion in a photo, a voice recording and/or a video clip",
)
async def analyze(
    request: Request,
    image: Annotated[UploadFile | None, File(description="A photo: JPEG, PNG, WebP or BMP")] = None,
    audio: Annotated[UploadFile | None, File(description="A recording: WAV, FLAC, MP3, OGG, WebM, M4A, …")] = None,
    video: Annotated[UploadFile | None, File(description="A clip, with or without sound: MP4, WebM, MOV, …")] = None,
    top_k: Annotated[int, Form(ge=1, le=len(LABELS), description="How many labels each `top_k` list has")] = 5,
) -> AnalyzeResponse:
    """Send any of `image`, `audio`, `video` as multipart/form-data (at least one).

    - **image**: every face, largest first, each with its box and emotion; no face: 422 `no_face`.
    - **audio**: the whole clip's emotion and a timeline of 1 s windows every 0.5 s.
    - **video**: frames sampled at VIDEO_SAMPLE_FPS through the face path, the sound track through
      the voice path, each as a timeline and a summary, and the fused result (W_VOICE).

    Limits: MAX_UPLOAD_BYTES for the whole request (413 `too_large`), MAX_MEDIA_SECONDS of audio or
    video (413 `too_long`). Files are processed in temporary storage and deleted; nothing is kept.
    """
    engine: EmotionEngine = request.app.state.engine
    image, audio, video = _given(image, "image"), _given(audio, "audio"), _given(video, "video")
    if image is None and audio is None and video is None:
        raise NoInput("send at least one file as multipart/form-data: `image`, `audio` or `video`")
    models = engine.models
    response = AnalyzeResponse(labels=list(LABELS), models=Models(voice=models.voice, face=models.face))
    if image is not None:
        _require_face_model(engine)
        response.image = await engine.run(analyze_image, engine, await image.read(), top_k)
    if audio is not None:
        response.audio = await analyze_audio(engine, audio, top_k)
    if video is not None:
        response.video = await analyze_video(engine, video, top_k)
    return response
