"""Decoding of uploaded files to arrays: images with OpenCV, audio and video with PyAV (FFmpeg).

Audio comes out as float32 mono at 16 kHz, resampled exactly like the training data
(``realtime.audio.resample_to_16k``); video as BGR frames sampled at a fixed rate, one at a time, so
that a long clip never sits in memory whole. Every refusal is a :class:`MediaError` whose ``status``
and ``code`` are what the HTTP API answers with.

A source is a path or a readable, seekable binary file object (e.g. an upload's spooled file).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, ClassVar

import av
import cv2
import numpy as np
from av.container import InputContainer

from realtime.audio import resample_to_16k

Source = str | Path | BinaryIO

AUDIO_VIDEO_FORMATS = "WAV, FLAC, MP3, OGG (Vorbis/Opus), WebM, MP4/M4A, MKV and other formats FFmpeg reads"
IMAGE_FORMATS = "JPEG, PNG, WebP or BMP"
TRUNCATION_TOLERANCE_S = 1.0  # decoded vs declared duration: a shorter decode means a cut file


class MediaError(Exception):
    """An upload the API refuses; ``status`` is the HTTP status, ``code`` a stable identifier."""

    status: ClassVar[int] = 422
    code: ClassVar[str] = "bad_media"


class EmptyUpload(MediaError):
    status, code = 400, "empty_upload"


class TooLarge(MediaError):
    """More bytes (or pixels) than the server accepts."""

    status, code = 413, "too_large"


class TooLong(MediaError):
    """Audio or video longer than ``MAX_MEDIA_SECONDS``: 413, like too many bytes (send less)."""

    status, code = 413, "too_long"


class UnsupportedMedia(MediaError):
    status, code = 415, "unsupported_media"


class CorruptMedia(MediaError):
    """A known format that cannot be decoded: truncated or damaged."""

    status, code = 422, "corrupt_media"


# --- images -----------------------------------------------------------------------------------


def image_format(data: bytes) -> str | None:
    """The image format named by the file's first bytes, if it is one the API accepts."""
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    if data.startswith(b"BM"):
        return "BMP"
    return None


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """A JPEG, PNG, WebP or BMP file's bytes as a BGR uint8 image (H, W, 3)."""
    if not data:
        raise EmptyUpload("the image is empty (0 bytes)")
    kind = image_format(data)
    if kind is None:
        raise UnsupportedMedia(f"the image is not a {IMAGE_FORMATS} file (judged by its content, not its name)")
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise CorruptMedia(f"the {kind} image could not be decoded: it is corrupt or truncated")
    height, width = image.shape[:2]
    if height * width > max_pixels:
        raise TooLarge(f"the image is {width}x{height} pixels, over the limit of {max_pixels} (MAX_FRAME_PIXELS)")
    return image


# --- audio and video --------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoFrame:
    """A decoded frame: seconds from the start of the file, and the BGR image."""

    time: float
    image: np.ndarray


def _rewound(source: Source) -> Source:
    if not isinstance(source, str | Path):
        source.seek(0)
    return source


def _head(source: Source, size: int = 16) -> bytes:
    if isinstance(source, str | Path):
        with open(source, "rb") as file:
            return file.read(size)
    head = _rewound(source).read(size)
    source.seek(0)
    return head


def _looks_like_media(head: bytes) -> bool:
    """Whether the first bytes name an audio or video container (to tell corrupt from unsupported)."""
    signatures = (b"RIFF", b"fLaC", b"OggS", b"\x1aE\xdf\xa3", b"ID3", b"FORM", b"caff")
    mpeg_sync = len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0  # MP3 / ADTS AAC
    return head.startswith(signatures) or head[4:8] == b"ftyp" or mpeg_sync


def _seconds(value: int | None, time_base: object) -> float | None:
    return None if value is None or time_base is None else float(value * time_base)


def _container_seconds(container: InputContainer) -> float | None:
    return None if container.duration is None else container.duration / av.time_base


def _declared_seconds(container: InputContainer, stream: av.stream.Stream) -> float | None:
    """The duration a stream declares: its own, or the container's when it is the only stream."""
    own = _seconds(stream.duration, stream.time_base)
    if own is not None or len(container.streams) > 1:
        return own
    return _container_seconds(container)


