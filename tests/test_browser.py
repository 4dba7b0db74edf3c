"""End to end: the demo page in real headless Chromium against the real server on loopback.

Chromium's fake camera plays ../shared/media/hamilton_640x480_15fps.mjpeg and its fake microphone
../shared/media/hamilton_audio_16k.wav (both loop). The page's own code runs unchanged; an init
script only watches it: it records each WebSocket (messages in, messages out, how it closed) and
each media stream the page opens, so that the test can check what went over the wire.

Run alone with ``pytest -m browser -s``; the screenshot goes to ``test-output/browser/``.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from playwright.sync_api import expect, sync_playwright

from eval.server_process import running_server
from realtime.config import PROJECT_ROOT
from realtime.labels import LABELS, display

CHROMIUM = Path("/usr/bin/chromium")
MEDIA = PROJECT_ROOT.parent / "shared" / "media"
VIDEO = MEDIA / "hamilton_640x480_15fps.mjpeg"
AUDIO = MEDIA / "hamilton_audio_16k.wav"
OUTPUT = PROJECT_ROOT / "test-output" / "browser"
READY_TIMEOUT_S = 90
LABEL_PATTERN = re.compile("^(" + "|".join(display(label) for label in LABELS) + ")$")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is missing: apt-get install -y chromium"),
]

CHROMIUM_ARGS = [
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    f"--use-file-for-fake-video-capture={VIDEO}",
    f"--use-file-for-fake-audio-capture={AUDIO}",
    "--autoplay-policy=no-user-gesture-required",
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-gpu",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

# Watches the page without changing it: window.__probe.sockets[i] holds one WebSocket's hello,
# results, sent messages and close event. Each result keeps the frame the server analysed for it:
# the last one sent before the server's tick began (its arrival less the server's latency).
PROBE = """
(() => {
  const probe = { sockets: [], streams: [] };
  window.__probe = probe;
  const NativeWebSocket = window.WebSocket;
  window.WebSocket = class extends NativeWebSocket {
    constructor(...args) {
      super(...args);
      const record = { socket: this, hello: null, results: [], texts: [], audio: [], frames: [], closed: null };
      probe.sockets.push(record);
      this.addEventListener("message", (event) => {
        const message = JSON.parse(event.data);
        if (message.type === "hello") record.hello = message;
        if (message.type === "result") {
          const tickStart = performance.now() - message.latency_ms.total;
          const frame = record.frames.findLast((f) => f.at < tickStart);
          record.results.push({ at: performance.now(), seq: message.seq, box: message.face_box, frame: frame?.jpeg });
        }
      });
      this.addEventListener("close", (event) => { record.closed = { code: event.code, at: performance.now() }; });
      this.record = record;
    }
    send(data) {
      if (data instanceof Blob) {
        this.record.frames.push({ at: performance.now(), jpeg: data });
      } else if (data instanceof Uint8Array) {
        this.record.audio.push({ at: performance.now(), kind: data[0], size: data.byteLength });
      } else {
        this.record.texts.push(JSON.parse(data));
      }
      super.send(data);
    }
  };
  const getUserMedia = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = async (constraints) => {
    const stream = await getUserMedia(constraints);
    probe.streams.push(stream);
    return stream;
  };
})();
"""

DENY_MEDIA = """
navigator.mediaDevices.getUserMedia = async () => {
  throw new DOMException("Permission denied", "NotAllowedError");
};
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The real server on a free loopback port, and its log file."""
    log = tmp_path_factory.mktemp("server") / "server.log"
    with running_server(timeout=READY_TIMEOUT_S, log_path=log) as url:
        yield url, log


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    context.add_init_script(PROBE)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server[0] + "/")
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def _rgb(page, selector: str) -> tuple[int, ...]:
    color = page.eval_on_selector(selector, "el => getComputedStyle(el).backgroundColor")
    return tuple(int(v) for v in re.findall(r"\d+", color)[:3])


def _results(page) -> int:
    return page.evaluate("() => window.__probe.sockets.at(-1).results.length")


def _top5(page) -> list[tuple[str, int]]:
    items = page.eval_on_selector_all(
        "#top5 li",
        "items => items.map(li => [li.querySelector('.name').textContent, li.querySelector('.value').textContent])",
    )
    return [(name, int(value.rstrip("%"))) for name, value in items]


def _faces(image: np.ndarray) -> list[tuple[float, float, float, float]]:
    """Faces found by OpenCV's Haar cascades (frontal, and profile both ways), normalised x, y, w, h."""
    gray = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
    height, width = gray.shape
    found = []
    for name, flip in (("frontalface_default", False), ("profileface", False), ("profileface", True)):
        cascade = cv2.CascadeClassifier(f"{cv2.data.haarcascades}haarcascade_{name}.xml")
        for x, y, w, h in cascade.detectMultiScale(cv2.flip(gray, 1) if flip else gray, 1.1, 5, minSize=(32, 32)):
            x = width - x - w if flip else x
            found.append((x / width, y / height, w / width, h / height))
    return found


