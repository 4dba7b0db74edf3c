// Capture and transport: camera and microphone in, binary messages out over one WebSocket to /ws.
// Binary messages (see DESIGN.md): first byte 0x01 = Int16 16 kHz mono audio, 0x02 = JPEG.

const AUDIO_KIND = 0x01;
const JPEG_KIND = 0x02;
const MAX_SIDE = 640;
const JPEG_QUALITY = 0.7;
const MAX_BUFFERED_BYTES = 256 * 1024; // above this the network is behind: skip frames
const RETRY_DELAYS_S = [1, 2, 4, 8];
const POLICY_VIOLATION = 1008; // the server refuses this origin: retrying will not help
const AUDIO_START_TIMEOUT_MS = 3000; // e.g. no audio device, or audio blocked by the browser

/** The camera and the microphone; with only one of them present, that one alone. */
export async function openMedia() {
  const video = { width: { ideal: 640 }, height: { ideal: 480 } };
  // the voice as it is: the model was trained on unprocessed speech, and the page plays no sound
  const audio = { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false };
  for (const constraints of [{ video, audio }, { video }, { audio }]) {
    try {
      return await navigator.mediaDevices.getUserMedia(constraints);
    } catch (error) {
      if (error.name !== "NotFoundError") throw error;
    }
  }
  throw new DOMException("no camera or microphone found", "NotFoundError");
}

/** The WebSocket URL next to this page: ws: for http:, wss: for https:. */
export function socketUrl() {
  const url = new URL("ws", location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.href;
}

/** One WebSocket that reopens itself after a drop until `close()` is called. */
export class Connection {
  /**
   * @param {string} url
   * @param {{onOpen: Function, onMessage: Function, onDrop: Function, onRefused: Function}} handlers
   *   onDrop(seconds) before each retry; onRefused(reason) when the server refuses for good.
   */
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers;
    this.socket = null;
    this.retryTimer = 0;
    this.failures = 0;
    this.closed = false;
  }

  open() {
    const socket = new WebSocket(this.url);
    socket.binaryType = "arraybuffer";
    socket.onopen = () => {
      this.failures = 0;
      this.handlers.onOpen();
    };
    socket.onmessage = (event) => this.handlers.onMessage(JSON.parse(event.data));
    socket.onclose = (event) => this.dropped(event);
    this.socket = socket;
  }

  dropped(event) {
    if (this.closed) return;
    if (event.code === POLICY_VIOLATION) {
      this.closed = true;
      this.handlers.onRefused(event.reason);
      return;
    }
    const delay = RETRY_DELAYS_S[Math.min(this.failures, RETRY_DELAYS_S.length - 1)];
    this.failures += 1;
    this.handlers.onDrop(delay);
    this.retryTimer = setTimeout(() => this.open(), delay * 1000);
  }

  get isOpen() {
    return this.socket?.readyState === WebSocket.OPEN;
  }

  get isBehind() {
    return this.socket.bufferedAmount > MAX_BUFFERED_BYTES;
  }

  send(data) {
    if (this.isOpen) this.socket.send(data);
  }

  sendJson(message) {
    this.send(JSON.stringify(message));
  }

  close() {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.socket?.close(1000, "stopped by the user");
  }
}

/** Sends the camera as JPEG frames at `fps`; when the socket is behind, the frame is skipped. */
export class FrameSender {
  constructor(video, connection) {
    this.video = video;
    this.connection = connection;
    this.canvas = document.createElement("canvas");
    this.timer = 0;
    this.encoding = false;
  }

  start(fps) {
    this.stop();
    this.timer = setInterval(() => this.capture(), 1000 / fps);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = 0;
  }

  capture() {
    const { videoWidth: width, videoHeight: height } = this.video;
    if (!width || this.encoding || !this.connection.isOpen || this.connection.isBehind) return;
    const scale = Math.min(1, MAX_SIDE / Math.max(width, height));
    this.canvas.width = Math.round(width * scale);
    this.canvas.height = Math.round(height * scale);
    this.canvas.getContext("2d").drawImage(this.video, 0, 0, this.canvas.width, this.canvas.height);
    this.encoding = true;
    this.canvas.toBlob((jpeg) => {
      this.encoding = false;
      if (jpeg && this.timer) this.connection.send(new Blob([Uint8Array.of(JPEG_KIND), jpeg]));
    }, "image/jpeg", JPEG_QUALITY);
  }
}

/**
 * Streams the microphone through the worklet: `onChunk(levelDb)` is called for every ~100 ms
 * chunk, which is also sent while the socket is open. Returns a function that stops it; throws
 * when the browser does not run audio (no output device, or audio blocked).
 */
export async function streamMicrophone(stream, connection, onChunk) {
  const context = new AudioContext();
  await context.audioWorklet.addModule(new URL("audio-worklet.js", import.meta.url));
  const source = context.createMediaStreamSource(stream);
  const node = new AudioWorkletNode(context, "pcm16-downsampler", {
    numberOfOutputs: 0,
    channelCount: 1,
    channelCountMode: "explicit",
  });
  node.port.onmessage = ({ data }) => {
    connection.send(audioMessage(data.pcm));
    onChunk(data.levelDb);
  };
  source.connect(node);
  const stop = () => {
    node.port.onmessage = null;
    source.disconnect();
    context.close();
  };
  await Promise.race([context.resume(), new Promise((resolve) => setTimeout(resolve, AUDIO_START_TIMEOUT_MS))]);
  if (context.state !== "running") {
    stop();
    throw new Error("the browser did not start audio processing");
  }
  return stop;
}

/** 0x01 followed by the Int16 samples (little-endian, as on every platform browsers run on). */
function audioMessage(pcm) {
  const message = new Uint8Array(1 + pcm.byteLength);
  message[0] = AUDIO_KIND;
  message.set(new Uint8Array(pcm), 1);
  return message;
}