def _check_complete(decoded: float, declared: float | None, what: str) -> None:
    if declared is not None and decoded < declared - max(TRUNCATION_TOLERANCE_S, 0.1 * declared):
        raise CorruptMedia(
            f"the file declares {declared:.1f} s of {what} but only {decoded:.1f} s could be decoded: "
            "it is truncated or damaged"
        )


@contextmanager
def open_media(source: Source, max_seconds: float) -> Iterator[InputContainer]:
    """Open an audio or video file with PyAV, refusing what it cannot read.

    Files whose metadata declares more than ``max_seconds`` are refused before anything is decoded.
    FFmpeg errors raised while the caller decodes become :class:`CorruptMedia`.
    """
    head = _head(source)
    if not head:
        raise EmptyUpload("the file is empty (0 bytes)")
    try:
        container = av.open(_rewound(source), mode="r")
    except av.FFmpegError as error:
        if _looks_like_media(head):
            raise CorruptMedia(f"the file could not be opened: it is corrupt or truncated ({error})") from error
        raise UnsupportedMedia(f"not an audio or video file FFmpeg can read; send {AUDIO_VIDEO_FORMATS}") from error
    with container:
        declared = _container_seconds(container)
        if declared is not None and declared > max_seconds:
            raise TooLong(
                f"the file lasts {declared:.1f} s, over the limit of {max_seconds:g} s (MAX_MEDIA_SECONDS); "
                "send a shorter clip"
            )
        try:
            yield container
        except (av.error.DecoderNotFoundError, av.error.PatchWelcomeError) as error:
            raise UnsupportedMedia(f"the file uses a codec this server cannot decode ({error})") from error
        except av.FFmpegError as error:
            raise CorruptMedia(f"the file could not be decoded: it is corrupt or truncated ({error})") from error


def _too_long(max_seconds: float) -> TooLong:
    return TooLong(
        f"the file lasts longer than the limit of {max_seconds:g} s (MAX_MEDIA_SECONDS); send a shorter clip"
    )


def decode_audio(source: Source, max_seconds: float) -> np.ndarray | None:
    """The first audio track as float32 mono at 16 kHz (channels averaged); None without one."""
    with open_media(source, max_seconds) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        to_float = av.AudioResampler(format="fltp")  # same layout and rate, planar float
        chunks: list[np.ndarray] = []
        rate = total = 0
        for frame in container.decode(stream):
            for converted in to_float.resample(frame):
                rate = converted.sample_rate
                chunks.append(converted.to_ndarray().mean(axis=0))
                total += converted.samples
            if total > max_seconds * rate:
                raise _too_long(max_seconds)
        if not chunks:
            raise CorruptMedia("the file has an audio track but no audio could be decoded from it")
        samples = np.concatenate(chunks).astype(np.float32, copy=False)
        _check_complete(samples.size / rate, _declared_seconds(container, stream), "audio")
    try:
        return resample_to_16k(samples, rate)
    except ValueError as error:
        raise UnsupportedMedia(str(error)) from error


def iter_video_frames(source: Source, sample_fps: float, max_seconds: float) -> Iterator[VideoFrame]:
    """The first video track's frames, ``sample_fps`` per second, as BGR images, one at a time.

    A frame is kept when it is the first at or after each point of the grid 0, 1/fps, 2/fps, …
    Times count from the start of the file.
    """
    with open_media(source, max_seconds) as container:
        if not container.streams.video:
            raise UnsupportedMedia("the video has no picture; send sound alone as `audio`")
        stream = container.streams.video[0]
        origin = (container.start_time or 0) / av.time_base
        frame_s = 1.0 / float(stream.average_rate or 25)
        next_sample = last = 0.0
        count = 0
        for count, frame in enumerate(container.decode(stream), start=1):
            last = (frame.time if frame.time is not None else (count - 1) * frame_s) - origin
            if last > max_seconds:
                raise _too_long(max_seconds)
            if last >= next_sample:
                yield VideoFrame(max(last, 0.0), frame.to_ndarray(format="bgr24"))
                next_sample = (math.floor(last * sample_fps) + 1) / sample_fps
        if count == 0:
            raise CorruptMedia("the file has a video track but no frame could be decoded from it")
        if count == 1:
            raise UnsupportedMedia("the video is a single still picture; send a photo as `image`")
        _check_complete(last + frame_s, _declared_seconds(container, stream), "video")
