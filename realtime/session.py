"""One WebSocket connection: its own state (audio, latest frame, histories, settings) and its loop.

Three tasks per connection, all ended when the socket closes:
- the receive loop decodes messages and updates the session's state, never waiting on a model;
- the tick loop, every 1/RESULT_HZ s, runs the models on what is new (in the engine's pool) and
  queues a ``result``;
- the sender writes queued messages to the socket. Its queue is bounded: a client that does not
  read loses old messages instead of growing the server's memory or stalling other sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
from starlette.websockets import WebSocket

from realtime.audio import AudioRingBuffer, level_db
from realtime.config import Settings
from realtime.engine import EmotionEngine, FrameAnalysis
from realtime.fusion import History, fuse, prediction, top_k
from realtime.labels import LABELS
from realtime.media import MediaError
from realtime.protocol import (
    AudioMessage,
    ClientMessage,
    FrameMessage,
    ProtocolError,
    SessionConfig,
    decode_binary,
    decode_text,
)

log = logging.getLogger(__name__)
OUTBOX_SIZE = 16


@dataclass(frozen=True)
class PendingFrame:
    jpeg: bytes
    ts: float | None  # the client's stamp, echoed back as ``frame_ts``
    received_at: float  # time.monotonic() on arrival, for ``frame_age_ms``


@dataclass
class SessionState:
    """The settings a client may change for its own session (see ``SessionConfig``)."""

    w_voice: float
    voice_smoothing: int
    face_smoothing: int
    silence_db: float

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _timed(fn: Any, *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn(*args)
    return result, round((time.perf_counter() - start) * 1000.0, 2)


class Session:
    """The state of one connection and the work of one tick. It does no I/O itself."""

    def __init__(self, settings: Settings, engine: EmotionEngine) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.engine = engine
        self.state = SessionState(
            w_voice=settings.w_voice,
            voice_smoothing=settings.voice_smoothing,
            face_smoothing=settings.face_smoothing,
            silence_db=settings.silence_db,
        )
        self.audio = AudioRingBuffer(seconds=1.0)
        self.frame: PendingFrame | None = None
        self.voice_history = History(settings.voice_smoothing, settings.evidence_max_age)
        self.face_history = History(settings.face_smoothing, settings.evidence_max_age)
        self.face_box: dict[str, float] | None = None
        self.seq = 0
        self.frames_received = 0
        self.frames_dropped = 0

    def hello(self) -> dict[str, Any]:
        models = self.engine.models
        return {
            "type": "hello",
            "session": self.id,
            "labels": list(LABELS),
            "settings": {**self.state.as_dict(), "result_hz": self.engine.settings.result_hz,
                         "max_message_bytes": self.engine.settings.max_message_bytes},
            "models": {"voice": models.voice, "face": models.face, "face_detector": models.face_detector},
        }

    def receive(self, message: ClientMessage) -> dict[str, Any] | None:
        """Apply a decoded message; returns a reply to send, if any."""
        if isinstance(message, AudioMessage):
            self.audio.append(message.samples)
        elif isinstance(message, FrameMessage):
            self.frames_received += 1
            if self.frame is not None:
                self.frames_dropped += 1  # latest wins: the older frame was never analysed
            self.frame = PendingFrame(message.jpeg, message.ts, time.monotonic())
        else:
            return self._configure(message)
        return None

    def _configure(self, config: SessionConfig) -> dict[str, Any]:
        for name, value in config.model_dump(exclude_none=True).items():
            setattr(self.state, name, value)
        self.voice_history.resize(self.state.voice_smoothing)
        self.face_history.resize(self.state.face_smoothing)
        return {"type": "config", "settings": self.state.as_dict()}

    async def tick(self) -> list[dict[str, Any]]:
        """Run the models on what arrived since the last tick; returns the messages to send."""
        start = time.perf_counter()
        now = time.monotonic()
        frame, self.frame = self.frame, None
        level, voice_window = self._take_audio()
        silent = level is None or level < self.state.silence_db
        messages: list[dict[str, Any]] = []
        latency: dict[str, float] = {}

        voice_job = None
        if voice_window is not None and not silent and self.engine.voice is not None:
            voice_job = self.engine.run(_timed, self.engine.voice_window_probs, voice_window)
        face_job = None
        if frame is not None and self.engine.face is not None:
            face_job = self.engine.run(self.engine.analyze_jpeg, frame.jpeg)

        if voice_job is not None:
            voice_probs, latency["voice"] = await voice_job
            self.voice_history.add(now, voice_probs)
        if face_job is not None:
            try:
                analysis: FrameAnalysis = await face_job
            except MediaError as exc:
                messages.append(ProtocolError("bad_image", str(exc)).to_message())
            else:
                latency.update(analysis.latency_ms)
                self.face_history.add(now, analysis.probs)
                self.face_box = _box_dict(analysis)

        fusion_start = time.perf_counter()
        voice = self.voice_history.smoothed(now)
        face = self.face_history.smoothed(now)
        if face is None:
            self.face_box = None
        fused = fuse(voice, face, self.state.w_voice)
        latency["fusion"] = round((time.perf_counter() - fusion_start) * 1000.0, 3)
        latency["total"] = round((time.perf_counter() - start) * 1000.0, 2)
        self.seq += 1
        messages.append(
            {
                "type": "result",
                "seq": self.seq,
                "ts": round(time.time() * 1000.0),
                "voice": prediction(voice),
                "face": prediction(face),
                "fused": prediction(fused),
                "top5": top_k(fused, 5),
                "face_box": self.face_box,
                "audio_level_db": None if level is None else round(level, 1),
                "silent": silent,
                "frame_ts": frame.ts if frame is not None else None,
                "frame_age_ms": _ms_since_monotonic(frame.received_at) if frame is not None else None,
                "frames_dropped": self.frames_dropped,
                "latency_ms": latency,
            }
        )
        return messages

    def _take_audio(self) -> tuple[float | None, np.ndarray | None]:
        """The level of the audio new since the last tick, and the last 1 s (None when nothing new)."""
        if not self.audio.unread:
            return None, None
        window = self.audio.latest()
        level = level_db(window[-self.audio.unread :])
        self.audio.mark_read()
        return level, window


def _ms_since_monotonic(moment: float) -> float:
    return round((time.monotonic() - moment) * 1000.0, 1)


def _box_dict(analysis: FrameAnalysis) -> dict[str, float] | None:
    if analysis.box is None:
        return None
    box = analysis.box
    return {"x": round(box.x, 4), "y": round(box.y, 4), "w": round(box.w, 4), "h": round(box.h, 4)}


def origin_allowed(websocket: WebSocket, settings: Settings) -> bool:
    origins = settings.origins
    if "*" in origins:
        return True
    return websocket.headers.get("origin") in origins


async def serve(websocket: WebSocket, engine: EmotionEngine) -> None:
    """Run one WebSocket connection until the client goes away."""
    settings = engine.settings
    if not origin_allowed(websocket, settings):
        await websocket.close(code=1008, reason="origin not allowed (see ALLOWED_ORIGINS)")
        return
    await websocket.accept()
    session = Session(settings, engine)
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=OUTBOX_SIZE)
    _offer(outbox, session.hello())
    tasks = [
        asyncio.create_task(_send_loop(websocket, outbox), name=f"send-{session.id}"),
        asyncio.create_task(_tick_loop(session, outbox, 1.0 / settings.result_hz), name=f"tick-{session.id}"),
    ]
    log.info("session %s opened", session.id)
    try:
        await _receive_loop(websocket, session, outbox, settings.max_message_bytes, tasks)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                try:
                    await task
                except Exception:  # the client went away mid-send, or a bug: log it, never raise
                    log.warning("session %s: task %s failed", session.id, task.get_name(), exc_info=True)
        log.info("session %s closed after %d results", session.id, session.seq)


async def _receive_loop(
    websocket: WebSocket,
    session: Session,
    outbox: asyncio.Queue[dict[str, Any]],
    max_bytes: int,
    tasks: list[asyncio.Task[None]],
) -> None:
    while not any(task.done() for task in tasks):
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        try:
            if message.get("text") is not None:
                decoded = decode_text(message["text"], max_bytes)
            else:
                decoded = decode_binary(message.get("bytes") or b"", max_bytes)
            reply = session.receive(decoded)
        except ProtocolError as exc:
            log.debug("session %s: %s: %s", session.id, exc.code, exc.message)
            reply = exc.to_message()
        if reply is not None:
            _offer(outbox, reply)


async def _tick_loop(session: Session, outbox: asyncio.Queue[dict[str, Any]], period: float) -> None:
    loop = asyncio.get_running_loop()
    # Each session ticks at its own phase of the period (from its random id), so that sessions
    # that connect together (a server restart brings every page back at once) do not all need
    # the worker pool at the same instant.
    next_at = loop.time() + (int(session.id, 16) % 1000) / 1000 * period
    while True:
        await asyncio.sleep(max(0.0, next_at - loop.time()))
        try:
            messages = await session.tick()
        except Exception:  # a bug must end neither this session's results nor the server
            log.exception("session %s: tick failed", session.id)
            messages = [ProtocolError("internal", "the server failed on this update; it goes on").to_message()]
        for message in messages:
            _offer(outbox, message)
        next_at += period
        if next_at < loop.time():  # inference overran the period: skip the missed ticks rather than burst
            next_at = loop.time()


async def _send_loop(websocket: WebSocket, outbox: asyncio.Queue[dict[str, Any]]) -> None:
    while True:
        text = json.dumps(await outbox.get())  # a message that cannot be encoded is a bug: it raises
        try:
            await websocket.send_text(text)
        except Exception:  # the client is gone (the receive loop sees the disconnect)
            log.debug("send failed: the client went away", exc_info=True)
            return


def _offer(outbox: asyncio.Queue[dict[str, Any]], message: dict[str, Any]) -> None:
    """Queue a message; when the client is not keeping up, drop the oldest one."""
    if outbox.full():
        outbox.get_nowait()
    outbox.put_nowait(message)
