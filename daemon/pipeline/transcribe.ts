// Long-form transcription of one recording's samples with a loaded engine.
//
// `vad` (default): Silero finds speech; regions are packed into chunks of ≤ 30 s cut at
// silences; all chunks are encoded in small batches and decoded together (rows join and leave
// the decoder batch at every step); timestamps are mapped back onto the recording's timeline.
// Silence never reaches the model, which is also the main guard against hallucinated text.
//
// `sequential`: openai/whisper's algorithm: 30-s windows that seek to the last complete
// timestamp, conditioned on the previous text, with temperature fallback.
import { WxError } from '../errors.js';
import type { WhisperEngine, DecodeOptions, DecodeResult, EncodedWindows, WindowJob } from '../engine/index.js';
import type { EngineScheduler, Priority } from '../engine/scheduler.js';
import { planSpeechChunks, type SileroVad, type SpeechChunk, type VadOptions } from '../audio/vad.js';
import { batchLimits } from '../engine/limits.js';
import { splitByTimestamps } from './segments.js';
import { compressionRatio } from './wer.js';
import { DEFAULT_THRESHOLDS, isNoSpeech, needsFallback, type QualityThresholds } from './quality.js';
import type { Segment, Transcript } from './types.js';

export type Strategy = 'vad' | 'sequential';

export interface PipelineOptions {
  strategy?: Strategy;
  language?: string;
  task?: 'transcribe' | 'translate';
  initialPrompt?: string;
  /** Temperatures tried in order when a window fails the quality checks. */
  temperatures?: readonly number[];
  /** Condition each window on the previous text (sequential strategy). Off by default: see
   *  README (long prompts derail some checkpoints; a window that yields no text under a prompt
   *  is decoded again without it either way). */
  conditionOnPreviousText?: boolean;
  /** Most previous-text tokens given as the prompt (default: half the text context). */
  maxPreviousTokens?: number;
  thresholds?: Partial<QualityThresholds>;
  /** Latest first timestamp of a window, seconds (default 2.0; OpenAI uses 1.0, which forces a
   *  segment to start early when a sequential window begins in a pause longer than a second:
   *  on dev-long.wav 2.0 matched 57 of 60 segment boundaries, 1.0 only 53). */
  maxInitialTimestamp?: number;
  /** Speech detection, and the longest window audio (maxChunkS, at most the model's 30 s). */
  vad?: VadOptions & { maxChunkS?: number };
  /** Silence kept between two stretches of speech in a window, seconds (vad strategy; 1.5): the
   *  rest of a longer pause is cut out of the audio the model hears, so sparse speech takes
   *  fewer windows; timestamps are mapped back across the cuts. */
  maxSilenceS?: number;
  /** Beam search with this many hypotheses for the temperature-0 decode of every window (the
   *  fallback temperatures sample); absent or 1: greedy. */
  beamSize?: number;
  /** Windows per encoder run (vad strategy; default from the model's size, 4 for tiny). */
  encoderBatch?: number;
  /** Windows encoded and not yet decoded at once (vad strategy; default from the model's size,
   *  12 for tiny): a long recording's memory stays flat instead of growing with its length. */
  windowsInFlight?: number;
  /** Decoder rows in flight. */
  decoderRows?: number;
}

export interface PipelineProgress {
  processedS: number;
  durationS: number;
}

export interface PipelineHooks {
  onProgress?: (p: PipelineProgress) => void;
  signal?: AbortSignal;
}

export const SAMPLE_RATE = 16000;

/** How the pipeline reaches the model: through the scheduler (windows of many recordings
 *  batched, with a priority). */
export interface ModelAccess {
  engine: WhisperEngine;
  encode(samples: Float32Array, offsets: readonly number[], lengths: readonly number[]): Promise<EncodedWindows>;
  decode(jobs: readonly WindowJob[], opts: { maxRows?: number }): Promise<DecodeResult[]>;
}

