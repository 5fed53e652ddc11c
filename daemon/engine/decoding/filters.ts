// Rules applied to one row's logits before a token is chosen, each a small filter (the shape of
// openai/whisper's LogitFilter). Filters mutate the logits in place, setting banned ids to -∞.
import type { WhisperTokenizer } from '../tokenizer.js';
import { logSumExp, maxOf } from './numerics.js';

export interface LogitFilter {
  /** `sampled` holds the tokens chosen so far after the prompt. A filter that had to compute
   *  log Σ exp of the logits as it leaves them may return it (a 52k-row reduction saved). */
  apply(logits: Float32Array, sampled: readonly number[]): number | void;
}

/** Applies `filters` in order; returns log Σ exp of the result (from the last filter, or computed). */
export function applyFilters(filters: readonly LogitFilter[], logits: Float32Array, sampled: readonly number[]): number {
  let known: number | void = undefined;
  for (const f of filters) known = f.apply(logits, sampled);
  return typeof known === 'number' ? known : logSumExp(logits);
}

/** Always bans a fixed id set. */
export class SuppressTokens implements LogitFilter {
  private readonly ids: Int32Array;
  constructor(ids: Iterable<number>, vocab: number) {
    this.ids = Int32Array.from([...new Set(ids)].filter((i) => i >= 0 && i < vocab));
  }
  apply(logits: Float32Array): void {
    for (let i = 0; i < this.ids.length; i++) logits[this.ids[i]!] = -Infinity;
  }
}

/** Bans every id in [from, to). */
export class SuppressRange implements LogitFilter {
  constructor(private readonly from: number, private readonly to: number) {}
  apply(logits: Float32Array): void {
    logits.fill(-Infinity, this.from, Math.min(this.to, logits.length));
  }
}

/** At the first sampled position only, bans the given ids: a blank start (a lone space) and an
 *  immediate end; after a forced prefix, tokens that would glue onto its last word. */
export class SuppressBlank implements LogitFilter {
  constructor(private readonly ids: readonly number[]) {}
  apply(logits: Float32Array, sampled: readonly number[]): void {
    if (sampled.length === 0) for (const id of this.ids) logits[id] = -Infinity;
  }
}

/**
 * Whisper's timestamp grammar: timestamps come in pairs around text, never decrease, the first
 * token is a timestamp no later than `maxInitialTimestamp` tokens, and a timestamp is forced when
 * the timestamps together are more likely than any single text token.
 */
export class TimestampRules implements LogitFilter {
  private readonly tsBegin: number;
  private readonly eot: number;
  constructor(tokenizer: WhisperTokenizer, private readonly maxInitialTimestampIndex: number | undefined) {
    this.tsBegin = tokenizer.timestampBegin;
    this.eot = tokenizer.eot;
    this.noTimestamps = tokenizer.noTimestamps;
  }
  private readonly noTimestamps: number;

  apply(logits: Float32Array, sampled: readonly number[]): number {
    const tsBegin = this.tsBegin;
    logits[this.noTimestamps] = -Infinity;
    const n = sampled.length;
    const last = n >= 1 && sampled[n - 1]! >= tsBegin;
    const penultimate = n < 2 || sampled[n - 2]! >= tsBegin;
    if (last) {
      if (penultimate) logits.fill(-Infinity, tsBegin); // a pair is closed: text (or end) next
      else logits.fill(-Infinity, 0, this.eot); // an open pair: a timestamp or the end next
    }
    let lastTs = -1;
    for (let i = n - 1; i >= 0; i--) {
      if (sampled[i]! >= tsBegin) {
        lastTs = sampled[i]!;
        break;
      }
    }
    if (lastTs >= 0) {
      // Never go back in time; after a closing timestamp, also never repeat it.
      const floor = last && !penultimate ? lastTs : lastTs + 1;
      logits.fill(-Infinity, tsBegin, Math.min(floor, logits.length));
    }
    if (n === 0) {
      logits.fill(-Infinity, 0, tsBegin);
      if (this.maxInitialTimestampIndex !== undefined) logits.fill(-Infinity, tsBegin + this.maxInitialTimestampIndex + 1);
    }
    // If the timestamps together outweigh the best text token, take a timestamp.
    const lse = logSumExp(logits, 0, logits.length);
    const tsLse = logSumExp(logits, tsBegin, logits.length);
    const maxText = maxOf(logits, 0, tsBegin) - lse;
    if (tsLse - lse > maxText) {
      logits.fill(-Infinity, 0, tsBegin);
      return tsLse; // only the timestamps are left
    }
    return lse;
  }
}
