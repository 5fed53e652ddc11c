// The logit-row reductions (native addon) against plain double-precision loops.
import { describe, expect, it } from 'vitest';
import { argmax, logSumExp, maxOf, seededRandom } from '../daemon/engine/decoding/numerics.js';
import { applyFilters, SuppressTokens, TimestampRules } from '../daemon/engine/decoding/filters.js';
import { WhisperTokenizer } from '../daemon/engine/tokenizer.js';
import { tinyModelDir } from './shared.js';

function exactLogSumExp(x: Float32Array, from = 0, to = x.length): number {
  let m = -Infinity;
  for (let i = from; i < to; i++) if (x[i]! > m) m = x[i]!;
  if (m === -Infinity) return -Infinity;
  let s = 0;
  for (let i = from; i < to; i++) if (!Number.isNaN(x[i]!)) s += Math.exp(x[i]! - m);
  return m + Math.log(s);
}

function row(n: number, spread: number, seed: number): Float32Array {
  const r = seededRandom(seed);
  return Float32Array.from({ length: n }, () => (r() * 2 - 1) * spread);
}

describe('logit-row reductions', () => {
  it('log Σ exp is within 1e-6 of a double-precision loop over whole rows and sub-ranges', () => {
    let worst = 0;
    for (let k = 0; k < 60; k++) {
      const x = row(51864 + (k % 17), 0.5 + (k % 12) * 3, k + 1);
      const from = (k * 37) % 500;
      const to = x.length - ((k * 13) % 300);
      worst = Math.max(worst, Math.abs(logSumExp(x, from, to) - exactLogSumExp(x, from, to)));
      worst = Math.max(worst, Math.abs(logSumExp(x) - exactLogSumExp(x)));
    }
    expect(worst).toBeLessThan(1e-6);
  });

  it('handles -Infinity (suppressed tokens), NaN, short and empty ranges, and subarray views', () => {
    const x = row(1000, 8, 7);
    for (let i = 0; i < 1000; i += 3) x[i] = -Infinity;
    x[500] = NaN;
    expect(logSumExp(x)).toBeCloseTo(exactLogSumExp(x), 6);
    expect(logSumExp(x, 10, 13)).toBeCloseTo(exactLogSumExp(x, 10, 13), 6); // shorter than a vector
    expect(logSumExp(x, 5, 5)).toBe(-Infinity);
    expect(logSumExp(new Float32Array(40).fill(-Infinity))).toBe(-Infinity);
    expect(logSumExp(new Float32Array(64).fill(3))).toBeCloseTo(3 + Math.log(64), 6);
    const view = x.subarray(100, 900);
    expect(logSumExp(view)).toBeCloseTo(exactLogSumExp(x, 100, 900), 6);
    expect(() => logSumExp(x, 0, 2000)).toThrow(/out of bounds/);
  });

  it('argmax takes the first index of the maximum; maxOf agrees; -1 when there is none', () => {
    const x = row(51864, 10, 3);
    x[40000] = 50;
    x[45000] = 50;
    expect(argmax(x)).toBe(40000);
    expect(argmax(x, 40001)).toBe(45000);
    expect(maxOf(x, 0, 40000)).toBe(Math.max(...x.subarray(0, 40000)));
    expect(argmax(x.subarray(40000))).toBe(0);
    expect(argmax(new Float32Array(20).fill(-Infinity))).toBe(-1);
    expect(argmax(x, 7, 7)).toBe(-1);
  });
});

describe('logit filters', () => {
  it('applyFilters returns log Σ exp of the filtered row, whether the timestamp rule forced a timestamp or not', () => {
    const tok = WhisperTokenizer.fromModelDir(tinyModelDir());
    const V = 51864;
    const filters = [new SuppressTokens([tok.sot, tok.noSpeech], V), new TimestampRules(tok, 50)];
    let forced = 0;
    let free = 0;
    for (let k = 0; k < 40; k++) {
      const x = row(V, 4, 100 + k);
      // Half the rows: timestamps that together outweigh every text token; the other half, weak ones.
      for (let i = tok.timestampBegin; i < V; i++) x[i] = x[i]! + (k % 2 === 0 ? 6 : -12);
      const sampled = k % 4 === 0 ? [] : [tok.timestampBegin + 3, 400]; // the first step, or text after an opening timestamp
      const lse = applyFilters(filters, x, sampled);
      expect(Math.abs(lse - exactLogSumExp(x))).toBeLessThan(1e-6);
      if (maxOf(x, 0, tok.timestampBegin) === -Infinity) forced++;
      else free++;
    }
    expect(forced).toBeGreaterThan(0);
    expect(free).toBeGreaterThan(0);
  });
});
