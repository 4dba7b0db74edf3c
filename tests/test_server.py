"""The real server on a loopback port, driven by real WebSocket clients with real speech and faces.

Client A streams 1 s of silence then a RAVDESS test-actor clip in 100 ms chunks in real time, with
JPEG frames of a face at 4 per second (JSON + base64). Client B, at the same time, sends a photo
of dogs and silence (binary messages). Client C sends every kind of bad input.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection, connect

from eval.server_process import running_server
from realtime.audio import SAMPLE_RATE, load_audio_file
from realtime.labels import LABELS

CHUNK = SAMPLE_RATE // 10  # 100 ms
SPEECH_CLIP = "Actor_19/03-01-05-02-01-01-19"  # angry, strong intensity, a test actor
OBAMA_FACE = {"x": (0.38, 0.66), "y": (0.05, 0.45)}  # where the face centre lies in obama_640x480.jpg


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("server")
    env = {"FACE_MODEL": "local", "HSEMOTION_CACHE_DIR": str(tmp / "no-hsemotion")}
    with running_server(env, log_path=tmp / "server.log") as base:
        yield base.replace("http://", "ws://") + "/ws"


def _pcm(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


def _speech(ravdess_dir: Path) -> np.ndarray:
    matches = list(ravdess_dir.glob(SPEECH_CLIP + ".*"))
    assert matches, f"{SPEECH_CLIP} not found in {ravdess_dir}"
    return load_audio_file(matches[0])


async def _collect(ws: ClientConnection, until: float, out: list[dict[str, Any]]) -> None:
    while time.monotonic() < until:
        try:
            raw = await asyncio.wait_for(ws.recv(), timeout=max(0.01, until - time.monotonic()))
        except TimeoutError:
            return
        message = json.loads(raw)
        message["received_at"] = time.monotonic()
        out.append(message)


async def _stream_json(ws: ClientConnection, audio: np.ndarray, jpeg: bytes) -> None:
    frame = json.dumps({"type": "frame", "data": base64.b64encode(jpeg).decode(), "ts": 0})
    start = time.monotonic()
    for i in range(0, audio.size, CHUNK):
        pcm = base64.b64encode(_pcm(audio[i : i + CHUNK])).decode()
        await ws.send(json.dumps({"type": "audio", "data": pcm, "sample_rate": SAMPLE_RATE, "ts": i}))
        if (i // CHUNK) % 2 == 0:  # 4 frames per second
            await ws.send(frame)
        await asyncio.sleep(max(0.0, start + (i + CHUNK) / SAMPLE_RATE - time.monotonic()))


async def _stream_binary(ws: ClientConnection, seconds: float, jpeg: bytes) -> None:
    silence = b"\x01" + _pcm(np.zeros(CHUNK, dtype=np.float32))
    start = time.monotonic()
    for i in range(int(seconds * 10)):
        await ws.send(silence)
        if i % 2 == 0:
            await ws.send(b"\x02" + jpeg)
        await asyncio.sleep(max(0.0, start + (i + 1) / 10 - time.monotonic()))


def _results(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m["type"] == "result"]


async def test_two_concurrent_clients_real_time(server: str, ravdess_dir: Path, media_dir: Path) -> None:
    speech = _speech(ravdess_dir)
    audio = np.concatenate([np.zeros(SAMPLE_RATE, dtype=np.float32), speech])
    seconds = audio.size / SAMPLE_RATE
    face_jpeg = (media_dir / "obama_640x480.jpg").read_bytes()
    dogs_jpeg = (media_dir / "dogs.jpg").read_bytes()
    got_a: list[dict[str, Any]] = []
    got_b: list[dict[str, Any]] = []
    async with connect(server) as a, connect(server) as b:
        hello_a, hello_b = json.loads(await a.recv()), json.loads(await b.recv())
        assert hello_a["type"] == "hello" and hello_a["labels"] == list(LABELS)
        assert hello_a["models"]["voice"] and hello_a["models"]["face"]
        assert hello_a["session"] != hello_b["session"]
        speech_starts = time.monotonic() + 1.0
        until = time.monotonic() + seconds + 1.0
        await asyncio.gather(
            _stream_json(a, audio, face_jpeg),
            _stream_binary(b, seconds, dogs_jpeg),
            _collect(a, until, got_a),
            _collect(b, until, got_b),
        )

    results_a, results_b = _results(got_a), _results(got_b)
    span = results_a[-1]["received_at"] - results_a[0]["received_at"]
    rate = (len(results_a) - 1) / span
    assert 1.6 <= rate <= 2.4, f"{rate:.2f} results per second"
    assert [r["seq"] for r in results_a] == list(range(1, len(results_a) + 1))

    # A: the face is found and classified, its box over the face; voice is null during the silence
    with_face = [r for r in results_a if r["face"]]
    assert len(with_face) >= len(results_a) - 2
    box = with_face[-1]["face_box"]
    cx, cy = box["x"] + box["w"] / 2, box["y"] + box["h"] / 2
    assert OBAMA_FACE["x"][0] < cx < OBAMA_FACE["x"][1] and OBAMA_FACE["y"][0] < cy < OBAMA_FACE["y"][1], box
    before_speech = [r for r in results_a if r["received_at"] < speech_starts]
    assert before_speech and all(r["voice"] is None for r in before_speech)
    assert all(r["silent"] for r in before_speech)
    assert any(r["voice"] for r in results_a if r["received_at"] > speech_starts)
    last = results_a[-1]
    assert last["voice"]["label"] in LABELS and last["fused"]["label"] in LABELS
    for result in results_a:
        values = [p for _, p in result["top5"]]
        assert values == sorted(values, reverse=True) and sum(values) <= 1.0 + 1e-9
        if result["fused"]:
            assert len(result["top5"]) == 5 and all(label[0].isupper() for label, _ in result["top5"])
        assert set(result["latency_ms"]) >= {"fusion", "total"}
    assert any("detect" in r["latency_ms"] and "face" in r["latency_ms"] for r in results_a)
    assert any("voice" in r["latency_ms"] for r in results_a)
    # fused is the documented mix of the two smoothed modalities
    mixed = next(r for r in reversed(results_a) if r["voice"] and r["face"])
    for label in LABELS:
        expected = 0.6 * mixed["voice"]["probs"][label] + 0.4 * mixed["face"]["probs"][label]
        assert abs(mixed["fused"]["probs"][label] - expected) < 2e-3

    # B, at the same time: nothing of A leaks in; no face in dogs.jpg, only silence
    assert len(results_b) >= 0.8 * len(results_a)
    for result in results_b:
        assert result["face"] is None and result["voice"] is None and result["fused"] is None
        assert result["face_box"] is None and result["top5"] == [] and result["silent"] is True


BAD_INPUTS: list[tuple[str | bytes, str]] = [
    ("{this is not json", "bad_json"),
    (json.dumps({"type": "telepathy"}), "unknown_type"),
    (json.dumps({"type": "frame", "data": "%%%not base64%%%"}), "bad_base64"),
    (json.dumps({"type": "frame", "data": base64.b64encode(b"plain text").decode()}), "bad_image"),
    (json.dumps({"type": "audio", "data": base64.b64encode(b"\x01\x02\x03").decode()}), "bad_audio"),
    (json.dumps({"type": "audio", "data": base64.b64encode(b"\x01\x02").decode(), "sample_rate": 3}), "bad_sample_rate"),
    (json.dumps({"type": "config", "w_voice": 7}), "bad_config"),
    (json.dumps({"type": "frame", "data": "A" * 2_100_000}), "too_large"),
    (b"\x09binary of an unknown kind", "unknown_type"),
    (b"\x02\xff\xd8\xff but then garbage, not a real JPEG", "bad_image"),  # caught when decoded
]


async def test_bad_input_answers_errors_and_session_goes_on(server: str) -> None:
    async with connect(server, max_size=None) as ws:
        assert json.loads(await ws.recv())["type"] == "hello"
        for payload, _ in BAD_INPUTS:
            await ws.send(payload)
        await ws.send(json.dumps({"type": "config", "w_voice": 0.25}))
        got: list[dict[str, Any]] = []
        await _collect(ws, time.monotonic() + 2.5, got)
    codes = [m["code"] for m in got if m["type"] == "error"]
    assert sorted(codes) == sorted(code for _, code in BAD_INPUTS)
    assert all(m["message"] for m in got if m["type"] == "error")
    config = next(m for m in got if m["type"] == "config")
    assert config["settings"]["w_voice"] == 0.25
    assert len(_results(got)) >= 4  # results keep coming after every bad input


async def test_health_and_ready(server: str) -> None:
    import httpx

    base = server.replace("ws://", "http://").removesuffix("/ws")
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{base}/health")).json() == {"status": "ok"}
        ready = (await client.get(f"{base}/ready")).json()
    assert ready["ready"] is True
    assert ready["models"]["voice"] and ready["models"]["face"] and ready["models"]["face_detector"]


async def test_slow_and_vanished_clients_do_not_stall_others(server: str, media_dir: Path) -> None:
    jpeg = (media_dir / "obama_640x480.jpg").read_bytes()
    got: list[dict[str, Any]] = []
    async with connect(server) as slow, connect(server) as healthy:
        vanished = await connect(server)
        await vanished.send(b"\x02" + jpeg)
        vanished.transport.abort()  # gone without a closing handshake
        for _ in range(20):  # the slow client sends and then never reads its results
            await slow.send(b"\x02" + jpeg)
        await healthy.recv()  # hello
        await _collect(healthy, time.monotonic() + 4.0, got)
        assert slow.state.name == "OPEN"
    results = _results(got)
    assert len(results) >= 7, f"{len(results)} results in 4 s"
    assert all(r["face"] is None for r in results)  # nothing of the others' frames leaks in
