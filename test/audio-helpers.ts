// Test-side audio utilities written independently of daemon/audio: a WAV writer for every
// sample format, float64 reference DSP (resampling, log-mel), and small statistics.
import fs from 'node:fs';
import { expect } from 'vitest';
import { AudioError } from '../daemon/audio/index.js';

export type SampleFormat = 'u8' | 's16' | 's24' | 's32' | 'f32' | 'f64';

const BYTES: Record<SampleFormat, number> = { u8: 1, s16: 2, s24: 3, s32: 4, f32: 4, f64: 8 };

/** Interleaved channels → WAV bytes. `extensible` writes WAVE_FORMAT_EXTENSIBLE. */
export function wavBytes(channels: readonly Float64Array[] | readonly Float32Array[], rate: number, format: SampleFormat, opts: { extensible?: boolean } = {}): Buffer {
  const ch = channels.length;
  const frames = channels[0]!.length;
  const bps = BYTES[format];
  const isFloat = format === 'f32' || format === 'f64';
  const fmtSize = opts.extensible ? 40 : 16;
  const dataBytes = frames * ch * bps;
  const buf = Buffer.alloc(12 + 8 + fmtSize + 8 + dataBytes + (dataBytes & 1));
  buf.write('RIFF', 0, 'ascii');
  buf.writeUInt32LE(buf.length - 8, 4);
  buf.write('WAVE', 8, 'ascii');
  buf.write('fmt ', 12, 'ascii');
  buf.writeUInt32LE(fmtSize, 16);
  const tag = isFloat ? 3 : 1;
  buf.writeUInt16LE(opts.extensible ? 0xfffe : tag, 20);
  buf.writeUInt16LE(ch, 22);
  buf.writeUInt32LE(rate, 24);
  buf.writeUInt32LE(rate * ch * bps, 28);
  buf.writeUInt16LE(ch * bps, 32);
  buf.writeUInt16LE(bps * 8, 34);
  if (opts.extensible) {
    buf.writeUInt16LE(22, 36);
    buf.writeUInt16LE(bps * 8, 38);
    buf.writeUInt32LE(0, 40);
    buf.writeUInt16LE(tag, 44); // sub-format GUID xxxxxxxx-0000-0010-8000-00aa00389b71
    Buffer.from([0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71]).copy(buf, 46);
  }
  let o = 12 + 8 + fmtSize;
  buf.write('data', o, 'ascii');
  buf.writeUInt32LE(dataBytes, o + 4);
  o += 8;
  const clamp = (v: number) => Math.max(-1, Math.min(1, v));
  for (let i = 0; i < frames; i++) {
    for (let c = 0; c < ch; c++) {
      const v = clamp(channels[c]![i]!);
      switch (format) {
        case 'u8': buf.writeUInt8(Math.min(255, Math.round(v * 128 + 128)), o); break;
        case 's16': buf.writeInt16LE(Math.max(-32768, Math.min(32767, Math.round(v * 32768))), o); break;
        case 's24': buf.writeIntLE(Math.max(-8388608, Math.min(8388607, Math.round(v * 8388608))), o, 3); break;
        case 's32': buf.writeInt32LE(Math.max(-2147483648, Math.min(2147483647, Math.round(v * 2147483648))), o); break;
        case 'f32': buf.writeFloatLE(v, o); break;
        case 'f64': buf.writeDoubleLE(v, o); break;
      }
      o += bps;
    }
  }
  return buf;
}

/** Reads a 16-bit mono WAV with a plain parser (independent of the native decoder). */
export function readWavS16(file: string): { rate: number; samples: Float32Array } {
  const buf = fs.readFileSync(file);
  let off = 12;
  let rate = 0;
  while (off + 8 <= buf.length) {
    const id = buf.toString('ascii', off, off + 4);
    const size = buf.readUInt32LE(off + 4);
    if (id === 'fmt ') rate = buf.readUInt32LE(off + 12);
    if (id === 'data') {
      const n = size >> 1;
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = buf.readInt16LE(off + 8 + 2 * i) / 32768;
      return { rate, samples: out };
    }
    off += 8 + size + (size & 1);
  }
  throw new Error(`${file}: no data chunk`);
}

export function sine(freq: number, rate: number, seconds: number, amp = 0.5): Float32Array {
  const n = Math.round(rate * seconds);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = amp * Math.sin((2 * Math.PI * freq * i) / rate);
  return x;
}

/** Level of the signal in dB relative to `ref` RMS, ignoring `skip` samples at both ends. */
export function rmsDb(x: Float32Array, ref: number, skip: number): number {
  let s = 0;
  let n = 0;
  for (let i = skip; i < x.length - skip; i++) {
    s += x[i]! * x[i]!;
    n++;
  }
  return 20 * Math.log10(Math.max(1e-300, Math.sqrt(s / n)) / ref);
}

