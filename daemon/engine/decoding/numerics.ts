// Pure numeric helpers over logit rows. Rows are ~52k floats and these run once per token per
// row, so they avoid allocation and skip terms too small to change a float32 result.

export function maxOf(x: Float32Array, from = 0, to = x.length): number {
  let m = -Infinity;
  for (let i = from; i < to; i++) if (x[i]! > m) m = x[i]!;
  return m;
}

export function argmax(x: Float32Array, from = 0, to = x.length): number {
  let best = -1;
  let m = -Infinity;
  for (let i = from; i < to; i++) {
    if (x[i]! > m) {
      m = x[i]!;
      best = i;
    }
  }
  return best;
}

/** log Σ exp(x[i]) over [from, to). Terms more than 30 below the max add < 1e-13 relative each
 *  and are skipped, which spares most of the exp calls on a peaked distribution. */
export function logSumExp(x: Float32Array, from = 0, to = x.length): number {
  const m = maxOf(x, from, to);
  if (m === -Infinity) return -Infinity;
  const cut = m - 30;
  let s = 0;
  for (let i = from; i < to; i++) {
    const v = x[i]!;
    if (v > cut) s += Math.exp(v - m);
  }
  return m + Math.log(s);
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
