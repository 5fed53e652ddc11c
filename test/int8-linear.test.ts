// The native int8 linear kernel (native/src/int8_linear.cc) against the same arithmetic in double
// precision: weights in 8-bit blocks of 32 (as the importer stores them), activations quantised
// per row and block of 32 (max / 127, round to nearest even), then bias, GELU or a residual add,
// an optional LayerNorm first, and the head-split output layout the cross K/V use.
import { describe, expect, it } from 'vitest';
import { native } from '../daemon/native.js';
import { quantizeRowBlocks } from '../daemon/engine/quant.js';
import { seededRandom } from '../daemon/engine/decoding/numerics.js';

const addon = native();

/** erf in double by its Taylor series (|z| ≤ 4 here: ample terms, error < 1e-9). */
function erf(z: number): number {
  let term = z;
  let sum = z;
  for (let n = 1; n < 200; n++) {
    term *= (-z * z) / n;
    const add = term / (2 * n + 1);
    sum += add;
    if (Math.abs(add) < 1e-17) break;
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}

const roundEven = (v: number): number => {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
};

interface Case {
  rows: number;
  k: number;
  n: number;
  epilogue: 0 | 1 | 2;
  norm?: boolean;
  heads?: number;
}

function reference(c: Case, x: Float32Array, w: Float32Array, bias: Float32Array, prior: Float32Array, gamma: Float32Array, beta: Float32Array): Float64Array {
  const q = quantizeRowBlocks(w, c.n, c.k, 32);
  const blocks = q.blocks;
  const out = new Float64Array(c.rows * c.n);
  for (let r = 0; r < c.rows; r++) {
    let row = Array.from(x.subarray(r * c.k, (r + 1) * c.k));
    if (c.norm) {
      // The kernel's own float32 LayerNorm (tested against double precision below): the
      // quantisation grid must see exactly the values the kernel saw.
      const normed = new Float32Array(c.k);
      addon.layerNorm(x.subarray(r * c.k, (r + 1) * c.k), 1, c.k, gamma, beta, 1e-5, normed);
      row = Array.from(normed);
    }
    const qa = new Array<number>(c.k);
    const sa = new Array<number>(blocks);
    for (let b = 0; b < blocks; b++) {
      const slice = row.slice(b * 32, Math.min(c.k, (b + 1) * 32));
      const m = Math.fround(slice.reduce((s, v) => Math.max(s, Math.abs(v)), 0));
      sa[b] = Math.fround(m / 127);
      const inv = m > 0 ? Math.fround(127 / m) : 0;
      slice.forEach((v, i) => (qa[b * 32 + i] = Math.max(-127, Math.min(127, roundEven(Math.fround(v * inv))))));
    }
    for (let o = 0; o < c.n; o++) {
      let acc = 0;
      for (let b = 0; b < blocks; b++) {
        let dot = 0;
        for (let i = b * 32; i < Math.min(c.k, (b + 1) * 32); i++) dot += qa[i]! * (q.values[o * blocks * 32 + i]! - 128);
        acc += dot * sa[b]! * q.scales[o * blocks + b]!;
      }
      let v = acc + bias[o]!;
      if (c.epilogue === 1) v = 0.5 * v * (1 + erf(v / Math.SQRT2));
      out[r * c.n + o] = c.epilogue === 2 ? prior[r * c.n + o]! + v : v;
    }
  }
  return out;
}

/** Row-major [rows, n] → [rows / positions, heads, positions, n / heads]. */
function splitHeads(a: Float64Array, rows: number, n: number, heads: number, positions: number): Float64Array {
  const out = new Float64Array(a.length);
  const dh = n / heads;
  for (let r = 0; r < rows; r++) {
    const b = Math.floor(r / positions), t = r % positions;
    for (let c = 0; c < n; c++) out[((b * heads + Math.floor(c / dh)) * positions + t) * dh + (c % dh)] = a[r * n + c]!;
  }
  return out;
}

describe('native int8 linear kernel', () => {
  const cases: [string, Case][] = [
    ['plain, partial tiles and panels, a short last block', { rows: 13, k: 80, n: 50, epilogue: 0 }],
    ['GELU', { rows: 7, k: 64, n: 96, epilogue: 1 }],
    ['added to a residual stream', { rows: 20, k: 96, n: 40, epilogue: 2 }],
    ['after a LayerNorm', { rows: 9, k: 128, n: 64, epilogue: 0, norm: true }],
    ['split into heads', { rows: 14, k: 64, n: 128, epilogue: 0, heads: 2 }],
    ['large enough for several threads', { rows: 300, k: 384, n: 160, epilogue: 1, norm: true }],
  ];
  for (const [what, c] of cases) {
    it(`${what}: matches double-precision arithmetic on the same quantisation`, () => {
      const rnd = seededRandom(c.rows * 1000 + c.k + c.n);
      const g = (s: number) => (rnd() * 2 - 1) * s;
      // A few large activations per row, as real hidden states have: blocks then differ in scale.
      const x = Float32Array.from({ length: c.rows * c.k }, (_, i) => g(i % 37 === 0 ? 6 : 1));
      const w = Float32Array.from({ length: c.n * c.k }, () => g(0.08));
      const bias = Float32Array.from({ length: c.n }, () => g(0.5));
      const prior = Float32Array.from({ length: c.rows * c.n }, () => g(2));
      const gamma = Float32Array.from({ length: c.k }, () => 1 + g(0.3));
      const beta = Float32Array.from({ length: c.k }, () => g(0.2));
      const q = quantizeRowBlocks(w, c.n, c.k, 32);
      const packed = addon.linear8Pack(q.values, q.scales, bias, c.n, c.k);
      const out = Float32Array.from(prior);
      const positions = c.heads ? c.rows / 2 : 0;
      addon.linear8Run(packed, x, c.rows, out, c.epilogue, 2, c.norm ? { gamma, beta, eps: 1e-5 } : null, c.heads ? { heads: c.heads, positions } : null);
      let expected = reference(c, x, w, bias, prior, gamma, beta);
      if (c.heads) expected = splitHeads(expected, c.rows, c.n, c.heads, positions);
      let worst = 0;
      let scale = 0;
      for (let i = 0; i < expected.length; i++) {
        worst = Math.max(worst, Math.abs(out[i]! - expected[i]!));
        scale = Math.max(scale, Math.abs(expected[i]!));
      }
      expect(scale).toBeGreaterThan(0.5);
      expect(worst / scale).toBeLessThan(5e-6);
    });
  }

  it('is a matrix product: close to the unquantised float product', () => {
    const rnd = seededRandom(7);
    const rows = 24, k = 384, n = 96;
    const x = Float32Array.from({ length: rows * k }, () => rnd() * 2 - 1);
    const w = Float32Array.from({ length: n * k }, () => (rnd() * 2 - 1) * 0.05);
    const q = quantizeRowBlocks(w, n, k, 32);
    const out = new Float32Array(rows * n);
    addon.linear8Run(addon.linear8Pack(q.values, q.scales, null, n, k), x, rows, out, 0, 1);
    let se = 0, sr = 0;
    for (let r = 0; r < rows; r++) {
      for (let o = 0; o < n; o++) {
        let s = 0;
        for (let i = 0; i < k; i++) s += x[r * k + i]! * w[o * k + i]!;
        se += (out[r * n + o]! - s) ** 2;
        sr += s * s;
      }
    }
    expect(Math.sqrt(se / sr)).toBeLessThan(0.01);
  });

  it('LayerNorm matches double precision', () => {
    const rnd = seededRandom(3);
    const rows = 5, d = 384;
    const x = Float32Array.from({ length: rows * d }, (_, i) => (rnd() * 2 - 1) * (i % 50 === 0 ? 20 : 1) + 3);
    const gamma = Float32Array.from({ length: d }, () => 1 + rnd() * 0.5);
    const beta = Float32Array.from({ length: d }, () => rnd() - 0.5);
    const out = new Float32Array(rows * d);
    addon.layerNorm(x, rows, d, gamma, beta, 1e-5, out);
    for (let r = 0; r < rows; r++) {
      const row = Array.from(x.subarray(r * d, (r + 1) * d));
      const mean = row.reduce((s, v) => s + v, 0) / d;
      const inv = 1 / Math.sqrt(row.reduce((s, v) => s + (v - mean) ** 2, 0) / d + 1e-5);
      row.forEach((v, i) => expect(Math.abs(out[r * d + i]! - ((v - mean) * inv * gamma[i]! + beta[i]!))).toBeLessThan(2e-5));
    }
  });

  it('one linear can hand its output to the next already quantised: the same result, bit for bit', () => {
    // fc1 (GELU) → fc2 (added to the residual), as the encoder's MLP runs: once through float rows,
    // once through QuantisedRows; on one thread (rows split by tile) and two.
    const rnd = seededRandom(11);
    const rows = 150, d = 96, f = 384;
    const pack = (n: number, k: number) => {
      const q = quantizeRowBlocks(Float32Array.from({ length: n * k }, () => (rnd() * 2 - 1) * 0.1), n, k, 32);
      return addon.linear8Pack(q.values, q.scales, Float32Array.from({ length: n }, () => rnd() - 0.5), n, k);
    };
    const fc1 = pack(f, d), fc2 = pack(d, f);
    const x = Float32Array.from({ length: rows * d }, () => rnd() * 2 - 1);
    const gamma = Float32Array.from({ length: d }, () => 1 + rnd() * 0.2), beta = Float32Array.from({ length: d }, () => rnd() * 0.1);
    for (const threads of [1, 2]) {
      const viaFloats = Float32Array.from(x), viaRows = Float32Array.from(x);
      const up = new Float32Array(rows * f);
      addon.linear8Run(fc1, viaFloats, rows, up, 1, threads, { gamma, beta, eps: 1e-5 });
      addon.linear8Run(fc2, up, rows, viaFloats, 2, threads);
      const upRows = addon.linear8QuantisedRows(rows, f);
      addon.linear8Run(fc1, viaRows, rows, upRows, 1, threads, { gamma, beta, eps: 1e-5 });
      addon.linear8Run(fc2, upRows, rows, viaRows, 2, threads);
      expect(viaRows).toEqual(viaFloats);
      expect(viaRows).not.toEqual(x);
    }
    const upRows = addon.linear8QuantisedRows(rows, f);
    // Wrong width, an add into quantised rows, a norm on quantised input, and a packed linear
    // passed where quantised rows belong are refused.
    expect(() => addon.linear8Run(fc2, addon.linear8QuantisedRows(rows, 2 * f), rows, new Float32Array(rows * d), 2, 1)).toThrow(/sizes do not match/);
    expect(() => addon.linear8Run(fc1, x, rows, upRows, 2, 1)).toThrow(/sizes do not match/);
    expect(() => addon.linear8Run(fc2, upRows, rows, new Float32Array(rows * d), 0, 1, { gamma: new Float32Array(f), beta: new Float32Array(f), eps: 1e-5 })).toThrow(/no norm/);
    expect(() => addon.linear8Run(fc2, fc1, rows, new Float32Array(rows * d), 0, 1)).toThrow(TypeError);
    expect(() => addon.linear8QuantisedRows(4, 33)).toThrow(/multiple of 32/);
  });

  it('rows quantised once (after a LayerNorm) feed several linears with the same result, bit for bit', () => {
    // The encoder's output into its cross key/value projections, split into heads.
    const rnd = seededRandom(17);
    const rows = 200, d = 128;
    const q = quantizeRowBlocks(Float32Array.from({ length: d * d }, () => (rnd() * 2 - 1) * 0.1), d, d, 32);
    const proj = addon.linear8Pack(q.values, q.scales, Float32Array.from({ length: d }, () => rnd() - 0.5), d, d);
    const x = Float32Array.from({ length: rows * d }, () => (rnd() * 2 - 1) * 3);
    const norm = { gamma: Float32Array.from({ length: d }, () => 1 + rnd() * 0.2), beta: Float32Array.from({ length: d }, () => rnd() * 0.1), eps: 1e-5 };
    for (const threads of [1, 2]) {
      const direct = new Float32Array(rows * d), viaRows = new Float32Array(rows * d);
      addon.linear8Run(proj, x, rows, direct, 0, threads, norm, { heads: 2, positions: 100 });
      const once = addon.linear8QuantisedRows(rows, d);
      addon.linear8Quantise(x, rows, once, threads, norm);
      addon.linear8Run(proj, once, rows, viaRows, 0, threads, null, { heads: 2, positions: 100 });
      expect(viaRows).toEqual(direct);
      expect(direct.some((v) => v !== 0)).toBe(true);
    }
    expect(() => addon.linear8Quantise(x, rows + 1, addon.linear8QuantisedRows(rows, d), 1)).toThrow(/sizes do not match/);
    expect(() => addon.linear8Quantise(x, rows, addon.linear8QuantisedRows(rows, d), 1, { gamma: new Float32Array(d + 1), beta: new Float32Array(d), eps: 1e-5 })).toThrow(/norm needs/);
  });

  it('a 3-tap convolution over frames read in place gives what the linear gives on copied-out rows, bit for bit', () => {
    // Whisper's stem: conv1 over a mel window (channel-major, stride 1), conv2 over conv1's
    // frame-major output (stride 2); padding 1, odd and even frame counts, several windows.
    for (const [C, frames, stride, channelMajor, epilogue] of [[20, 37, 1, true, 1], [48, 38, 2, false, 3], [48, 37, 2, false, 0]] as const) {
      const n = 40, k = 3 * C, windows = 3;
      const rnd = seededRandom(C * 100 + frames);
      const g = (s: number) => (rnd() * 2 - 1) * s;
      const x = Float32Array.from({ length: windows * C * frames }, (_, i) => g(i % 23 === 0 ? 4 : 1));
      const w = Float32Array.from({ length: n * k }, () => g(0.1));
      const q = quantizeRowBlocks(w, n, k, 32);
      const packed = addon.linear8Pack(q.values, q.scales, Float32Array.from({ length: n }, () => g(0.3)), n, k);
      const outFrames = Math.floor((frames - 1) / stride) + 1;
      const rows = windows * outFrames;
      const at = (b: number, t: number, c: number) => (t < 0 || t >= frames ? 0 : x[channelMajor ? (b * C + c) * frames + t : (b * frames + t) * C + c]!);
      const copied = new Float32Array(rows * k);
      for (let b = 0; b < windows; b++)
        for (let j = 0; j < outFrames; j++)
          for (let tap = 0; tap < 3; tap++)
            for (let c = 0; c < C; c++) copied[((b * outFrames + j) * 3 + tap) * C + c] = at(b, j * stride - 1 + tap, c);
      const prior = Float32Array.from({ length: rows * n }, () => g(1));
      const expected = Float32Array.from(prior);
      // GELU then added (3) is GELU (1) with the sum taken after, in float32.
      addon.linear8Run(packed, copied, rows, expected, epilogue === 3 ? 1 : epilogue, 2);
      if (epilogue === 3) expected.forEach((v, i) => (expected[i] = Math.fround(v + prior[i]!)));
      const out = Float32Array.from(prior);
      addon.conv8Run(packed, x, windows, frames, C, stride, channelMajor, out, epilogue, 2);
      expect(Array.from(out), `C ${C}, ${frames} frames, stride ${stride}`).toEqual(Array.from(expected));
    }
    const q = quantizeRowBlocks(new Float32Array(8 * 30), 8, 30, 32);
    const packed = addon.linear8Pack(q.values, q.scales, null, 8, 30);
    expect(() => addon.conv8Run(packed, new Float32Array(10 * 12), 1, 12, 10, 1, true, new Float32Array(8), 0, 1)).toThrow(/sizes do not match/);
    expect(() => addon.conv8Run(packed, new Float32Array(9 * 12), 1, 12, 9, 1, true, new Float32Array(8 * 12), 0, 1)).toThrow(/3·channels/);
  });

  it('refuses mismatched sizes', () => {
    const q = quantizeRowBlocks(new Float32Array(64 * 32), 64, 32, 32);
    expect(() => addon.linear8Pack(q.values, q.scales, null, 64, 64)).toThrow(/sizes do not match/);
    const packed = addon.linear8Pack(q.values, q.scales, null, 64, 32);
    expect(() => addon.linear8Run(packed, new Float32Array(10), 1, new Float32Array(64), 0, 1)).toThrow(/sizes do not match/);
    expect(() => addon.linear8Run(packed, new Float32Array(32 * 3), 3, new Float32Array(64 * 3), 0, 1, null, { heads: 3, positions: 3 })).toThrow(/heads/);
  });
});
