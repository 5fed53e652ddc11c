// Word error rate (the accuracy number every comparison in wx uses) and the gzip-style
// compression ratio OpenAI uses to detect repetitive, hallucinated output.
import zlib from 'node:zlib';
import { WxError } from '../errors.js';
import { normalizeBasic, normalizeEnglish } from './normalize.js';

export interface WerOptions {
  /** `true`/'english' (default): Whisper-style English normalisation; 'basic': language-neutral;
   *  `false`: only whitespace splitting. */
  normalize?: boolean | 'english' | 'basic';
}

export interface WerResult {
  /** (S + D + I) / N; 0 when both sides are empty, Infinity when only the reference is. */
  wer: number;
  substitutions: number;
  deletions: number;
  insertions: number;
  /** Reference words (N). */
  words: number;
  /** Pairs whose normalised texts are identical (only for lists of texts). */
  exactCount?: number;
  /** Number of text pairs compared. */
  pairs: number;
}

export interface EditCounts {
  substitutions: number;
  deletions: number;
  insertions: number;
}

function normaliser(opt: WerOptions['normalize']): (s: string) => string {
  if (opt === false) return (s) => s;
  if (opt === 'basic') return normalizeBasic;
  return normalizeEnglish;
}

const splitWords = (s: string): string[] => s.split(/\s+/u).filter((w) => w.length > 0);

/** Minimum edit (Levenshtein) alignment of two word sequences, counting each kind of edit.
 *  Keeps two rows only: O(n·m) time, O(m) memory. Among equally short alignments, matches and
 *  substitutions are preferred over deletions, and deletions over insertions. */
export function wordEdits(ref: readonly string[], hyp: readonly string[]): EditCounts {
  const m = hyp.length;
  let cost = new Int32Array(m + 1);
  let sub = new Int32Array(m + 1);
  let del = new Int32Array(m + 1);
  let ins = new Int32Array(m + 1);
  let nCost = new Int32Array(m + 1);
  let nSub = new Int32Array(m + 1);
  let nDel = new Int32Array(m + 1);
  let nIns = new Int32Array(m + 1);
  for (let j = 0; j <= m; j++) {
    cost[j] = j;
    ins[j] = j;
  }
  for (let i = 1; i <= ref.length; i++) {
    nCost[0] = i;
    nSub[0] = 0;
    nDel[0] = i;
    nIns[0] = 0;
    const r = ref[i - 1];
    for (let j = 1; j <= m; j++) {
      const same = r === hyp[j - 1];
      const diag = cost[j - 1]! + (same ? 0 : 1);
      const up = cost[j]! + 1; // deletion of ref[i-1]
      const left = nCost[j - 1]! + 1; // insertion of hyp[j-1]
      if (diag <= up && diag <= left) {
        nCost[j] = diag;
        nSub[j] = sub[j - 1]! + (same ? 0 : 1);
        nDel[j] = del[j - 1]!;
        nIns[j] = ins[j - 1]!;
      } else if (up <= left) {
        nCost[j] = up;
        nSub[j] = sub[j]!;
        nDel[j] = del[j]! + 1;
        nIns[j] = ins[j]!;
      } else {
        nCost[j] = left;
        nSub[j] = nSub[j - 1]!;
        nDel[j] = nDel[j - 1]!;
        nIns[j] = nIns[j - 1]! + 1;
      }
    }
    [cost, nCost] = [nCost, cost];
    [sub, nSub] = [nSub, sub];
    [del, nDel] = [nDel, del];
    [ins, nIns] = [nIns, ins];
  }
  return { substitutions: sub[m]!, deletions: del[m]!, insertions: ins[m]! };
}

/** WER of one hypothesis against one reference, or of a corpus (lists of equal length: edits
 *  and reference words are summed over all pairs, as corpus WER is usually reported). */
export function wordErrorRate(refs: readonly string[] | string, hyps: readonly string[] | string, opts: WerOptions = {}): WerResult {
  const list = Array.isArray(refs);
  const refList: readonly string[] = typeof refs === 'string' ? [refs] : refs;
  const hypList: readonly string[] = typeof hyps === 'string' ? [hyps] : hyps;
  if (refList.length !== hypList.length) {
    throw new WxError('wer.length_mismatch', `WER needs one hypothesis per reference: got ${refList.length} references and ${hypList.length} hypotheses`, {
      references: refList.length,
      hypotheses: hypList.length,
    });
  }
  const norm = normaliser(opts.normalize);
  let substitutions = 0;
  let deletions = 0;
  let insertions = 0;
  let words = 0;
  let exactCount = 0;
  for (let k = 0; k < refList.length; k++) {
    const r = splitWords(norm(refList[k]!));
    const h = splitWords(norm(hypList[k]!));
    const e = wordEdits(r, h);
    substitutions += e.substitutions;
    deletions += e.deletions;
    insertions += e.insertions;
    words += r.length;
    if (r.join(' ') === h.join(' ')) exactCount++;
  }
  const errors = substitutions + deletions + insertions;
  const wer = words > 0 ? errors / words : errors === 0 ? 0 : Infinity;
  const result: WerResult = { wer, substitutions, deletions, insertions, words, pairs: refList.length };
  if (list) result.exactCount = exactCount;
  return result;
}

/** UTF-8 bytes ÷ zlib-deflated bytes, as OpenAI's `compression_ratio` (> 2.4 means the text
 *  repeats itself, a sign of hallucination). */
export function compressionRatio(text: string): number {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length === 0) return 0;
  return bytes.length / zlib.deflateSync(bytes).length;
}
