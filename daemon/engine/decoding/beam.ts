// Beam search over one window (openai/whisper's BeamSearchDecoder and MaximumLikelihoodRanker):
// N hypotheses advance together, each step keeps the N best continuations by summed
// log-probability, hypotheses that end are set aside until N have ended (or the length limit),
// and the one with the best log-probability per token wins. Each live hypothesis is one decoder
// row; a step says which row each new hypothesis continues, and the caller copies caches.
import { WxError } from '../../errors.js';
import type { WhisperModel } from '../model.js';
import type { WhisperTokenizer } from '../tokenizer.js';
import { applyFilters, type LogitFilter } from './filters.js';
import { logSumExp, topK } from './numerics.js';
import { decodingSetup, type DecodeOptions, type DecodeResult } from './task.js';

interface Hypothesis {
  tokens: number[];
  /** Σ log-probability of its tokens (what the beam ranks by). */
  score: number;
}

export interface BeamStep {
  /** For each hypothesis now live: the index of the hypothesis it continues (before the step). */
  parents: number[];
  /** For each hypothesis now live: the token to feed next. */
  tokens: number[];
}

export class BeamSearchDecoder {
  readonly prompt: number[];
  readonly sotIndex: number;
  private readonly filters: LogitFilter[];
  private readonly sampleLen: number;
  private beams: Hypothesis[] = [{ tokens: [], score: 0 }];
  /** Ended hypotheses, tokens without `<|endoftext|>`; `textScore` leaves out its log-probability. */
  private readonly finished: (Hypothesis & { textScore: number })[] = [];
  noSpeechProb = NaN;

  constructor(
    private readonly tok: WhisperTokenizer,
    model: WhisperModel,
    readonly language: string | undefined,
    opts: DecodeOptions,
    readonly beamSize: number,
  ) {
    if (!Number.isInteger(beamSize) || beamSize < 1) throw new WxError('engine.bad_options', `beam size must be a positive integer, got ${beamSize}`);
    if ((opts.temperature ?? 0) > 0) throw new WxError('engine.bad_options', 'beam search is for temperature 0 (sampling at higher temperatures)');
    const setup = decodingSetup(tok, model, language, opts);
    this.prompt = setup.prompt;
    this.sotIndex = setup.sotIndex;
    this.sampleLen = setup.sampleLen;
    this.filters = setup.filters;
  }

  setNoSpeechFrom(logitsAtSot: Float32Array): void {
    this.noSpeechProb = Math.exp(logitsAtSot[this.tok.noSpeech]! - logSumExp(logitsAtSot));
  }

  /** Takes the logits of every live hypothesis (in order); returns how the next step's
   *  hypotheses continue them, or null when the search is over. */
  step(logits: readonly Float32Array[]): BeamStep | null {
    if (logits.length !== this.beams.length) throw new WxError('engine.bad_input', `beam step got ${logits.length} logit rows for ${this.beams.length} hypotheses`);
    const n = this.beamSize;
    const eot = this.tok.eot;
    // Candidates keyed by their token sequence, so identical hypotheses never fill two places.
    const candidates = new Map<string, { parent: number; token: number; score: number }>();
    this.beams.forEach((beam, i) => {
      const row = logits[i]!;
      const lse = applyFilters(this.filters, row, beam.tokens);
      for (const token of topK(row, n + 1)) {
        const logprob = row[token]! - lse;
        if (logprob === -Infinity) continue;
        const key = beam.tokens.join(',') + ',' + token;
        candidates.set(key, { parent: i, token, score: beam.score + logprob });
      }
    });
    if (candidates.size === 0) throw new WxError('engine.no_token', 'every token was suppressed (decoder produced no candidate)');
    const ranked = [...candidates.values()].sort((a, b) => b.score - a.score);
    const next: Hypothesis[] = [];
    const parents: number[] = [];
    for (const c of ranked) {
      const parent = this.beams[c.parent]!;
      if (c.token === eot) {
        if (this.finished.length < n) this.finished.push({ tokens: parent.tokens, score: c.score, textScore: parent.score });
        continue;
      }
      next.push({ tokens: [...parent.tokens, c.token], score: c.score });
      parents.push(c.parent);
      if (next.length === n) break;
    }
    this.beams = next;
    const atLimit = next.length > 0 && next[0]!.tokens.length >= this.sampleLen;
    if (this.finished.length >= n || next.length === 0 || atLimit) return null;
    return { parents, tokens: next.map((h) => h.tokens[h.tokens.length - 1]!) };
  }

  /** The best hypothesis by log-probability per token; live ones count when fewer than N ended. */
  result(): DecodeResult {
    const pool: (Hypothesis & { textScore: number; completed: boolean })[] = this.finished.map((h) => ({ ...h, completed: true }));
    for (const b of [...this.beams].sort((x, y) => y.score - x.score)) {
      if (pool.length >= this.beamSize) break;
      pool.push({ ...b, textScore: b.score, completed: false });
    }
    if (pool.length === 0) throw new WxError('engine.no_token', 'beam search ended without a hypothesis');
    let best = pool[0]!;
    for (const h of pool) if (h.score / Math.max(1, h.tokens.length) > best.score / Math.max(1, best.tokens.length)) best = h;
    return {
      tokens: [...best.tokens],
      text: this.tok.decode(best.tokens.filter((t) => t < this.tok.eot)),
      language: this.language,
      sumLogprob: best.textScore,
      avgLogprob: best.textScore / (best.tokens.length + 1),
      noSpeechProb: this.noSpeechProb,
      temperature: 0,
      completed: best.completed,
    };
  }
}
