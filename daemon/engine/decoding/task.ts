// Decoding one 30-s window: the prompt, the logit filters and the choice of each next token, as
// one object per sequence (the shape of openai/whisper's DecodingTask). `decodeWindows` drives
// many of them through a shared DecoderBatch: a row that finishes leaves at once and the next
// waiting window takes its place at the next step.
import { WxError } from '../../errors.js';
import type { DecoderBatch, DecoderRow, EncodedWindows, WhisperModel } from '../model.js';
import type { WhisperTokenizer } from '../tokenizer.js';
import { applyFilters, SuppressBlank, SuppressRange, SuppressTokens, TimestampRules, type LogitFilter } from './filters.js';
import { argmax, logSumExp, sampleWithTemperature, seededRandom } from './numerics.js';
import { BeamSearchDecoder } from './beam.js';

export interface DecodeOptions {
  /** 0 = greedy. */
  temperature?: number;
  timestamps?: boolean;
  /** Multilingual models: a language code; detected from the audio when absent. */
  language?: string;
  task?: 'transcribe' | 'translate';
  /** Previous text as tokens, given after `<|startofprev|>`. */
  previousTokens?: readonly number[];
  /** Text tokens the transcript must start with, fed after the start-of-transcript sequence (not
   *  sampled, not in the result): the decode continues words already shown to the user. The
   *  first sampled token starts a new word or is punctuation (or ends the text). Text-only:
   *  not with `timestamps`. */
  prefix?: readonly number[];
  /** Most tokens sampled in this window (default: half the text context). */
  sampleLen?: number;
  /** Latest allowed first timestamp, in seconds (default 1.0). */
  maxInitialTimestamp?: number;
  /**
   * `whisper`: the model's suppress_tokens + non-speech symbols, a blank start, the timestamp
   * grammar. `plain`: only special tokens are banned (timestamps allowed when `timestamps`),
   * plain argmax: the semantics of the reference outputs, for parity checks.
   */
  rules?: 'whisper' | 'plain';
  seed?: number;
  /** Beam search with this many hypotheses (temperature 0 only); absent: one greedy or sampled
   *  sequence. */
  beamSize?: number;
}

export interface DecodeResult {
  /** Sampled tokens, without the prompt and without the final `<|endoftext|>`. */
  tokens: number[];
  text: string;
  language: string | undefined;
  sumLogprob: number;
  avgLogprob: number;
  /** Probability of `<|nospeech|>` right after `<|startoftranscript|>`. */
  noSpeechProb: number;
  temperature: number;
  /** True when the model ended the window itself (not cut at `sampleLen`). */
  completed: boolean;
  /** Raw logits of the first sampled positions, before any filter, when asked for (debugging). */
  firstLogits?: Float32Array[];
}

/** What every decode of a window starts from: the prompt (previous text, start-of-transcript
 *  sequence, forced prefix), where `<|startoftranscript|>` sits in it, the most tokens to sample,
 *  and the logit filters. */
export function decodingSetup(tok: WhisperTokenizer, model: WhisperModel, language: string | undefined, opts: DecodeOptions): { prompt: number[]; sotIndex: number; sampleLen: number; filters: LogitFilter[] } {
  const dims = model.dims;
  const timestamps = opts.timestamps ?? false;
  const sot = tok.sotSequence({ language, task: opts.task, timestamps });
  const maxPrev = Math.floor(dims.nTextCtx / 2) - 1;
  const prev = opts.previousTokens?.length ? [tok.sotPrev, ...opts.previousTokens.slice(-maxPrev)] : [];
  const prefix = opts.prefix ?? [];
  if (prefix.length && timestamps) throw new WxError('engine.bad_options', 'a forced prefix is text-only: decode it without timestamps');
  const prompt = [...prev, ...sot, ...prefix];
  const sampleLen = Math.min(opts.sampleLen ?? Math.floor(dims.nTextCtx / 2), dims.nTextCtx - prompt.length);
  const filters: LogitFilter[] = [];
  const V = dims.nVocab;
  if ((opts.rules ?? 'whisper') === 'plain') {
    filters.push(new SuppressRange(tok.eot + 1, timestamps ? tok.timestampBegin : V));
  } else {
    const gen = model.config.generation;
    const specials: number[] = [tok.sot, tok.sotPrev, tok.noSpeech, tok.noTimestamps];
    if (tok.sotLm !== undefined) specials.push(tok.sotLm);
    if (tok.transcribe !== undefined) specials.push(tok.transcribe);
    if (tok.translate !== undefined) specials.push(tok.translate);
    specials.push(...tok.languageTokenIds());
    filters.push(new SuppressTokens([...gen.suppressTokens, ...tok.nonSpeechTokens(), ...specials], V));
    // After a forced prefix the text may end at once, but must not glue onto its last word
    // (the tokenizer's cached list, not a copy: dictation builds a decoder every few 100 ms).
    filters.push(new SuppressBlank(prefix.length ? tok.encode(' ') : [...tok.encode(' '), tok.eot]));
    if (prefix.length) filters.push(new SuppressBlank(tok.wordContinuationTokens()));
    // Ids between the last special token and the first timestamp (none in the standard
    // layouts) and anything past the vocabulary the tokenizer knows are never text.
    if (timestamps) {
      const maxInitial = opts.maxInitialTimestamp ?? 1.0;
      filters.push(new TimestampRules(tok, Math.round(maxInitial / 0.02)));
    } else {
      filters.push(new SuppressRange(tok.timestampBegin, V));
    }
  }
  return { prompt, sotIndex: prev.length, sampleLen, filters };
}

