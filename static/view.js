// Showing a result on the page: the three labels, the top-5 list, the level meter, the latency.

import { LABEL_COLORS } from "./charts.js";

const NO_EVIDENCE = "—";
const LEVEL_FLOOR_DB = -90;

function displayLabel(label) {
  return label[0].toUpperCase() + label.slice(1);
}

function percent(p) {
  return `${Math.round(p * 100)}%`;
}

/** A modality's card: its top label (or "—" without evidence), the probability, the label's colour. */
export function showPrediction(card, prediction) {
  const label = prediction?.label;
  card.querySelector(".emotion").textContent = label ? displayLabel(label) : NO_EVIDENCE;
  card.querySelector(".detail").textContent = label ? percent(prediction.probs[label]) : "no evidence";
  card.style.setProperty("--color", label ? LABEL_COLORS[label] : "");
}

/** The fused top-5 as `[[Label, p], …]`, one list item with a bar per entry. */
export function showTop5(list, top5) {
  list.replaceChildren(
    ...top5.map(([label, p]) => {
      const item = document.createElement("li");
      item.style.setProperty("--color", LABEL_COLORS[label.toLowerCase()]);
      item.style.setProperty("--share", p);
      item.innerHTML = '<span class="name"></span><span class="bar"></span><span class="value"></span>';
      item.querySelector(".name").textContent = label;
      item.querySelector(".value").textContent = percent(p);
      return item;
    }),
  );
}

/** The microphone level in dBFS on the meter (measured in the page, ten times a second), or none. */
export function showLevel(meter, text, levelDb = null) {
  const shown = Math.max(LEVEL_FLOOR_DB, levelDb ?? LEVEL_FLOOR_DB);
  meter.style.setProperty("--level", (shown - LEVEL_FLOOR_DB) / -LEVEL_FLOOR_DB);
  meter.setAttribute("aria-valuenow", Math.round(shown));
  text.textContent = levelDb === null ? "— dB" : `${Math.round(shown)} dB`;
}

/** Where the server's silence gate sits on the meter. */
export function showGate(meter, silenceDb) {
  meter.style.setProperty("--gate", (silenceDb - LEVEL_FLOOR_DB) / -LEVEL_FLOOR_DB);
}

/** The server's view of the audio: below the gate (or none arrived), a voice to analyse, or no stream. */
export function showSilence(element, silent = null) {
  element.textContent = silent === null ? "no audio" : silent ? "silent" : "voice heard";
  element.classList.toggle("heard", silent === false);
}

/** The server's time for this update, and each stage's time in the detail line. */
export function showLatency(element, detail, latencyMs) {
  element.textContent = `${Math.round(latencyMs.total)} ms`;
  detail.textContent = Object.entries(latencyMs)
    .filter(([stage]) => stage !== "total")
    .map(([stage, ms]) => `${stage} ${ms < 1 ? ms.toFixed(2) : Math.round(ms)}`)
    .join(" · ");
}