export function scheduledAccess(scheduler: EngineScheduler, priority: Priority): ModelAccess {
  return { engine: scheduler.engine, encode: (s, o, l) => scheduler.encode(s, o, l, { priority }), decode: (jobs) => scheduler.decode(jobs, { priority }) };
}
const DEFAULT_TEMPERATURES = [0, 0.2, 0.4, 0.6, 0.8, 1.0];
const DEFAULT_MAX_INITIAL_TIMESTAMP = 2.0;

function checkAbort(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new WxError('job.cancelled', 'transcription cancelled');
}

interface WindowSpec {
  /** First sample of the window's audio in the recording. */
  offset: number;
  length: number;
  /** Seconds on the recording's timeline where segments may start/end. */
  clipStart: number;
  clipEnd: number;
  /** A window holding a single speech region is decoded without timestamps: its one segment
   *  spans the region VAD found. */
  region?: { start: number; end: number };
  /** When long silences were cut out of the window: the spans of the recording (samples) its
   *  audio is made of, in order. Absent: the window is `length` samples from `offset`. */
  pieces?: AudioPiece[];
}

interface AudioPiece {
  /** First sample in the recording. */
  from: number;
  length: number;
}

interface WindowOutcome {
  result: DecodeResult;
  compression: number;
}

/** Decodes windows with temperature fallback: every window starts at T=0; those failing the
 *  quality checks are decoded again, together, at the next temperature. */
async function decodeWithFallback(
  m: ModelAccess,
  enc: EncodedWindows,
  indices: readonly number[],
  base: (i: number) => DecodeOptions,
  opts: PipelineOptions,
): Promise<WindowOutcome[]> {
  const temps = opts.temperatures ?? DEFAULT_TEMPERATURES;
  const th = { ...DEFAULT_THRESHOLDS, ...opts.thresholds };
  const out: WindowOutcome[] = new Array(indices.length);
  const beam = opts.beamSize ?? 1;
  let pending = indices.map((_, k) => k);
  for (let ti = 0; ti < temps.length && pending.length > 0; ti++) {
    const temperature = temps[ti]!;
    const results = await m.decode(
      pending.map((k) => ({ enc, index: indices[k]!, options: { ...base(k), temperature, seed: 1000 * k + ti, ...(beam > 1 && temperature === 0 ? { beamSize: beam } : {}) } })),
      { maxRows: opts.decoderRows ?? 8 },
    );
    const retry: number[] = [];
    pending.forEach((k, j) => {
      const r = results[j]!;
      const q = { avgLogprob: r.avgLogprob, noSpeechProb: r.noSpeechProb, compressionRatio: compressionRatio(r.text) };
      out[k] = { result: r, compression: q.compressionRatio };
      if (ti < temps.length - 1 && needsFallback(q, th)) retry.push(k);
    });
    pending = retry;
  }
  return out;
}