export class SequenceDecoder {
  readonly prompt: number[];
  readonly sotIndex: number;
  readonly sampled: number[] = [];
  private readonly filters: LogitFilter[] = [];
  private readonly temperature: number;
  private readonly sampleLen: number;
  private readonly random: () => number;
  sumLogprob = 0;
  noSpeechProb = NaN;
  done = false;
  completed = false;
  readonly firstLogits: Float32Array[] = [];

  constructor(
    private readonly tok: WhisperTokenizer,
    model: WhisperModel,
    readonly language: string | undefined,
    opts: DecodeOptions,
    private readonly keepFirstLogits = 0,
  ) {
    const setup = decodingSetup(tok, model, language, opts);
    this.prompt = setup.prompt;
    this.sotIndex = setup.sotIndex;
    this.sampleLen = setup.sampleLen;
    this.filters.push(...setup.filters);
    this.temperature = opts.temperature ?? 0;
    this.random = seededRandom(opts.seed ?? 0x5eed);
  }

  /** Takes the logits at the last fed position; returns the next token to feed, or -1 when done. */
  consume(logits: Float32Array): number {
    if (this.firstLogits.length < this.keepFirstLogits) this.firstLogits.push(Float32Array.from(logits));
    const lse = applyFilters(this.filters, logits, this.sampled);
    const token = this.temperature > 0 ? sampleWithTemperature(logits, this.temperature, this.random) : argmax(logits);
    if (token < 0) throw new WxError('engine.no_token', 'every token was suppressed (decoder produced no candidate)');
    if (token === this.tok.eot) {
      this.done = true;
      this.completed = true;
      return -1;
    }
    this.sumLogprob += logits[token]! - lse;
    this.sampled.push(token);
    if (this.sampled.length >= this.sampleLen) {
      this.done = true;
      return -1;
    }
    return token;
  }

  setNoSpeechFrom(logitsAtSot: Float32Array): void {
    this.noSpeechProb = Math.exp(logitsAtSot[this.tok.noSpeech]! - logSumExp(logitsAtSot));
  }

  result(): DecodeResult {
    const text = this.tok.decode(this.sampled.filter((t) => t < this.tok.eot));
    return {
      tokens: [...this.sampled],
      text,
      language: this.language,
      sumLogprob: this.sumLogprob,
      avgLogprob: this.sumLogprob / (this.sampled.length + 1),
      noSpeechProb: this.noSpeechProb,
      temperature: this.temperature,
      completed: this.completed,
      ...(this.keepFirstLogits ? { firstLogits: this.firstLogits } : {}),
    };
  }
}

export interface WindowJob {
  enc: EncodedWindows;
  index: number;
  options: DecodeOptions;
  /** Keep the raw logits of this many first steps in the result. */
  keepFirstLogits?: number;
}

/** A window being decoded: one row (greedy or sampling), or a block of rows, one per hypothesis
 *  (beam search; `live` of them hold hypotheses, the rest mirror the first). */
type Task =
  | { kind: 'one'; row: DecoderRow; seq: SequenceDecoder; next: number; done: (r: DecodeResult) => void }
  | { kind: 'beam'; batch: DecoderBatch; rows: DecoderRow[]; live: number; beam: BeamSearchDecoder; next: number[]; done: (r: DecodeResult) => void };

/**
 * The rows in flight. `admit` runs a window's prompt on its own row (rows feed different prompt
 * lengths); `step` advances every row by one token. A finished row leaves at once, so a waiting
 * window can take its place before the next step (iteration-level batching). A row sees exactly
 * the tokens it would see alone. Greedy and sampled windows share one DecoderBatch (one decoder
 * call per step); beam-search windows of width N share a grouped batch (blocks of N rows that
 * read their window's cross keys/values once), one more call per step while any runs.
 */
