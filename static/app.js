// The demo page: Start/Stop, the stream to /ws, and each result as it arrives.

import { Timeline, drawFaceBox } from "./charts.js";
import { Connection, FrameSender, openMedia, socketUrl, streamMicrophone } from "./stream.js";
import { showGate, showLatency, showLevel, showPrediction, showSilence, showTop5 } from "./view.js";

const $ = (id) => document.getElementById(id);
const ui = {
  start: $("start"),
  stop: $("stop"),
  status: $("status"),
  notice: $("notice"),
  video: $("video"),
  stage: $("stage"),
  overlay: $("overlay"),
  wVoice: $("w-voice"),
  wVoiceValue: $("w-voice-value"),
  fps: $("fps"),
  models: $("models"),
  voiceCard: $("voice-card"),
  faceCard: $("face-card"),
  fusedCard: $("fused-card"),
  top5: $("top5"),
  level: $("level"),
  levelDb: $("level-db"),
  silence: $("silence"),
  latency: $("latency"),
  latencyDetail: $("latency-detail"),
};
const timeline = new Timeline($("timeline"), $("legend"));

/** What runs while started; null when stopped. */
let live = null;
/** The voice weight the user chose, re-sent to each new session; null until the slider moves. */
let chosenWVoice = null;

function setStatus(text, tone = "") {
  ui.status.textContent = text;
  ui.status.dataset.tone = tone;
}

/** Frames per second from the page's setting (or `?fps=` in the URL): 1 to 15, 4 by default. */
function framesPerSecond(value = ui.fps.value) {
  const fps = Math.round(Number(value));
  return Number.isFinite(fps) && fps > 0 ? Math.min(15, fps) : 4;
}

function mediaErrorText(error) {
  switch (error.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "Camera and microphone access was denied. Allow them for this page in the browser's site settings, then press Start again.";
    case "NotFoundError":
      return "No camera or microphone was found. Connect one, then press Start again.";
    case "NotReadableError":
      return "The camera or microphone is busy (another app may be using it). Close that app, then press Start again.";
    default:
      return `The camera or microphone could not be opened (${error.message}).`;
  }
}

async function start() {
  if (!navigator.mediaDevices?.getUserMedia) {
    setStatus("This browser allows the camera only on secure pages: open the demo over https or on http://localhost.", "error");
    return;
  }
  ui.start.disabled = true;
  ui.notice.textContent = "";
  setStatus("Asking for the camera and microphone…");
  let media;
  try {
    media = await openMedia();
  } catch (error) {
    setStatus(mediaErrorText(error), "error");
    ui.start.disabled = false;
    return;
  }
  const connection = new Connection(socketUrl(), {
    onOpen: () => setStatus("Live: streaming to the server.", "ok"),
    onMessage: handleMessage,
    onDrop: (seconds) => {
      drawFaceBox(ui.overlay, null);
      setStatus(`Not connected to the server. Reconnecting in ${seconds} s…`, "warn");
    },
    onRefused: (reason) => {
      stop();
      setStatus(`The server refused the connection: ${reason || "no reason given"}.`, "error");
    },
  });
  const session = { media, connection, frames: new FrameSender(ui.video, connection), stopMicrophone: null };
  live = session;
  showVideo(media);
  ui.stop.disabled = false;
  ui.stop.focus();
  setStatus("Connecting to the server…");
  connection.open();
  session.frames.start(framesPerSecond());
  await startMicrophone(session);
}

function showVideo(media) {
  ui.video.srcObject = media;
  ui.stage.classList.add("on");
  // the stage takes the camera's shape, so that the face box (relative to the frame) lies over the face
  ui.video.onloadedmetadata = ui.video.onresize = () => {
    ui.stage.style.aspectRatio = `${ui.video.videoWidth} / ${ui.video.videoHeight}`;
  };
}

async function startMicrophone(session) {
  if (!session.media.getAudioTracks().length) {
    ui.silence.textContent = "no microphone";
    return;
  }
  try {
    const stopMicrophone = await streamMicrophone(session.media, session.connection, (levelDb) =>
      showLevel(ui.level, ui.levelDb, levelDb),
    );
    if (live === session) session.stopMicrophone = stopMicrophone;
    else stopMicrophone(); // stopped meanwhile
  } catch (error) {
    ui.notice.textContent = `The microphone could not be processed (${error.message}); only the camera is streamed.`;
  }
}

function stop() {
  if (!live) return;
  const { media, connection, frames, stopMicrophone } = live;
  live = null;
  connection.close();
  frames.stop();
  stopMicrophone?.();
  media.getTracks().forEach((track) => track.stop());
  ui.video.srcObject = null;
  ui.stage.classList.remove("on");
  drawFaceBox(ui.overlay, null);
  timeline.add(performance.now(), null); // a gap in the chart until the next start
  showLevel(ui.level, ui.levelDb);
  showSilence(ui.silence);
  ui.stop.disabled = true;
  ui.start.disabled = false;
  ui.start.focus();
  setStatus("Stopped. Press Start to go again.");
}

function handleMessage(message) {
  if (!live) return;
  if (message.type === "result") showResult(message);
  else if (message.type === "hello") showHello(message);
  else if (message.type === "config") showSettings(message.settings);
  else if (message.type === "error") ui.notice.textContent = `The server said: ${message.message}`;
}

function showHello({ settings, models }) {
  showGate(ui.level, settings.silence_db);
  if (chosenWVoice === null) showWVoice(settings.w_voice);
  else live.connection.sendJson({ type: "config", w_voice: chosenWVoice }); // a new session starts from the defaults
  const name = (model) => model ?? "not loaded";
  ui.models.textContent = `Models: voice ${name(models.voice)}, face ${name(models.face)}.`;
}

function showResult(result) {
  showPrediction(ui.voiceCard, result.voice);
  showPrediction(ui.faceCard, result.face);
  showPrediction(ui.fusedCard, result.fused);
  showTop5(ui.top5, result.top5);
  drawFaceBox(ui.overlay, result.face_box);
  showSilence(ui.silence, result.silent);
  showLatency(ui.latency, ui.latencyDetail, result.latency_ms);
  timeline.add(performance.now(), result.fused?.probs ?? null);
}

function showSettings(settings) {
  showGate(ui.level, settings.silence_db);
  showWVoice(settings.w_voice);
}

function showWVoice(value) {
  ui.wVoice.value = value;
  ui.wVoiceValue.textContent = Number(value).toFixed(2);
}

ui.start.addEventListener("click", start);
ui.stop.addEventListener("click", stop);
ui.wVoice.addEventListener("input", () => showWVoice(ui.wVoice.value));
ui.wVoice.addEventListener("change", () => {
  chosenWVoice = Number(ui.wVoice.value);
  live?.connection.sendJson({ type: "config", w_voice: chosenWVoice });
});
ui.fps.addEventListener("change", () => {
  ui.fps.value = framesPerSecond();
  live?.frames.start(Number(ui.fps.value));
});
ui.fps.value = framesPerSecond(new URLSearchParams(location.search).get("fps") ?? ui.fps.value);
