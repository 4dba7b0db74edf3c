// Drawing on canvases without a library: the timeline of the fused probabilities and the face box.

/** One colour per label, in the label order of DESIGN.md; used by the bars, the chart and its legend. */
export const LABEL_COLORS = {
  angry: "#d1495b",
  disgust: "#5f9e6e",
  fear: "#8d6cc4",
  happy: "#e9a23b",
  neutral: "#8a8f98",
  sad: "#3a7ca5",
  surprise: "#e0672f",
};

const WINDOW_MS = 60_000;
const MARGIN = { left: 40, right: 18, top: 10, bottom: 22 };

/** A canvas sized to its CSS box at the screen's pixel density; returns its context in CSS pixels. */
function fitCanvas(canvas) {
  const ratio = window.devicePixelRatio || 1;
  const width = Math.round(canvas.clientWidth * ratio);
  const height = Math.round(canvas.clientHeight * ratio);
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  const context = canvas.getContext("2d");
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.clearRect(0, 0, canvas.clientWidth, canvas.clientHeight);
  return context;
}

/** The fused probabilities over the last 60 s, one line per label, with a legend list. */
export class Timeline {
  constructor(canvas, legend) {
    this.canvas = canvas;
    this.points = []; // {time, probs} with probs null when there was no evidence
    for (const [label, color] of Object.entries(LABEL_COLORS)) {
      const item = document.createElement("li");
      item.style.setProperty("--color", color);
      item.textContent = label[0].toUpperCase() + label.slice(1);
      legend.append(item);
    }
    new ResizeObserver(() => this.draw()).observe(canvas);
  }

  add(time, probs) {
    this.points.push({ time, probs });
    while (this.points.length && time - this.points[0].time > WINDOW_MS) this.points.shift();
    this.draw();
  }

  clear() {
    this.points = [];
    this.draw();
  }

  draw() {
    const context = fitCanvas(this.canvas);
    const width = this.canvas.clientWidth - MARGIN.left - MARGIN.right;
    const height = this.canvas.clientHeight - MARGIN.top - MARGIN.bottom;
    const now = this.points.at(-1)?.time ?? 0;
    const x = (time) => MARGIN.left + width * (1 - (now - time) / WINDOW_MS);
    const y = (p) => MARGIN.top + height * (1 - p);
    drawGrid(context, x, y, now, width);
    for (const [label, color] of Object.entries(LABEL_COLORS)) {
      drawLine(context, this.points, label, color, x, y);
    }
  }
}

function drawGrid(context, x, y, now, width) {
  const style = getComputedStyle(document.documentElement);
  context.strokeStyle = style.getPropertyValue("--grid").trim();
  context.fillStyle = style.getPropertyValue("--muted").trim();
  context.font = "12px system-ui, sans-serif";
  context.lineWidth = 1;
  context.textAlign = "right";
  context.textBaseline = "middle";
  for (const p of [0, 0.5, 1]) {
    context.beginPath();
    context.moveTo(MARGIN.left, y(p));
    context.lineTo(MARGIN.left + width, y(p));
    context.stroke();
    context.fillText(`${p * 100}%`, MARGIN.left - 6, y(p));
  }
  context.textAlign = "center";
  context.textBaseline = "top";
  for (let seconds = 60; seconds >= 0; seconds -= 20) {
    context.fillText(seconds ? `−${seconds} s` : "now", x(now - seconds * 1000), y(0) + 6);
  }
}

/** One label's line; a result without evidence breaks the line. */
function drawLine(context, points, label, color, x, y) {
  context.strokeStyle = color;
  context.lineWidth = 2;
  context.lineJoin = "round";
  context.beginPath();
  let drawing = false;
  for (const { time, probs } of points) {
    if (!probs) {
      drawing = false;
      continue;
    }
    const [px, py] = [x(time), y(probs[label])];
    if (drawing) context.lineTo(px, py);
    else context.moveTo(px, py);
    drawing = true;
  }
  context.stroke();
}

/** The face box (normalised x, y, w, h of the frame) over the video, or nothing. */
export function drawFaceBox(canvas, box) {
  const context = fitCanvas(canvas);
  if (!box) return;
  const { clientWidth: width, clientHeight: height } = canvas;
  context.lineWidth = 3;
  context.strokeStyle = "#38e08c";
  context.shadowColor = "rgba(0, 0, 0, 0.6)";
  context.shadowBlur = 4;
  context.strokeRect(box.x * width, box.y * height, box.w * width, box.h * height);
}