def _inside(point: tuple[float, float], box: tuple[float, float, float, float], margin: float = 0.25) -> bool:
    x, y, w, h = box
    return x - margin * w <= point[0] <= x + (1 + margin) * w and y - margin * h <= point[1] <= y + (1 + margin) * h


def _box_on_a_face(box: dict[str, float], faces: list[tuple[float, float, float, float]]) -> bool:
    server = (box["x"], box["y"], box["w"], box["h"])
    centre = (box["x"] + box["w"] / 2, box["y"] + box["h"] / 2)
    return any(
        _inside(centre, face) or _inside((face[0] + face[2] / 2, face[1] + face[3] / 2), server) for face in faces
    )


def _annotated(image: np.ndarray, box: dict[str, float], faces: list[tuple[float, float, float, float]]) -> np.ndarray:
    """The frame at 320x240 with the server's box in green and OpenCV's faces in red."""
    image = cv2.resize(image, (320, 240))
    boxes = [(face, (0, 0, 255)) for face in faces] + [((box["x"], box["y"], box["w"], box["h"]), (0, 255, 0))]
    for (x, y, w, h), color in boxes:
        cv2.rectangle(image, (int(x * 320), int(y * 240)), (int((x + w) * 320), int((y + h) * 240)), color, 2)
    return image


def _save_sheet(images: list[np.ndarray], path: Path, columns: int = 4) -> None:
    blank = np.zeros_like(images[0])
    images = images + [blank] * (-len(images) % columns)
    rows = [np.hstack(images[i : i + columns]) for i in range(0, len(images), columns)]
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.vstack(rows))
    print(f"\nface boxes (server green, OpenCV red): {path}")


def _check_boxes_on_faces(page) -> None:
    """Each face box the server sent, against OpenCV's faces in the very frame the server analysed."""
    samples = page.evaluate(
        """async () => {
          const results = window.__probe.sockets.at(-1).results.filter((r) => r.box && r.frame).slice(-20); // ~10 s: the whole clip
          const jpeg = (blob) => new Promise((resolve) => {
            const reader = new FileReader();
            reader.onload = () => resolve(reader.result.split(",")[1]);
            reader.readAsDataURL(blob.slice(1, blob.size, "image/jpeg"));
          });
          return Promise.all(results.map(async (r) => ({ box: r.box, jpeg: await jpeg(r.frame) })));
        }"""
    )
    compared = agreed = 0
    sheet = []
    for sample in samples:
        image = cv2.imdecode(np.frombuffer(base64.b64decode(sample["jpeg"]), np.uint8), cv2.IMREAD_COLOR)
        assert max(image.shape[:2]) <= 640, f"frame of {image.shape[1]}x{image.shape[0]} is over 640 px"
        faces = _faces(image)
        if faces:
            compared += 1
            agreed += _box_on_a_face(sample["box"], faces)
        sheet.append(_annotated(image, sample["box"], faces))
    _save_sheet(sheet, OUTPUT / "face-boxes.png")
    assert compared >= 3, f"OpenCV found faces in only {compared} of {len(samples)} frames with a face box"
    assert agreed >= 0.7 * compared, f"the face box lay on a face in only {agreed} of {compared} frames"