export class BatchRunner {
  /** Created on first use, dropped by `releaseBatches` (its caches are tens of MB, held by an idle daemon). */
  private greedy: DecoderBatch | null = null;
  private readonly beamBatches = new Map<number, DecoderBatch>();
  private readonly owner = new Map<number, Task>();
  private readonly V: number;

  constructor(private readonly model: WhisperModel, private readonly tok: WhisperTokenizer, readonly maxRows: number) {
    this.V = model.dims.nVocab;
  }

  private get batch(): DecoderBatch {
    return (this.greedy ??= this.model.newBatch(this.maxRows));
  }

  /** Drops the decoder batches and their caches when no row is in flight (they are made again
   *  on the next admit); returns whether it did. */
  releaseBatches(): boolean {
    if (this.size > 0) return false;
    this.greedy = null;
    this.beamBatches.clear();
    return true;
  }

  /** Rows of greedy (or sampled) windows. */
  get greedyRows(): number {
    return this.greedy?.size ?? 0;
  }

  /** Rows in flight. */
  get size(): number {
    let n = this.greedy?.size ?? 0;
    for (const b of this.beamBatches.values()) n += b.size;
    return n;
  }

  get free(): number {
    return this.maxRows - this.size;
  }

  /** Rows `job` takes (its beam width, else 1). */
  rowsFor(job: WindowJob): number {
    const n = job.options.beamSize ?? 1;
    if (!Number.isInteger(n) || n < 1) throw new WxError('engine.bad_options', `beam size must be a positive integer, got ${n}`);
    if (n > this.maxRows) throw new WxError('engine.bad_options', `beam size ${n} is more than the decoder batch holds (${this.maxRows} rows)`);
    return n;
  }

  private beamBatch(width: number): DecoderBatch {
    let b = this.beamBatches.get(width);
    if (!b) {
      b = this.model.newBatch(width * Math.floor(this.maxRows / width), 64, width);
      this.beamBatches.set(width, b);
    }
    return b;
  }

  /** Starts decoding `job`; `done` is called with its result when the row finishes. */
  async admit(job: WindowJob, done: (r: DecodeResult) => void): Promise<void> {
    const { tok, V } = this;
    const width = this.rowsFor(job);
    if (width > this.free) throw new WxError('engine.batch_full', `decoder batch has ${this.free} free rows, the window needs ${width}`);
    const beamed = job.options.beamSize !== undefined;
    const batch = beamed ? this.beamBatch(width) : this.batch;
    const rows = beamed ? batch.addGroup(job.enc, job.index) : [batch.add(job.enc, job.index)];
    const row = rows[0]!;
    let task: Task | undefined;
    try {
      let language = job.options.language;
      if (tok.multilingual && language === undefined) {
        language = await detectLanguageOnRow(batch, row, tok);
        batch.reset(row);
      }
      if (beamed) {
        const beam = new BeamSearchDecoder(tok, this.model, language, job.options, width);
        const logits = await batch.step([row], [beam.prompt], [beam.sotIndex, beam.prompt.length - 1]);
        beam.setNoSpeechFrom(logits.subarray(0, V));
        task = { kind: 'beam', batch, rows, live: 1, beam, next: [], done };
        for (const r of rows) this.owner.set(r.id, task);
        this.advanceBeam(task, [logits.subarray(V, 2 * V)]);
        return;
      }
      const seq = new SequenceDecoder(tok, this.model, language, job.options, job.keepFirstLogits ?? 0);
      const logits = await batch.step([row], [seq.prompt], [seq.sotIndex, seq.prompt.length - 1]);
      seq.setNoSpeechFrom(logits.subarray(0, V));
      task = { kind: 'one', row, seq, next: seq.consume(logits.subarray(V, 2 * V)), done };
      this.owner.set(row.id, task);
      if (task.next < 0) this.finish(task);
    } catch (err) {
      if (task) this.release(task);
      else batch.remove(row);
      throw err;
    }
  }

  /** Forgets every row (after a failed step). */
  reset(): void {
    this.owner.clear();
    this.greedy?.clear();
    for (const b of this.beamBatches.values()) b.clear();
  }

