// The native int8 cross-attention (native/src/cross_attention.cc through Int8CrossCache) against
// plain double-precision attention over the float keys/values it was given.
import { describe, expect, it } from 'vitest';
import { Int8CrossCache, windowAttention, windowAttentionFast } from '../daemon/engine/cross-int8.js';
import { seededRandom } from '../daemon/engine/decoding/numerics.js';
import { crossBytesPerWindow } from '../daemon/engine/limits.js';

const H = 3;
const DH = 64;
const T = 150; // not a multiple of the vector width: the last tile is partial

function randomWindow(seed: number, positions: number): { k: Float32Array; v: Float32Array } {
  const r = seededRandom(seed);
  // Channel-dependent magnitudes, as real keys have: some dims are large, most small.
  const gain = Array.from({ length: DH }, (_, d) => (d % 7 === 0 ? 3 : 0.5));
  const make = () => Float32Array.from({ length: H * positions * DH }, (_, i) => (r() * 2 - 1) * gain[i % DH]!);
  return { k: make(), v: make() };
}

/** Attention of one query row (heads × DH, already scaled) over a window's first `length` positions. */
function exactAttention(q: Float32Array, qAt: number, w: { k: Float32Array; v: Float32Array }, positions: number, length: number): Float64Array {
  const out = new Float64Array(H * DH);
  for (let h = 0; h < H; h++) {
    const scores = new Float64Array(length);
    let m = -Infinity;
    for (let t = 0; t < length; t++) {
      let s = 0;
      for (let d = 0; d < DH; d++) s += q[qAt + h * DH + d]! * w.k[(h * positions + t) * DH + d]!;
      scores[t] = s;
      m = Math.max(m, s);
    }
    let sum = 0;
    for (let t = 0; t < length; t++) sum += scores[t] = Math.exp(scores[t]! - m);
    for (let d = 0; d < DH; d++) {
      let a = 0;
      for (let t = 0; t < length; t++) a += scores[t]! * w.v[(h * positions + t) * DH + d]!;
      out[h * DH + d] = a / sum;
    }
  }
  return out;
}

describe('int8 cross-attention', () => {
  it('matches double-precision attention within int8 rounding, for shared slots, shorter windows and several steps', () => {
    const cache = new Int8CrossCache({ layers: 2, heads: H, headDim: DH, positions: T }, 3);
    const windows = [randomWindow(1, T), randomWindow(2, T), randomWindow(3, 97)];
    const positions = [T, T, 97];
    windows.forEach((w, slot) => {
      // Layer 1's heads are quantised on two threads: the same bytes as on one.
      for (let l = 0; l < 2; l++) cache.store(slot, l, w.k, w.v, positions[slot]!, l + 1);
    });
    // Five rows: two share slot 0 (a beam), one reads slot 2's 97 positions, one only 40 of slot 1's.
    const slotOf = Int32Array.from([0, 0, 1, 2, 1]);
    const lengths = Int32Array.from([T, T, T, 97, 40]);
    const rows = slotOf.length;
    const steps = 2;
    const r = seededRandom(9);
    const q = Float32Array.from({ length: rows * steps * H * DH }, () => (r() * 2 - 1) * 0.3);
    const out = cache.attend(1, q, rows, steps, slotOf, lengths, 2);
    expect(cache.attend(0, q, rows, steps, slotOf, lengths, 2)).toEqual(out);
    let worst = 0;
    let scale = 0;
    for (let b = 0; b < rows; b++) {
      for (let s = 0; s < steps; s++) {
        const at = (b * steps + s) * H * DH;
        const want = exactAttention(q, at, windows[slotOf[b]!]!, positions[slotOf[b]!]!, lengths[b]!);
        for (let i = 0; i < H * DH; i++) {
          worst = Math.max(worst, Math.abs(out[at + i]! - want[i]!));
          scale = Math.max(scale, Math.abs(want[i]!));
        }
      }
    }
    expect(scale).toBeGreaterThan(0.1);
    // int8 with a scale per position and head: ~1% here, where a few large channels share each
    // position's scale with many small ones.
    expect(worst / scale).toBeLessThan(0.02);
    expect(worst / scale).toBeGreaterThan(0); // it is int8, not a copy of the floats
  });

  it('a moved slot attends like the original, and a shorter window stored over a longer one reads none of it', () => {
    const cache = new Int8CrossCache({ layers: 1, heads: H, headDim: DH, positions: T }, 2);
    const long = randomWindow(4, T);
    const short = randomWindow(5, 30);
    cache.store(0, 0, long.k, long.v, T);
    cache.store(1, 0, long.k, long.v, T);
    cache.store(1, 0, short.k, short.v, 30);
    const q = Float32Array.from({ length: H * DH }, (_, i) => Math.sin(i) * 0.4);
    const one = (slot: number, length: number) => cache.attend(0, q, 1, 1, Int32Array.from([slot]), Int32Array.from([length]), 1);
    const before = one(0, T);
    const shortOut = one(1, 30);
    cache.move(0, 1);
    expect(one(0, 30)).toEqual(shortOut);
    expect(one(0, 30)).not.toEqual(before.subarray(0));
    // The short window's slot holds zeros past its 30 positions: reading them (length T) changes
    // the result, so the length really bounds what is read.
    expect(one(1, T)).not.toEqual(shortOut);
  });

  it('holds what the batch limits budget for a window (a quarter of float32, plus scales)', () => {
    const dims = { nMels: 128, nAudioCtx: 1500, dModel: 1280, encoderLayers: 32, encoderHeads: 20, decoderLayers: 32, decoderHeads: 20, nVocab: 51866, nTextCtx: 448, encoderFfn: 5120, decoderFfn: 5120 };
    const cache = new Int8CrossCache({ layers: dims.decoderLayers, heads: dims.decoderHeads, headDim: 64, positions: dims.nAudioCtx }, 1);
    expect(cache.bytesPerSlot).toBeLessThanOrEqual(crossBytesPerWindow(dims, 'int8'));
    expect(cache.bytesPerSlot).toBeGreaterThan(0.95 * crossBytesPerWindow(dims, 'int8'));
    expect(cache.bytesPerSlot).toBeLessThan(0.3 * crossBytesPerWindow(dims, 'float32'));
  });

  it('rejects rows without a valid slot or length', () => {
    const cache = new Int8CrossCache({ layers: 1, heads: H, headDim: DH, positions: T }, 1);
    const q = new Float32Array(H * DH);
    expect(() => cache.attend(0, q, 1, 1, Int32Array.from([1]), Int32Array.from([T]), 1)).toThrow(/slot or length/);
    expect(() => cache.attend(0, q, 1, 1, Int32Array.from([0]), Int32Array.from([0]), 1)).toThrow(/slot or length/);
    expect(() => cache.store(1, 0, new Float32Array(H * T * DH), new Float32Array(H * T * DH), T)).toThrow(/out of range/);
  });
});

