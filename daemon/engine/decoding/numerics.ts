// Pure numeric helpers over logit rows. Rows are ~52k floats and these run once per token per
// row: the reductions live in the native addon, nothing here allocates.
import { native } from '../../native.js';

const addon = native();

/** The largest value of x[from, to) (-Infinity when empty; NaN never wins). */
export function maxOf(x: Float32Array, from = 0, to = x.length): number {
  return addon.logitsMaxOf(x, from, to) as number;
}

/** The first index of the largest value of x[from, to), or -1 if there is none. */
export function argmax(x: Float32Array, from = 0, to = x.length): number {
  return addon.logitsArgmax(x, from, to) as number;
}

/** log Σ exp(x[i]) over [from, to). In the native addon (a vector exp, ~25 µs for a 52k row;
 *  Math.exp in a loop was ~0.5–0.75 ms, a quarter of a transcription's time); the sum is kept
 *  in double per block, within ~1e-8 of the exact value. */
export function logSumExp(x: Float32Array, from = 0, to = x.length): number {
  return addon.logitsLogSumExp(x, from, to) as number;
}

/** Softmax probability of `id` in a row. */
export function probabilityOf(x: Float32Array, id: number): number {
  return Math.exp(x[id]! - logSumExp(x));
}

/** A small seeded PRNG (mulberry32): temperature sampling must be reproducible per window. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Draws an id from softmax(x / temperature). */
export function sampleWithTemperature(x: Float32Array, temperature: number, random: () => number): number {
  const m = maxOf(x);
  const inv = 1 / temperature;
  let total = 0;
  for (let i = 0; i < x.length; i++) total += Math.exp((x[i]! - m) * inv);
  let r = random() * total;
  for (let i = 0; i < x.length; i++) {
    const p = Math.exp((x[i]! - m) * inv);
    if (p === 0) continue;
    r -= p;
    if (r <= 0) return i;
  }
  return argmax(x);
}

/** Indices of the k largest values of x, largest first (ties: lower index first); -∞ and NaN
 *  never count. One pass that only looks closer at values above the current k-th. */
export function topK(x: Float32Array, k: number): number[] {
  const ids: number[] = [];
  const vals: number[] = [];
  let floor = -Infinity;
  for (let i = 0; i < x.length; i++) {
    const v = x[i]!;
    if (!(v > floor) && !(ids.length < k && v > -Infinity)) continue;
    let at = vals.length;
    while (at > 0 && vals[at - 1]! < v) at--;
    if (at >= k) continue;
    ids.splice(at, 0, i);
    vals.splice(at, 0, v);
    if (ids.length > k) {
      ids.pop();
      vals.pop();
    }
    if (ids.length === k) floor = vals[k - 1]!;
  }
  return ids;
}