def _check_box_drawn_over_video(page) -> None:
    """The overlay covers the video exactly, and what it drew is the last result's box."""
    page.wait_for_function("() => window.__probe.sockets.at(-1).results.at(-1).box", timeout=5000)
    drawn = page.evaluate(
        """() => {
          const overlay = document.getElementById("overlay");
          const video = document.getElementById("video");
          const { width, height } = overlay;
          const pixels = overlay.getContext("2d").getImageData(0, 0, width, height).data;
          let [left, top, right, bottom] = [width, height, -1, -1];
          for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) {
            if (pixels[4 * (y * width + x) + 1] > 200 && pixels[4 * (y * width + x) + 3] > 200) {
              left = Math.min(left, x); right = Math.max(right, x); top = Math.min(top, y); bottom = Math.max(bottom, y);
            }
          }
          const rect = (el) => { const r = el.getBoundingClientRect(); return [r.x, r.y, r.width, r.height]; };
          const results = window.__probe.sockets.at(-1).results;
          return {
            overlay: rect(overlay), video: rect(video),
            sameTransform: getComputedStyle(overlay).transform === getComputedStyle(video).transform,
            videoRatio: video.videoWidth / video.videoHeight, stageRatio: video.clientWidth / video.clientHeight,
            box: results.at(-1).box,
            drawn: right < 0 ? null : [left / width, top / height, (right - left) / width, (bottom - top) / height],
          };
        }"""
    )
    assert drawn["overlay"] == pytest.approx(drawn["video"], abs=1), "the overlay does not cover the video"
    assert drawn["sameTransform"], "the overlay and the video are not mirrored alike"
    assert drawn["stageRatio"] == pytest.approx(drawn["videoRatio"], rel=0.02), "the video is letterboxed"
    box = drawn["box"]  # of the result drawn last; null again if the face left since the wait
    if box is None:
        assert drawn["drawn"] is None, "a face box is drawn for a result without one"
    else:
        assert drawn["drawn"] == pytest.approx([box["x"], box["y"], box["w"], box["h"]], abs=0.02)


def _diagnosis(page, log: Path) -> str:
    """What the page and the server saw, for a failure message."""
    sockets = page.evaluate(
        "() => window.__probe.sockets.map(s => ({ results: s.results.length, closed: s.closed && s.closed.code }))"
    )
    return (
        f"page status: {page.inner_text('#status')!r}; WebSockets (results, close code): {sockets}\n"
        f"server log, last lines:\n{log.read_text()[-2000:]}"
    )


def test_live_results_from_start_to_stop(page, server) -> None:
    log = server[1]
    page.click("#start")
    try:
        expect(page.locator("#face-label")).to_have_text(LABEL_PATTERN, timeout=10_000)
        expect(page.locator("#fused-label")).to_have_text(LABEL_PATTERN, timeout=10_000)
        expect(page.locator("#top5 li")).to_have_count(5, timeout=10_000)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{_diagnosis(page, log)}") from None
    top5 = _top5(page)
    assert [p for _, p in top5] == sorted((p for _, p in top5), reverse=True), f"top-5 not descending: {top5}"
    assert len({name for name, _ in top5}) == 5 and all(LABEL_PATTERN.match(name) for name, _ in top5), top5
    expect(page.locator("#voice-label")).to_have_text(re.compile(f"{LABEL_PATTERN.pattern}|^—$"))
    expect(page.locator("#latency")).to_have_text(re.compile(r"^\d+ ms$"))

    count, started = _results(page), time.monotonic()
    page.wait_for_timeout(4000)
    rate = (_results(page) - count) / (time.monotonic() - started)
    assert page.evaluate("window.__probe.sockets.length") == 1, _diagnosis(page, log)
    expected = page.evaluate("() => window.__probe.sockets[0].hello.settings.result_hz")
    assert 0.75 * expected <= rate <= 1.3 * expected, f"{rate:.2f} results per second, expected {expected}"
    sent = page.evaluate(
        """() => { const s = window.__probe.sockets.at(-1);
                   const recent = (messages) => messages.filter(m => m.at > performance.now() - 4000).length / 4;
                   return { frames: recent(s.frames), audio: recent(s.audio),
                            audioKinds: [...new Set(s.audio.map(a => a.kind))], audioSizes: [...new Set(s.audio.map(a => a.size))] }; }"""
    )
    assert 3 <= sent["frames"] <= 4.5, f"{sent['frames']:.1f} frames per second sent, expected 4"
    assert 8 <= sent["audio"] <= 11, f"{sent['audio']:.1f} audio chunks per second sent, expected 10"
    assert sent["audioKinds"] == [1] and sent["audioSizes"] == [1 + 2 * 1600], sent

    _check_boxes_on_faces(page)
    _check_box_drawn_over_video(page)
    start, stop = _rgb(page, "#start"), _rgb(page, "#stop")
    assert start[1] > start[0] + 40 and start[1] > start[2], f"Start is not green: rgb{start}"
    assert stop[0] > stop[1] + 60 and stop[0] > stop[2] + 60, f"Stop is not red: rgb{stop}"

    OUTPUT.mkdir(parents=True, exist_ok=True)
    screenshot = OUTPUT / "demo.png"
    page.screenshot(path=str(screenshot), full_page=True)
    print(f"\nscreenshot: {screenshot}")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: one column, nothing wider than the screen
    page.wait_for_timeout(600)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390, "the page is wider than a phone"
    page.screenshot(path=str(OUTPUT / "demo-phone.png"), full_page=True)
    print(f"phone-width screenshot: {OUTPUT / 'demo-phone.png'}")

    session = page.evaluate("() => window.__probe.sockets.at(-1).hello.session")
    page.click("#stop")
    expect(page.locator("#status")).to_contain_text("Stopped")
    page.wait_for_timeout(2500)  # longer than the first reconnection delay
    ended = page.evaluate(
        """() => ({ sockets: window.__probe.sockets.map(s => s.closed && s.closed.code),
                    tracks: window.__probe.streams.flatMap(s => s.getTracks().map(t => t.readyState)),
                    video: document.getElementById("video").srcObject })"""
    )
    assert ended["sockets"] == [1000], f"sockets after Stop (close codes): {ended['sockets']}"
    assert ended["tracks"] and set(ended["tracks"]) == {"ended"}, f"tracks after Stop: {ended['tracks']}"
    assert ended["video"] is None
    assert f"session {session} closed" in log.read_text(), "the server did not see the session end"