/** Amplitude of the component at `freq` (Goertzel-style correlation), ignoring the ends. */
export function toneAmplitude(x: Float32Array, freq: number, rate: number, skip: number): number {
  let re = 0;
  let im = 0;
  let n = 0;
  for (let i = skip; i < x.length - skip; i++) {
    const a = (2 * Math.PI * freq * i) / rate;
    re += x[i]! * Math.cos(a);
    im += x[i]! * Math.sin(a);
    n++;
  }
  return (2 * Math.hypot(re, im)) / n;
}

/**
 * Band-limited interpolation in float64 (windowed sinc, Blackman window, 64 zero crossings a
 * side), cutoff at the input's Nyquist: a slow but high-order reference for making 44.1/48 kHz
 * renditions of a 16 kHz recording.
 */
export function referenceUpsample(x: Float32Array, from: number, to: number): Float32Array {
  const zeros = 64;
  const out = new Float32Array(Math.ceil((x.length * to) / from));
  for (let n = 0; n < out.length; n++) {
    const t = (n * from) / to;
    const centre = Math.floor(t);
    const sinPiT = Math.sin(Math.PI * (t - centre));
    let acc = 0;
    for (let j = centre - zeros + 1; j <= centre + zeros; j++) {
      if (j < 0 || j >= x.length) continue;
      const d = t - j;
      const sinc = Math.abs(d) < 1e-12 ? 1 : (((centre - j) & 1 ? -1 : 1) * sinPiT) / (Math.PI * d);
      const w = 0.42 + 0.5 * Math.cos((Math.PI * d) / zeros) + 0.08 * Math.cos((2 * Math.PI * d) / zeros);
      acc += x[j]! * sinc * w;
    }
    out[n] = acc;
  }
  return out;
}

/** Hugging Face's mel_filter_bank (Slaney scale and norm), float64, [nMels][bins]. */
export function referenceMelFilters(nMels: number, nFft: number, rate: number, fMax: number): Float64Array[] {
  const hzToMel = (f: number) => (f < 1000 ? (3 * f) / 200 : 15 + (Math.log(f / 1000) * 27) / Math.log(6.4));
  const melToHz = (m: number) => (m < 15 ? (200 * m) / 3 : 1000 * Math.exp((Math.log(6.4) / 27) * (m - 15)));
  const bins = nFft / 2 + 1;
  const top = hzToMel(fMax);
  const edges = Array.from({ length: nMels + 2 }, (_, i) => melToHz((top * i) / (nMels + 1)));
  const rows: Float64Array[] = [];
  for (let m = 0; m < nMels; m++) {
    const row = new Float64Array(bins);
    for (let k = 0; k < bins; k++) {
      const f = (Math.floor(rate / 2) * k) / (bins - 1);
      const down = (f - edges[m]!) / (edges[m + 1]! - edges[m]!);
      const up = (edges[m + 2]! - f) / (edges[m + 2]! - edges[m + 1]!);
      row[k] = Math.max(0, Math.min(down, up)) * (2 / (edges[m + 2]! - edges[m]!));
    }
    rows.push(row);
  }
  return rows;
}

/** Whisper log-mel by the book in float64 (direct DFT): [nMels, floor(len/hop)]. */
export function referenceLogMel(x: Float32Array, nMels: number, nFft: number, hop: number, rate: number): Float64Array {
  const filters = referenceMelFilters(nMels, nFft, rate, Math.min(8000, rate / 2));
  const half = nFft / 2;
  const frames = Math.floor(x.length / hop);
  const reflect = (i: number) => {
    const period = 2 * (x.length - 1);
    let r = ((i % period) + period) % period;
    if (r >= x.length) r = period - r;
    return r;
  };
  const out = new Float64Array(nMels * frames);
  const frame = new Float64Array(nFft);
  for (let f = 0; f < frames; f++) {
    for (let n = 0; n < nFft; n++) frame[n] = x[reflect(f * hop + n - half)]! * (0.5 - 0.5 * Math.cos((2 * Math.PI * n) / nFft));
    const power = new Float64Array(half + 1);
    for (let k = 0; k <= half; k++) {
      let re = 0;
      let im = 0;
      for (let n = 0; n < nFft; n++) {
        const a = (-2 * Math.PI * k * n) / nFft;
        re += frame[n]! * Math.cos(a);
        im += frame[n]! * Math.sin(a);
      }
      power[k] = re * re + im * im;
    }
    for (let m = 0; m < nMels; m++) {
      let e = 0;
      for (let k = 0; k <= half; k++) e += filters[m]![k]! * power[k]!;
      out[m * frames + f] = Math.log10(Math.max(e, 1e-10));
    }
  }
  let max = -Infinity;
  for (const v of out) max = Math.max(max, v);
  for (let i = 0; i < out.length; i++) out[i] = (Math.max(out[i]!, max - 8) + 4) / 4;
  return out;
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

export function meanAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i]! - b[i]!);
  return s / a.length;
}

export function readF32(file: string): Float32Array {
  const b = fs.readFileSync(file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** The AudioError `p` rejects with (fails the test if it resolves or throws something else). */
export async function audioError(p: Promise<unknown>): Promise<AudioError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(AudioError);
    return err as AudioError;
  }
  throw new Error('expected an AudioError, but the call succeeded');
}
