// LocalAgreement-2 stabilisation of streaming hypotheses: the current utterance is decoded again
// and again as audio arrives; a word becomes committed once two consecutive hypotheses agree on
// it (and on everything before it). Committed words never change; the rest is tentative.

/** Words as shown: split on whitespace, punctuation kept on the word. */
export function splitWords(text: string): string[] {
  return text.trim().split(/\s+/).filter((w) => w.length > 0);
}

/** Comparison key of a word: case and surrounding punctuation do not make two hypotheses disagree
 *  ("world," and "World." are the same word said). */
export function wordKey(word: string): string {
  return word.toLowerCase().replace(/^[^\p{L}\p{N}]+|[^\p{L}\p{N}]+$/gu, '');
}

/**
 * Where the not-yet-committed part of `hyp` starts, given the committed words: the index after the
 * last word of `hyp` that lines up with a committed word (longest common subsequence on word keys),
 * so a hypothesis that dropped or doubled a committed word still continues at the right place.
 */
export function tailStart(committed: readonly string[], hyp: readonly string[]): number {
  if (committed.length === 0) return 0;
  const n = committed.length;
  if (hyp.length >= n && committed.every((w, i) => wordKey(w) === wordKey(hyp[i]!))) return n;
  // LCS table over keys; sizes are an utterance's words (≤ ~100), so the square table is cheap.
  const a = committed.map(wordKey);
  const b = hyp.map(wordKey);
  const m = b.length;
  const dp: Uint16Array[] = Array.from({ length: n + 1 }, () => new Uint16Array(m + 1));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      dp[i]![j] = a[i] === b[j] ? dp[i + 1]![j + 1]! + 1 : Math.max(dp[i + 1]![j]!, dp[i]![j + 1]!);
    }
  }
  let i = 0;
  let j = 0;
  let lastMatched = -1;
  while (i < n && j < m) {
    if (a[i] === b[j]) {
      lastMatched = j;
      i++;
      j++;
    } else if (dp[i + 1]![j]! >= dp[i]![j + 1]!) i++;
    else j++;
  }
  // Nothing lines up: assume the hypothesis re-said the committed words in other words.
  if (lastMatched < 0) return Math.min(n, m);
  return lastMatched + 1;
}

export interface AgreementState {
  committed: string[];
  tentative: string[];
}

/**
 * LocalAgreement-2 over the hypotheses of one utterance. With `minSpanS`, a hypothesis is compared
 * with the latest one that heard at least that much less audio, not simply the one before it:
 * at a fast cadence two consecutive hypotheses hear nearly the same audio and agree on a word cut
 * off mid-way just as readily as on a right one (on the dev clips, commits at a 150-ms cadence
 * cost ~3 WER points more than at 350 ms).
 */
export class LocalAgreement {
  private readonly committedWords: string[] = [];
  /** Earlier hypotheses (whole words) with the audio time each had heard. */
  private history: { words: string[]; atS: number }[] = [];
  private tentativeWords: string[] = [];
  private updates = 0;

  constructor(private readonly opts: { minSpanS?: number } = {}) {}

  /** Takes the next hypothesis (the whole utterance so far, decoded from `atS` seconds of audio;
   *  default: one more than the last); returns the new state. Words that this and the reference
   *  hypothesis agree on after the committed prefix are committed. */
  update(text: string, atS: number = ++this.updates): AgreementState {
    const hyp = splitWords(text);
    const tail = hyp.slice(tailStart(this.committedWords, hyp));
    const minSpan = this.opts.minSpanS ?? 0;
    let ref = this.history.length - 1;
    while (ref >= 0 && this.history[ref]!.atS > atS - minSpan) ref--;
    let k = 0;
    if (ref >= 0) {
      const words = this.history[ref]!.words;
      const refTail = words.slice(tailStart(this.committedWords, words));
      while (k < tail.length && k < refTail.length && wordKey(tail[k]!) === wordKey(refTail[k]!)) k++;
      // The last word heard may still be cut off mid-word ("trust" of "trusts"): it stays
      // tentative until more audio follows it.
      k = Math.max(0, Math.min(k, tail.length - 1));
      this.committedWords.push(...tail.slice(0, k));
      this.history = this.history.slice(ref);
    }
    this.history.push({ words: hyp, atS });
    this.tentativeWords = tail.slice(k);
    return this.state();
  }

  /** The last word of the utterance: committed words plus the final hypothesis after them. */
  finish(text: string): string[] {
    const hyp = splitWords(text);
    return [...this.committedWords, ...hyp.slice(tailStart(this.committedWords, hyp))];
  }

  /** Committed words plus the latest tentative ones (what to show if no final decode comes). */
  bestSoFar(): string[] {
    return [...this.committedWords, ...this.tentativeWords];
  }

  state(): AgreementState {
    return { committed: [...this.committedWords], tentative: [...this.tentativeWords] };
  }
}