function toSegments(
  engine: WhisperEngine,
  outcome: WindowOutcome,
  win: WindowSpec,
  seekFrames: number,
  startId: number,
): Segment[] {
  const tok = engine.tokenizer;
  const r = outcome.result;
  const windowS = win.length / SAMPLE_RATE;
  const split = splitByTimestamps(r.tokens, tok, windowS);
  const segs: Segment[] = [];
  for (const s of split.segments) {
    const text = tok.decode(s.textTokens);
    if (!text.trim()) continue;
    let start = win.region ? win.region.start : Math.max(win.clipStart, recordingTime(win, s.start, 'start'));
    let end = win.region ? win.region.end : Math.min(win.clipEnd, recordingTime(win, s.end, 'end'));
    if (end < start) end = start;
    start = round3(start);
    end = round3(end);
    segs.push({
      id: startId + segs.length,
      seek: seekFrames,
      start,
      end,
      text,
      tokens: s.tokens,
      temperature: r.temperature,
      avg_logprob: r.avgLogprob,
      compression_ratio: outcome.compression,
      no_speech_prob: r.noSpeechProb,
    });
  }
  return segs;
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;

/** Seconds into a window → seconds on the recording's timeline. A time on the seam between two
 *  pieces is the end of the first piece for a segment's end, the start of the next for a start. */
function recordingTime(win: WindowSpec, t: number, side: 'start' | 'end'): number {
  if (!win.pieces) return win.offset / SAMPLE_RATE + t;
  let at = 0; // window sample where the piece starts
  const sample = t * SAMPLE_RATE;
  for (const [i, p] of win.pieces.entries()) {
    const last = i === win.pieces.length - 1;
    if (sample < at + p.length || (side === 'end' && sample === at + p.length) || last) return (p.from + Math.min(sample - at, p.length)) / SAMPLE_RATE;
    at += p.length;
  }
  return win.clipEnd;
}

/** The audio of windows made of pieces, one after another (a short fade at each seam, so the
 *  cut in the background noise makes no click), with each window's offset in it. */
function joinPieces(samples: Float32Array, windows: readonly WindowSpec[]): { audio: Float32Array; offsets: number[] } {
  const total = windows.reduce((n, w) => n + w.length, 0);
  const audio = new Float32Array(total);
  const offsets: number[] = [];
  let at = 0;
  for (const w of windows) {
    offsets.push(at);
    const pieces = w.pieces ?? [{ from: w.offset, length: w.length }];
    for (const [i, p] of pieces.entries()) {
      audio.set(samples.subarray(p.from, p.from + p.length), at);
      const fade = Math.min(SEAM_FADE, p.length >> 1);
      if (i > 0) for (let k = 0; k < fade; k++) audio[at + k]! *= k / fade;
      if (i < pieces.length - 1) for (let k = 0; k < fade; k++) audio[at + p.length - 1 - k]! *= k / fade;
      at += p.length;
    }
  }
  return { audio, offsets };
}

/** Admits groups of windows while at most `limit` windows are in, in the order they ask. */
class WindowGate {
  private inside = 0;
  private readonly queue: { n: number; go: () => void }[] = [];
  constructor(private readonly limit: number) {}
  enter(n: number): Promise<void> {
    if (this.queue.length === 0 && this.inside + n <= this.limit) {
      this.inside += n;
      return Promise.resolve();
    }
    return new Promise((go) => this.queue.push({ n, go }));
  }
  leave(n: number): void {
    this.inside -= n;
    while (this.queue.length > 0 && this.inside + this.queue[0]!.n <= this.limit) {
      const next = this.queue.shift()!;
      this.inside += next.n;
      next.go();
    }
  }
}

/** Samples of fade on each side of a seam (5 ms). */
const SEAM_FADE = 80;

function finish(segments: Segment[], language: string, durationS: number): Transcript {
  const text = segments.map((s) => s.text).join('').trim();
  return { text, segments, language, duration: round3(durationS) };
}

async function resolveLanguage(m: ModelAccess, samples: Float32Array, opts: PipelineOptions, firstOffset: number): Promise<string> {
  const engine = m.engine;
  if (!engine.tokenizer.multilingual) {
    if (opts.task === 'translate') throw new WxError('pipeline.english_only', `model ${engine.name} is English-only: it cannot translate`);
    if (opts.language && !['en', 'english'].includes(opts.language.toLowerCase())) {
      throw new WxError('pipeline.english_only', `model ${engine.name} is English-only; --language ${opts.language} is not available`);
    }
    return 'en';
  }
  if (opts.language) return engine.tokenizer.languageCode(opts.language);
  const len = Math.min(engine.windowSamples, samples.length - firstOffset);
  const enc = await m.encode(samples, [firstOffset], [Math.max(0, len)]);
  return (await engine.detectLanguage(enc, 0)).language;
}

function promptTokens(engine: WhisperEngine, text: string | undefined): number[] {
  return text ? engine.tokenizer.encode(' ' + text.trim()) : [];
}

export async function transcribeSamples(m: ModelAccess, vad: SileroVad | undefined, samples: Float32Array, opts: PipelineOptions = {}, hooks: PipelineHooks = {}): Promise<Transcript> {
  const strategy = opts.strategy ?? 'vad';
  if (strategy === 'vad') {
    if (!vad) throw new WxError('pipeline.no_vad', 'the vad strategy needs the Silero VAD model');
    return transcribeWithVad(m, vad, samples, opts, hooks);
  }
  return transcribeSequential(m, samples, opts, hooks);
}

/** Silence (s) before and after the speech of a short recording up to which it is decoded whole. */
const WHOLE_FILE_MAX_GAP_S = 2;
/** Longest speech of a whole-decoded recording given as one segment (longer keeps timestamps,
 *  so subtitles get cues of a readable length). */
const ONE_SEGMENT_MAX_S = 10;
/** Silence kept between two stretches of speech in a window (the rest is cut out). Measured on
 *  dev clips joined with pauses of 1.5, 4 and 8 s and on dev-long.wav: 1.5 s was as accurate as
 *  keeping every pause where pauses are short and far better where they are long; 0.6 s saved a
 *  window on dev-long.wav but cost 1–3 WER points on pauses of 1–4 s. */
const MAX_SILENCE_S = 1.5;

/** The spans of the recording (samples) a chunk's window is made of, from `offset` to `end`:
 *  every silence between its regions longer than maxSilenceS keeps only its first and last
 *  halves of maxSilenceS. */
function chunkPieces(c: SpeechChunk, offset: number, end: number, maxSilenceS: number): AudioPiece[] {
  const pieces: AudioPiece[] = [];
  let from = offset;
  const keep = Math.round((maxSilenceS * SAMPLE_RATE) / 2);
  for (let i = 1; i < c.regions.length; i++) {
    const gapStart = Math.round(c.regions[i - 1]!.end * SAMPLE_RATE);
    const gapEnd = Math.round(c.regions[i]!.start * SAMPLE_RATE);
    if (gapEnd - gapStart <= 2 * keep) continue;
    pieces.push({ from, length: gapStart + keep - from });
    from = gapEnd - keep;
  }
  pieces.push({ from, length: end - from });
  return pieces;
}

async function transcribeWithVad(m: ModelAccess, vad: SileroVad, samples: Float32Array, opts: PipelineOptions, hooks: PipelineHooks): Promise<Transcript> {
  const engine = m.engine;
  const durationS = samples.length / SAMPLE_RATE;
  const progress = (s: number) => hooks.onProgress?.({ processedS: Math.min(s, durationS), durationS });
  checkAbort(hooks.signal);
  const maxChunkS = Math.min(opts.vad?.maxChunkS ?? Infinity, engine.windowSamples / SAMPLE_RATE);
  // A region longer than a window is cut at its least speech-like frame. Silences between the
  // regions of a chunk are kept up to MAX_SILENCE_S: sparse speech fills fewer windows.
  const maxSilenceS = opts.maxSilenceS ?? MAX_SILENCE_S;
  const { chunks } = await planSpeechChunks(vad, samples, { ...opts.vad, maxChunkS, maxSilenceS });
  if (chunks.length === 0) {
    progress(durationS);
    const language = engine.tokenizer.multilingual ? (opts.language ?? 'en') : 'en';
    return finish([], language, durationS);
  }
  // Widen each chunk into the silence around it (up to 0.5 s before and 0.2 s after, at most
  // half of each gap), so no onset or tail is clipped and the model sees the short lead-in of
  // silence it was trained with (measured on the dev clips: 0.2 s before gave +0.2 WER points).
  // A recording that fits in one window with its speech in one chunk and little silence around
  // it is decoded whole, from its start, as Whisper decodes a short file and as plain greedy
  // does (on the dev clips 86 of 100 then give plain greedy's exact text). Longer silences stay
  // cut off: there a model with nothing to hear tends to invent text.
  const whole = chunks.length === 1 && samples.length <= engine.windowSamples && chunks[0]!.start <= WHOLE_FILE_MAX_GAP_S && durationS - chunks[0]!.end <= WHOLE_FILE_MAX_GAP_S;
  const windows: WindowSpec[] = chunks.map((c, i) => {
    // A window is decoded text-only, as one segment over its speech, when the VAD found one
    // stretch of speech in it, or when it is a short recording decoded whole: with timestamps
    // on, the model's text differs from plain greedy's on short clips with pauses (dev clips:
    // pipeline WER 34.55% with timestamps there vs 33.82% text-only; plain greedy 33.94%).
    const textOnly = c.regions.length === 1 || (whole && c.end - c.start - c.cutS <= ONE_SEGMENT_MAX_S);
    const region = textOnly ? { region: { start: c.start, end: c.end } } : {};
    if (whole) return { offset: 0, length: samples.length, clipStart: 0, clipEnd: durationS, ...region };
    const prevEnd = i > 0 ? chunks[i - 1]!.end : 0;
    const nextStart = i < chunks.length - 1 ? chunks[i + 1]!.start : durationS;
    const room = maxChunkS - (c.end - c.start - c.cutS);
    const before = Math.max(0, Math.min(0.5, (c.start - prevEnd) / 2, room / 2));
    const after = Math.max(0, Math.min(0.2, (nextStart - c.end) / 2, room - before));
    const offset = Math.max(0, Math.floor((c.start - before) * SAMPLE_RATE));
    const end = Math.min(samples.length, Math.ceil((c.end + after) * SAMPLE_RATE));
    const pieces = c.cutS > 0 ? chunkPieces(c, offset, end, maxSilenceS) : undefined;
    const audioLength = pieces ? pieces.reduce((n, p) => n + p.length, 0) : end - offset;
    const length = Math.min(engine.windowSamples, audioLength);
    if (pieces) pieces[pieces.length - 1]!.length -= audioLength - length;
    const last = pieces ? pieces[pieces.length - 1]! : { from: offset, length };
    return { offset, length, clipStart: offset / SAMPLE_RATE, clipEnd: (last.from + last.length) / SAMPLE_RATE, ...region, ...(pieces ? { pieces } : {}) };
  });
  const language = await resolveLanguage(m, samples, opts, windows[0]!.offset);
  const prompt = promptTokens(engine, opts.initialPrompt);
  const limits = batchLimits(engine.model.dims, engine.model.crossFormat);
  const encBatch = Math.max(1, opts.encoderBatch ?? limits.maxEncoderBatch);
  const inFlight = new WindowGate(Math.max(encBatch, opts.windowsInFlight ?? limits.windowsInFlight));
  const segments: Segment[] = [];
  const th = { ...DEFAULT_THRESHOLDS, ...opts.thresholds };
  const speechSamples = windows.reduce((s, w) => s + w.length, 0);
  // Groups are submitted as the gate lets them in: with the scheduler, encoding of later groups
  // interleaves with decoding of earlier ones and their rows share the decoder batch, while the
  // windows held encoded stay bounded (every window's keys/values wait until its group is done:
  // a fallback decodes them again).
  const groups: WindowSpec[][] = [];
  for (let g = 0; g < windows.length; g += encBatch) groups.push(windows.slice(g, g + encBatch));
  let done = 0;
  const perGroup = await Promise.all(
    groups.map(async (group) => {
      await inFlight.enter(group.length);
      try {
        return await runGroup(group);
      } finally {
        inFlight.leave(group.length);
      }
    }),
  );
  async function runGroup(group: WindowSpec[]): Promise<WindowOutcome[]> {
    checkAbort(hooks.signal);
    const joined = group.some((w) => w.pieces) ? joinPieces(samples, group) : undefined;
    const enc = joined ? await m.encode(joined.audio, joined.offsets, group.map((w) => w.length)) : await m.encode(samples, group.map((w) => w.offset), group.map((w) => w.length));
    checkAbort(hooks.signal);
    const outcomes = await decodeWithFallback(
      m,
      enc,
      group.map((_, i) => i),
      (i) => ({ timestamps: !group[i]!.region, language, task: opts.task, maxInitialTimestamp: opts.maxInitialTimestamp ?? DEFAULT_MAX_INITIAL_TIMESTAMP, ...(prompt.length ? { previousTokens: prompt } : {}) }),
      opts,
    );
    done += group.reduce((s, w) => s + w.length, 0);
    progress((done / Math.max(1, speechSamples)) * durationS);
    return outcomes;
  }
  perGroup.forEach((outcomes, gi) => {
    outcomes.forEach((o, i) => {
      const q = { avgLogprob: o.result.avgLogprob, noSpeechProb: o.result.noSpeechProb, compressionRatio: o.compression };
      if (isNoSpeech(q, th)) return;
      const w = groups[gi]![i]!;
      segments.push(...toSegments(engine, o, w, Math.round(w.offset / 160), segments.length));
    });
  });
  progress(durationS);
  return finish(segments, language, durationS);
}

async function transcribeSequential(m: ModelAccess, samples: Float32Array, opts: PipelineOptions, hooks: PipelineHooks): Promise<Transcript> {
  const engine = m.engine;
  const durationS = samples.length / SAMPLE_RATE;
  const win = engine.windowSamples;
  const hop = 160;
  const language = await resolveLanguage(m, samples, opts, 0);
  const th = { ...DEFAULT_THRESHOLDS, ...opts.thresholds };
  const condition = opts.conditionOnPreviousText ?? false;
  const allTokens: number[] = promptTokens(engine, opts.initialPrompt);
  let promptResetSince = 0;
  const segments: Segment[] = [];
  let seek = 0; // in samples, always a multiple of the hop
  const tsBegin = engine.tokenizer.timestampBegin;
  while (seek < samples.length) {
    checkAbort(hooks.signal);
    const length = Math.min(win, samples.length - seek);
    if (length < hop) break;
    const enc = await m.encode(samples, [seek], [length]);
    const maxPrev = opts.maxPreviousTokens ?? Math.floor(engine.model.dims.nTextCtx / 2) - 1;
    const previous = allTokens.slice(promptResetSince).slice(-maxPrev);
    const decodeWindow = (prev: number[]) => decodeWithFallback(m, enc, [0], () => ({ timestamps: true, language, task: opts.task, maxInitialTimestamp: opts.maxInitialTimestamp ?? DEFAULT_MAX_INITIAL_TIMESTAMP, ...(prev.length ? { previousTokens: prev } : {}) }), opts);
    let [outcome] = await decodeWindow(previous);
    // A prompt that derails the model shows as a window without any text that is not silence:
    // decode it again without the prompt.
    if (previous.length > 0 && !outcome!.result.tokens.some((tk) => tk < engine.tokenizer.eot) && !isNoSpeech({ avgLogprob: outcome!.result.avgLogprob, noSpeechProb: outcome!.result.noSpeechProb, compressionRatio: outcome!.compression }, th)) {
      [outcome] = await decodeWindow([]);
    }
    const r = outcome!.result;
    const q = { avgLogprob: r.avgLogprob, noSpeechProb: r.noSpeechProb, compressionRatio: outcome!.compression };
    const spec: WindowSpec = { offset: seek, length, clipStart: seek / SAMPLE_RATE, clipEnd: (seek + length) / SAMPLE_RATE };
    if (isNoSpeech(q, th)) {
      seek += length;
      hooks.onProgress?.({ processedS: Math.min(seek / SAMPLE_RATE, durationS), durationS });
      continue;
    }
    const split = splitByTimestamps(r.tokens, engine.tokenizer, length / SAMPLE_RATE);
    const segs = toSegments(engine, outcome!, spec, Math.round(seek / hop), segments.length);
    segments.push(...segs);
    for (const s of split.segments) allTokens.push(...s.textTokens);
    if (split.segments.length === 0) allTokens.push(...r.tokens.filter((t) => t < tsBegin && t < engine.tokenizer.eot));
    // Seek to the last complete timestamp when the window ended mid-sentence; else past it.
    const advance = split.lastCompleteS !== undefined && split.lastCompleteS > 0 ? Math.round((split.lastCompleteS * SAMPLE_RATE) / hop) * hop : length;
    seek += Math.min(advance, length);
    if (!condition || r.temperature > 0.5) promptResetSince = allTokens.length;
    hooks.onProgress?.({ processedS: Math.min(seek / SAMPLE_RATE, durationS), durationS });
  }
  return finish(segments, language, durationS);
}
