// Turning a window's sampled tokens into timed segments (pure functions).
import type { WhisperTokenizer } from '../engine/tokenizer.js';

export interface RawSegment {
  /** Seconds relative to the window start. */
  start: number;
  end: number;
  /** Text tokens, without timestamps. */
  textTokens: number[];
  /** The tokens of the segment as sampled (timestamps included). */
  tokens: number[];
}

export interface SplitResult {
  segments: RawSegment[];
  /** Seconds into the window up to which the text is complete (the last closing timestamp), or
   *  undefined when the window ended on a single timestamp or had no pairs (take all of it). */
  lastCompleteS: number | undefined;
}

/**
 * Splits `<|t0|> text <|t1|><|t1'|> text <|t2|>` into segments. A window whose text has no
 * timestamps becomes one segment spanning `[0, windowS]` (or up to its only timestamp).
 */
export function splitByTimestamps(tokens: readonly number[], tok: WhisperTokenizer, windowS: number): SplitResult {
  const isTs = (t: number) => t >= tok.timestampBegin;
  const secs = (t: number) => tok.timestampSeconds(t);
  const n = tokens.length;
  const singleEnding = n >= 2 && !isTs(tokens[n - 2]!) && isTs(tokens[n - 1]!);
  const cuts: number[] = [];
  for (let i = 1; i < n; i++) if (isTs(tokens[i]!) && isTs(tokens[i - 1]!)) cuts.push(i);
  const segments: RawSegment[] = [];
  if (cuts.length > 0) {
    const bounds = singleEnding ? [...cuts, n] : cuts;
    let last = 0;
    for (const cut of bounds) {
      const slice = tokens.slice(last, cut);
      last = cut;
      const text = slice.filter((t) => !isTs(t) && t < tok.eot);
      if (slice.length < 2 || !isTs(slice[0]!) || !isTs(slice[slice.length - 1]!)) continue;
      if (text.length === 0) continue;
      segments.push({ start: secs(slice[0]!), end: secs(slice[slice.length - 1]!), textTokens: text, tokens: slice });
    }
    const lastClose = tokens[cuts[cuts.length - 1]! - 1]!;
    return { segments, lastCompleteS: singleEnding ? undefined : secs(lastClose) };
  }
  const text = tokens.filter((t) => !isTs(t) && t < tok.eot);
  const stamps = tokens.filter(isTs);
  let end = windowS;
  let start = 0;
  if (stamps.length > 0) {
    start = secs(stamps[0]!);
    const lastStamp = secs(stamps[stamps.length - 1]!);
    if (stamps.length > 1 && lastStamp > start) end = lastStamp;
  }
  if (text.length > 0) segments.push({ start, end: Math.max(end, start), textTokens: text, tokens: [...tokens] });
  return { segments, lastCompleteS: undefined };
}