describe('int8 self-attention over encoder windows', () => {
  // Two windows of 151 positions (odd: the last query runs alone; not a multiple of 16: a partial
  // key tile), 3 heads, queries unscaled (the kernel applies 1/sqrt(headDim)).
  const B = 2;
  const P = 151;
  const qkvOf = (seed: number) => {
    const r = seededRandom(seed);
    const gain = Array.from({ length: DH }, (_, d) => (d % 7 === 0 ? 3 : 0.5));
    return Float32Array.from({ length: B * 3 * H * P * DH }, (_, i) => (r() * 2 - 1) * gain[i % DH]! * 1.5);
  };

  it('matches double-precision attention within int8 rounding where the CPU has int8 dot products', () => {
    const qkv = qkvOf(11);
    const out = new Float32Array(B * P * H * DH);
    if (!windowAttentionFast(DH)) {
      // Without VNNI the encoder keeps ONNX Runtime's attention; the kernel refuses to run.
      expect(() => windowAttention(qkv, B, P, H, DH, out, 2)).toThrow(/int8 kernel/);
      return;
    }
    windowAttention(qkv, B, P, H, DH, out, 2);
    const at = (b: number, part: number, h: number, t: number) => (((b * 3 + part) * H + h) * P + t) * DH;
    let worst = 0;
    let scale = 0;
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        for (let t = 0; t < P; t++) {
          const q = qkv.subarray(at(b, 0, h, t), at(b, 0, h, t) + DH).map((x) => x / Math.sqrt(DH));
          const w = { k: qkv.subarray(at(b, 1, h, 0), at(b, 1, h, P)), v: qkv.subarray(at(b, 2, h, 0), at(b, 2, h, P)) };
          const want = exactAttentionOneHead(q, w, P);
          for (let i = 0; i < DH; i++) {
            worst = Math.max(worst, Math.abs(out[(b * P + t) * H * DH + h * DH + i]! - want[i]!));
            scale = Math.max(scale, Math.abs(want[i]!));
          }
        }
      }
    }
    expect(scale).toBeGreaterThan(0.1);
    expect(worst / scale).toBeLessThan(0.03);
    expect(worst / scale).toBeGreaterThan(0);
  });

  it('rejects sizes that do not match', () => {
    const out = new Float32Array(B * P * H * DH);
    expect(() => windowAttention(new Float32Array(10), B, P, H, DH, out, 2)).toThrow(/sizes do not match/);
  });
});

function exactAttentionOneHead(q: Float32Array, w: { k: Float32Array; v: Float32Array }, length: number): Float64Array {
  const scores = new Float64Array(length);
  let m = -Infinity;
  for (let t = 0; t < length; t++) {
    let s = 0;
    for (let d = 0; d < DH; d++) s += q[d]! * w.k[t * DH + d]!;
    scores[t] = s;
    m = Math.max(m, s);
  }
  let sum = 0;
  for (let t = 0; t < length; t++) sum += scores[t] = Math.exp(scores[t]! - m);
  const out = new Float64Array(DH);
  for (let d = 0; d < DH; d++) {
    let a = 0;
    for (let t = 0; t < length; t++) a += scores[t]! * w.v[t * DH + d]!;
    out[d] = a / sum;
  }
  return out;
}
