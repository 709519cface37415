// Microphone capture for the softphone: the browser's rate (usually 48 kHz) -> 16 kHz PCM16,
// cut into 20 ms frames of 320 samples, the format the bot's line expects.
//
// This one file is loaded twice: as an AudioWorklet module (it registers the processor) and
// as a plain page script (the ScriptProcessor fallback uses the same downsampler), so both
// paths resample the same way.

"use strict";

const TARGET_RATE = 16000;
const FRAME_SAMPLES = 320; // 20 ms at 16 kHz

class Pcm16Downsampler {
  // A windowed-sinc low-pass below the new Nyquist frequency (so nothing above 8 kHz folds
  // back into speech), then linear interpolation at the output instants.
  constructor(inputRate, outputRate = TARGET_RATE, frameSamples = FRAME_SAMPLES) {
    this.step = inputRate / outputRate;
    this.frameSamples = frameSamples;
    this.taps = Pcm16Downsampler.lowpass(inputRate, 0.45 * outputRate, this.step);
    this.history = new Float32Array(this.taps.length - 1);
    this.lastFiltered = 0;
    this.position = 1; // of the next output sample, in filtered samples; 0 = last block's end
    this.frame = new Int16Array(frameSamples);
    this.filled = 0;
  }

  static lowpass(rate, cutoff, step) {
    if (step <= 1) return new Float32Array([1]); // not decimating: no filter needed
    const count = (Math.ceil(step * 16) | 1); // odd; longer for larger ratios
    const taps = new Float32Array(count);
    const middle = (count - 1) / 2;
    const fc = cutoff / rate;
    let sum = 0;
    for (let i = 0; i < count; i++) {
      const x = i - middle;
      const sinc = x === 0 ? 2 * fc : Math.sin(2 * Math.PI * fc * x) / (Math.PI * x);
      const blackman = 0.42 - 0.5 * Math.cos((2 * Math.PI * i) / (count - 1))
        + 0.08 * Math.cos((4 * Math.PI * i) / (count - 1));
      taps[i] = sinc * blackman;
      sum += taps[i];
    }
    for (let i = 0; i < count; i++) taps[i] /= sum; // unity gain at 0 Hz
    return taps;
  }

  // Float samples in [-1, 1] at the input rate -> a list of complete 20 ms Int16Array frames.
  process(input) {
    const n = input.length;
    const taps = this.taps;
    const keep = taps.length - 1;
    const buffer = new Float32Array(keep + n);
    buffer.set(this.history);
    buffer.set(input, keep);
    const filtered = new Float32Array(n + 1);
    filtered[0] = this.lastFiltered;
    for (let i = 0; i < n; i++) {
      let acc = 0;
      for (let k = 0; k < taps.length; k++) acc += taps[k] * buffer[i + keep - k];
      filtered[i + 1] = acc;
    }
    this.history = buffer.slice(n);
    this.lastFiltered = filtered[n];

    const frames = [];
    while (this.position < n) {
      const i = Math.floor(this.position);
      const frac = this.position - i;
      const value = filtered[i] + (filtered[i + 1] - filtered[i]) * frac;
      const clipped = Math.max(-1, Math.min(1, value));
      this.frame[this.filled++] = Math.round(clipped < 0 ? clipped * 32768 : clipped * 32767);
      if (this.filled === this.frameSamples) {
        frames.push(this.frame);
        this.frame = new Int16Array(this.frameSamples);
        this.filled = 0;
      }
      this.position += this.step;
    }
    this.position -= n;
    return frames;
  }
}

if (typeof AudioWorkletProcessor !== "undefined") {
  // Inside the AudioWorkletGlobalScope: `sampleRate` is the context's rate.
  class CaptureProcessor extends AudioWorkletProcessor {
    constructor() {
      super();
      this.downsampler = new Pcm16Downsampler(sampleRate);
    }

    process(inputs) {
      const channel = inputs[0] && inputs[0][0];
      if (channel) {
        for (const frame of this.downsampler.process(channel)) {
          this.port.postMessage(frame, [frame.buffer]); // transferred, not copied
        }
      }
      return true;
    }
  }
  registerProcessor("pcm16-capture", CaptureProcessor);
} else if (typeof window !== "undefined") {
  window.Pcm16Downsampler = Pcm16Downsampler;
}