  /** One token for every row in flight. */
  async step(): Promise<void> {
    if (this.greedyRows > 0) {
      const rows = this.batch.rows.slice();
      const tasks = rows.map((r) => this.owner.get(r.id) as Extract<Task, { kind: 'one' }>);
      const logits = await this.batch.step(rows, tasks.map((t) => [t.next]), [0]);
      tasks.forEach((t, b) => {
        t.next = t.seq.consume(logits.subarray(b * this.V, (b + 1) * this.V));
        if (t.next < 0 || t.row.length >= this.model.dims.nTextCtx) this.finish(t);
      });
    }
    for (const batch of this.beamBatches.values()) {
      if (batch.size === 0) continue;
      const rows = batch.rows.slice();
      const tasks = rows.map((r) => this.owner.get(r.id) as Extract<Task, { kind: 'beam' }>);
      const logits = await batch.step(rows, rows.map((r, b) => [tasks[b]!.next[tasks[b]!.rows.indexOf(r)]!]), [0]);
      const perTask = new Map<Extract<Task, { kind: 'beam' }>, Float32Array[]>();
      rows.forEach((r, b) => {
        const t = tasks[b]!;
        const i = t.rows.indexOf(r);
        if (i >= t.live) return; // a row mirroring the first hypothesis
        const list = perTask.get(t) ?? [];
        list[i] = logits.subarray(b * this.V, (b + 1) * this.V);
        perTask.set(t, list);
      });
      for (const [t, list] of perTask) this.advanceBeam(t, list);
    }
  }

  /** Applies a beam step: each new hypothesis takes over its parent's cache; rows beyond the
   *  live hypotheses mirror the first one (their results are ignored). */
  private advanceBeam(t: Extract<Task, { kind: 'beam' }>, logits: Float32Array[]): void {
    const st = t.beam.step(logits);
    if (!st || t.rows[0]!.length >= this.model.dims.nTextCtx) {
      this.finish(t);
      return;
    }
    const k = st.parents.length;
    const sources = t.rows.map((_, i) => t.rows[st.parents[i < k ? i : 0]!]!);
    t.batch.copyCaches(sources, t.rows);
    t.next = t.rows.map((_, i) => st.tokens[i < k ? i : 0]!);
    t.live = k;
  }

  private release(t: Task): void {
    if (t.kind === 'one') {
      this.batch.remove(t.row);
      this.owner.delete(t.row.id);
      return;
    }
    t.batch.remove(t.rows[0]!);
    for (const r of t.rows) this.owner.delete(r.id);
  }

  private finish(t: Task): void {
    this.release(t);
    t.done(t.kind === 'one' ? t.seq.result() : t.beam.result());
  }
}

/** Decodes windows with up to `maxRows` rows in flight (see BatchRunner). */
export async function decodeWindows(model: WhisperModel, tok: WhisperTokenizer, jobs: readonly WindowJob[], opts: { maxRows?: number } = {}): Promise<DecodeResult[]> {
  const results: DecodeResult[] = new Array(jobs.length);
  if (jobs.length === 0) return results;
  const widths = jobs.map((j) => j.options.beamSize ?? 1);
  const total = widths.reduce((a, b) => a + b, 0);
  const runner = new BatchRunner(model, tok, Math.max(1, ...widths, Math.min(opts.maxRows ?? 8, total)));
  let next = 0;
  while (next < jobs.length || runner.size > 0) {
    while (next < jobs.length && runner.free >= runner.rowsFor(jobs[next]!)) {
      const j = next++;
      await runner.admit(jobs[j]!, (r) => (results[j] = r));
    }
    await runner.step();
  }
  return results;
}

/** Language scores from the logits after `<|startoftranscript|>` alone. */
async function languageLogits(batch: DecoderBatch, row: DecoderRow, tok: WhisperTokenizer): Promise<{ ids: number[]; scores: Float32Array }> {
  const logits = await batch.step([row], [[tok.sot]], [0]);
  const ids = tok.languageTokenIds();
  return { ids, scores: Float32Array.from(ids.map((id) => logits[id]!)) };
}

async function detectLanguageOnRow(batch: DecoderBatch, row: DecoderRow, tok: WhisperTokenizer): Promise<string> {
  const { ids, scores } = await languageLogits(batch, row, tok);
  return tok.languageOfToken(ids[argmax(scores)]!) ?? 'en';
}

/** Language probabilities of window `index` (multilingual models). */
export async function detectLanguage(model: WhisperModel, tok: WhisperTokenizer, enc: EncodedWindows, index: number): Promise<{ language: string; probs: Record<string, number> }> {
  const batch = model.newBatch(1, 8);
  const { ids, scores } = await languageLogits(batch, batch.add(enc, index), tok);
  const lse = logSumExp(scores);
  const probs: Record<string, number> = {};
  ids.forEach((id, i) => (probs[tok.languageOfToken(id)!] = Math.exp(scores[i]! - lse)));
  return { language: tok.languageOfToken(ids[argmax(scores)]!)!, probs };
}