def test_reconnects_after_a_dropped_connection(page) -> None:
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "start"
    page.keyboard.press("Enter")
    page.wait_for_function("() => window.__probe.sockets.at(-1)?.results.length >= 2", timeout=10_000)
    assert page.evaluate("document.activeElement.id") == "stop", "focus did not move to Stop"

    page.focus("#w-voice")
    page.keyboard.press("ArrowLeft")  # 0.60 -> 0.55, sent to the session as a config message
    expect(page.locator("#w-voice-value")).to_have_text("0.55")

    page.evaluate("() => window.__probe.sockets.at(-1).socket.close(4000, 'dropped by the test')")
    expect(page.locator("#status")).to_contain_text("Reconnecting")
    page.wait_for_function(
        "() => window.__probe.sockets.length === 2 && window.__probe.sockets[1].results.length >= 2", timeout=10_000
    )
    expect(page.locator("#status")).to_contain_text("Live")
    sent = page.evaluate("() => window.__probe.sockets.map(s => s.texts)")
    assert sent == [[{"type": "config", "w_voice": 0.55}]] * 2, f"the voice weight is not kept: {sent}"
    expect(page.locator("#w-voice-value")).to_have_text("0.55")
    page.focus("#stop")
    page.keyboard.press("Enter")
    expect(page.locator("#status")).to_contain_text("Stopped")


def test_denied_permission_is_explained(page) -> None:
    page.add_init_script(DENY_MEDIA)
    page.reload()
    page.click("#start")
    expect(page.locator("#status")).to_contain_text("access was denied")
    expect(page.locator("#start")).to_be_enabled()
    expect(page.locator("#stop")).to_be_disabled()
    assert page.evaluate("window.__probe.sockets.length") == 0


WORKLET_LEVELS = """
async (frequencies) => {
  const levels = {};
  for (const frequency of frequencies) {
    const context = new OfflineAudioContext(1, 48000 * 2, 48000);
    await context.audioWorklet.addModule("audio-worklet.js");
    const node = new AudioWorkletNode(context, "pcm16-downsampler", { numberOfOutputs: 0 });
    const chunks = [];
    node.port.onmessage = ({ data }) => chunks.push(data);
    const tone = new OscillatorNode(context, { frequency });
    const gain = new GainNode(context, { gain: 0.5 });
    tone.connect(gain).connect(node);
    tone.start();
    await context.startRendering();
    await new Promise((resolve) => setTimeout(resolve, 200)); // the last port messages
    levels[frequency] = { samples: chunks.map((c) => c.pcm.byteLength / 2), db: chunks.slice(1).map((c) => c.levelDb) };
  }
  return levels;
}
"""


def test_worklet_downsamples_48k_to_16k_without_aliasing(page) -> None:
    """The page's AudioWorklet in a 48 kHz context: 100 ms chunks, the voice band kept, above 8 kHz removed."""
    levels = page.evaluate(WORKLET_LEVELS, [440, 3000, 12000, 20000])
    for frequency, level in levels.items():
        assert len(level["samples"]) == 20 and set(level["samples"]) == {1600}, (frequency, level["samples"])
        mean_db = sum(level["db"]) / len(level["db"])
        if int(frequency) < 8000:  # a sine of amplitude 0.5 is at -9 dBFS
            assert mean_db == pytest.approx(-9.0, abs=0.5), (frequency, mean_db)
        else:
            assert mean_db < -60, f"{frequency} Hz folds back into the voice band at {mean_db:.1f} dBFS"
