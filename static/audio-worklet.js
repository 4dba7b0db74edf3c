// AudioWorklet: the microphone, downsampled to 16 kHz mono and posted in Int16 chunks of ~100 ms.
//
// The AudioContext runs at the device's rate (often 48 or 44.1 kHz). Dropping samples would fold
// everything above 8 kHz back into the voice band, so each input sample first goes through a
// low-pass FIR (Hamming-windowed sinc, cutoff 7.2 kHz, stop band from about 8 kHz), and the filtered
// signal is then read at the 16 kHz instants by linear interpolation (exact at 48 kHz: every 3rd).

const TARGET_RATE = 16000;
const CHUNK_SAMPLES = 1600; // 100 ms at 16 kHz
const CUTOFF_HZ = 7200;
const TRANSITION_HZ = 1600;

/** Low-pass FIR taps: windowed sinc, unity gain at DC. `cutoff` and `width` in cycles per sample. */
function lowPassTaps(cutoff, width) {
  const count = 2 * Math.ceil(1.65 / width) + 1; // Hamming: transition ≈ 3.3 / taps
  const middle = (count - 1) / 2;
  const taps = new Float32Array(count);
  let sum = 0;
  for (let i = 0; i < count; i++) {
    const t = i - middle;
    const sinc = t === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * t) / (Math.PI * t);
    const window = 0.54 - 0.46 * Math.cos((2 * Math.PI * i) / (count - 1));
    taps[i] = sinc * window;
    sum += taps[i];
  }
  return taps.map((tap) => tap / sum);
}

class Pcm16Downsampler extends AudioWorkletProcessor {
  constructor() {
    super();
    const cutoff = Math.min(CUTOFF_HZ, 0.45 * sampleRate) / sampleRate;
    this.taps = lowPassTaps(cutoff, TRANSITION_HZ / sampleRate);
    this.history = new Float32Array(2 * this.taps.length); // each sample written twice: no wrap in the loop
    this.cursor = 0;
    this.step = sampleRate / TARGET_RATE; // input samples per output sample
    this.position = 1; // where the next output falls, in input samples after `previous`
    this.previous = 0;
    this.chunk = new Int16Array(CHUNK_SAMPLES);
    this.filled = 0;
    this.sumSquares = 0;
  }

  process([input]) {
    const channel = input[0]; // the node's input is mixed down to mono (channelCount 1)
    if (channel) {
      for (const sample of channel) this.resample(this.lowPass(sample));
    }
    return true;
  }

  lowPass(sample) {
    const n = this.taps.length;
    this.cursor = (this.cursor + 1) % n;
    this.history[this.cursor] = sample;
    this.history[this.cursor + n] = sample;
    let y = 0;
    for (let k = 0; k < n; k++) y += this.taps[k] * this.history[this.cursor + 1 + k];
    return y;
  }

  resample(current) {
    while (this.position <= 1) {
      this.emit(this.previous + (current - this.previous) * this.position);
      this.position += this.step;
    }
    this.position -= 1;
    this.previous = current;
  }

  emit(value) {
    const clipped = Math.max(-1, Math.min(1, value));
    this.chunk[this.filled++] = Math.round(clipped * 32767);
    this.sumSquares += clipped * clipped;
    if (this.filled === CHUNK_SAMPLES) this.flush();
  }

  flush() {
    const rms = Math.sqrt(this.sumSquares / CHUNK_SAMPLES);
    const levelDb = Math.max(-120, 20 * Math.log10(rms + 1e-12));
    const pcm = this.chunk.buffer;
    this.port.postMessage({ pcm, levelDb }, [pcm]);
    this.chunk = new Int16Array(CHUNK_SAMPLES);
    this.filled = 0;
    this.sumSquares = 0;
  }
}

registerProcessor("pcm16-downsampler", Pcm16Downsampler);
