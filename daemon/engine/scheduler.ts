// One scheduler drives the model. Every encoder run and decoder step of the daemon goes through
// here, from any number of recordings and dictation sessions at once:
// - encoder requests are merged into batches of windows (several recordings per run), best
//   priority first;
// - decoder rows from all requests share one running batch and join or leave at every step
//   (iteration-level scheduling): a finished row is replaced by the next waiting window before
//   the next step;
// - priorities: dictation > interactive > backlog. Backlog rows never take the last slots of the
//   batch, so a higher-priority window always joins at the next step instead of waiting for a
//   backlog row to finish.
// Results are the same as unbatched decoding: INT8 graphs quantise activations per row, and a
// row only ever attends to its own cache.
import { WxError } from '../errors.js';
import type { WhisperEngine } from './index.js';
import { EncodedWindows } from './model.js';
import { batchLimits } from './limits.js';
import { BatchRunner, type DecodeResult, type WindowJob } from './decoding/task.js';

export type Priority = 'dictation' | 'interactive' | 'backlog';
const RANK: Record<Priority, number> = { dictation: 0, interactive: 1, backlog: 2 };

export interface SchedulerOptions {
  /** Decoder rows in flight for greedy (or sampled) windows (tiny: 8; see limits.ts). */
  maxRows?: number;
  /** Decoder rows in flight in all, beam searches included (twice maxRows): a beam window takes a row per
   *  hypothesis, and several beam windows in one call share its fixed cost (dev-long.wav at
   *  beam 5: 10.6 s with 8 rows, 8.5 s with 16). */
  beamRows?: number;
  /** Windows per encoder run (tiny: 4). */
  maxEncoderBatch?: number;
  /** Rows kept free of backlog work for higher priorities. */
  reservedRows?: number;
}

interface EncodeRequest {
  rank: number;
  seq: number;
  samples: Float32Array;
  offsets: readonly number[];
  lengths: readonly number[];
  /** Encoder positions per window (the model's full context unless shorter). Only requests with
   *  the same context share an encoder run. */
  positions: number;
  /** Windows encoded so far (a large request runs in slices). */
  next: number;
  pieces: EncodedWindows[];
  resolve: (e: EncodedWindows) => void;
  reject: (err: unknown) => void;
}

interface RowRequest {
  rank: number;
  seq: number;
  job: WindowJob;
  resolve: (r: DecodeResult) => void;
  reject: (err: unknown) => void;
}

export interface SchedulerStats {
  encoderRuns: number;
  windowsEncoded: number;
  decoderSteps: number;
  rowSteps: number;
  /** Wall time spent in encoder runs, and in decoder steps (with admitting rows to the batch). */
  encoderMs: number;
  decoderMs: number;
  waitingRows: number;
  activeRows: number;
  /** Backlog work is waiting because dictation is active. */
  backlogHeld: boolean;
}

const DICTATION_GRACE_MS = 2000;

const byPriority = (a: { rank: number; seq: number }, b: { rank: number; seq: number }) => a.rank - b.rank || a.seq - b.seq;

export class EngineScheduler {
  private readonly encodes: EncodeRequest[] = [];
  private readonly rows: RowRequest[] = [];
  private readonly runner: BatchRunner;
  private readonly maxEncoderBatch: number;
  private readonly reserved: number;
  private readonly maxRows: number;
  private readonly activeRanks = new Map<RowRequest, number>();
  private seq = 0;
  /** When dictation last asked for work: for DICTATION_GRACE_MS after it, backlog encodes and
   *  new backlog rows wait, and a backlog encode already chosen runs one window at a time. */
  private lastDictationAt = -Infinity;
  private running: Promise<void> | undefined;
  private closed = false;
  readonly stats: SchedulerStats = { encoderRuns: 0, windowsEncoded: 0, decoderSteps: 0, rowSteps: 0, encoderMs: 0, decoderMs: 0, waitingRows: 0, activeRows: 0, backlogHeld: false };

  constructor(readonly engine: WhisperEngine, opts: SchedulerOptions = {}) {
    // Defaults scale with the model (limits.ts): tiny gets 8 rows, 16 with beams, 4 windows per run.
    const limits = batchLimits(engine.model.dims, engine.model.crossFormat);
    const maxRows = Math.max(1, opts.maxRows ?? limits.maxRows);
    this.maxRows = maxRows;
    this.runner = new BatchRunner(engine.model, engine.tokenizer, Math.max(maxRows, opts.beamRows ?? limits.beamRows));
    this.maxEncoderBatch = Math.max(1, opts.maxEncoderBatch ?? limits.maxEncoderBatch);
    this.reserved = Math.min(maxRows - 1, Math.max(0, opts.reservedRows ?? 2));
  }

  /** Encodes windows `offsets[i]`..+`lengths[i]` of 16 kHz `samples` (with `positions`
   *  encoder positions each: a shorter audio context, see WhisperEngine.fitPositions). */
  encode(samples: Float32Array, offsets: readonly number[], lengths: readonly number[], opts: { priority?: Priority; positions?: number } = {}): Promise<EncodedWindows> {
    if (this.closed) return Promise.reject(new WxError('engine.closed', 'the engine is shutting down'));
    if (offsets.length !== lengths.length || offsets.length === 0) return Promise.reject(new WxError('engine.bad_input', 'encode needs one length per offset'));
    if (opts.priority === 'dictation') this.lastDictationAt = performance.now();
    return new Promise((resolve, reject) => {
      this.encodes.push({ rank: RANK[opts.priority ?? 'interactive'], seq: this.seq++, samples, offsets, lengths, positions: opts.positions ?? this.engine.model.dims.nAudioCtx, next: 0, pieces: [], resolve, reject });
      this.kick();
    });
  }

  /** Decodes windows; the rows join the shared running batch. */
  decode(jobs: readonly WindowJob[], opts: { priority?: Priority } = {}): Promise<DecodeResult[]> {
    if (this.closed) return Promise.reject(new WxError('engine.closed', 'the engine is shutting down'));
    const rank = RANK[opts.priority ?? 'interactive'];
    if (opts.priority === 'dictation') this.lastDictationAt = performance.now();
    const all = jobs.map(
      (job) =>
        new Promise<DecodeResult>((resolve, reject) => {
          this.rows.push({ rank, seq: this.seq++, job, resolve, reject });
        }),
    );
    this.kick();
    return Promise.all(all);
  }

  /** Stops taking work; waits for what is running. Waiting requests are rejected. */
  async close(): Promise<void> {
    this.closed = true;
    const err = new WxError('engine.closed', 'the engine is shutting down');
    for (const r of this.encodes.splice(0)) r.reject(err);
    for (const r of this.rows.splice(0)) r.reject(err);
    await this.running;
  }

  /** Ends the loop's wait for held backlog work early when new work arrives. */
  private wake: (() => void) | undefined;

  private kick(): void {
    this.wake?.();
    this.running ??= this.loop().finally(() => {
      this.running = undefined;
      if (this.encodes.length || this.rows.length) this.kick();
    });
  }

  /** Gives back what an idle engine holds for work in flight — the decoder batches' caches and
   *  the encoder's scratch — to be made again on the next request. Does nothing (false) while any
   *  work is queued or running. */
  releaseMemory(): boolean {
    if (this.encodes.length > 0 || this.rows.length > 0 || !this.runner.releaseBatches()) return false;
    this.engine.model.releaseScratch();
    return true;
  }

  private bestActiveRank(): number {
    let best = Infinity;
    for (const r of this.activeRanks.values()) best = Math.min(best, r);
    return best;
  }

  private async loop(): Promise<void> {
    let stepsSinceEncode = 0;
    while (this.encodes.length > 0 || this.rows.length > 0 || this.runner.size > 0) {
      // Yield to the event loop between model calls: the daemon's socket stays responsive.
      await new Promise<void>((r) => setImmediate(r));
      this.encodes.sort(byPriority);
      this.rows.sort(byPriority);
      // Encode when nothing decodes, when the waiting encode outranks every row in flight, or
      // every few steps so encoding keeps ahead of the decoder.
      // While dictation is active, backlog work waits: no new backlog encodes or rows (rows
      // already in flight finish), so dictation decodes have the cores to themselves.
      const sinceDictation = performance.now() - this.lastDictationAt;
      const holdBacklog = sinceDictation < DICTATION_GRACE_MS;
      const enc = holdBacklog && this.encodes[0] && this.encodes[0].rank >= RANK.backlog ? undefined : this.encodes[0];
      if (enc && (this.runner.size === 0 || enc.rank < this.bestActiveRank() || stepsSinceEncode >= 16 || (this.rows.length === 0 && this.runner.free > 0 && stepsSinceEncode >= 4))) {
        await this.runEncoder();
        stepsSinceEncode = 0;
        continue;
      }
      while (this.rows.length > 0) {
        const next = this.rows[0]!;
        if (holdBacklog && next.rank >= RANK.backlog) break;
        let width: number;
        try {
          width = this.runner.rowsFor(next.job);
        } catch (err) {
          this.rows.shift();
          next.reject(err);
          continue;
        }
        // Greedy rows count against maxRows, beam searches (their rows taken at once) against all
        // rows; backlog leaves `reserved` of either free for urgent work. An empty batch always
        // takes the next window.
        const keep = next.rank >= RANK.backlog ? this.reserved : 0;
        const fits = width === 1 ? this.runner.greedyRows + 1 <= this.maxRows - keep : this.runner.size + width <= this.runner.maxRows - keep;
        if (this.runner.free < width || (this.runner.size > 0 && !fits)) break;
        this.rows.shift();
        this.activeRanks.set(next, next.rank);
        const admitted = performance.now();
        try {
          await this.runner.admit(next.job, (r) => {
            this.activeRanks.delete(next);
            next.resolve(r);
          });
        } catch (err) {
          this.activeRanks.delete(next);
          next.reject(err);
        }
        this.stats.decoderMs += performance.now() - admitted;
      }
      if (this.runner.size > 0) {
        this.stats.rowSteps += this.runner.size;
        this.stats.decoderSteps++;
        const stepped = performance.now();
        try {
          await this.runner.step();
        } catch (err) {
          // A failed step poisons every row in it; fail them, keep the scheduler alive.
          for (const r of this.activeRanks.keys()) r.reject(err);
          this.activeRanks.clear();
          this.runner.reset();
        }
        this.stats.decoderMs += performance.now() - stepped;
        stepsSinceEncode++;
      } else if (holdBacklog) {
        // Only held backlog work is left: wait for the dictation grace period to end.
        this.stats.backlogHeld = true;
        await new Promise<void>((r) => {
          const timer = setTimeout(r, DICTATION_GRACE_MS - sinceDictation + 1);
          this.wake = () => {
            clearTimeout(timer);
            r();
          };
        });
        this.wake = undefined;
        this.stats.backlogHeld = false;
      }
      this.stats.waitingRows = this.rows.length;
      this.stats.activeRows = this.runner.size;
    }
  }

  private async runEncoder(): Promise<void> {
    const started = performance.now();
    try {
      await this.encodeNext();
    } finally {
      this.stats.encoderMs += performance.now() - started;
    }
  }

  private async encodeNext(): Promise<void> {
    const dictationActive = performance.now() - this.lastDictationAt < DICTATION_GRACE_MS;
    const head = this.encodes[0]!;
    const limit = dictationActive && head.rank >= RANK.backlog ? 1 : this.maxEncoderBatch;
    const finish = (r: EncodeRequest, result: EncodedWindows | undefined, err?: unknown) => {
      this.encodes.splice(this.encodes.indexOf(r), 1);
      if (result) r.resolve(result);
      else r.reject(err);
    };
    // A request with more windows than one run takes is encoded a slice per run, so more urgent
    // work can go between its slices.
    if (head.next > 0 || head.offsets.length - head.next >= limit) {
      const from = head.next;
      const to = Math.min(head.offsets.length, from + limit);
      try {
        head.pieces.push(await this.engine.encodeAudio(head.samples, head.offsets.slice(from, to), head.lengths.slice(from, to), { positions: head.positions }));
        this.stats.encoderRuns++;
        this.stats.windowsEncoded += to - from;
        head.next = to;
        if (to >= head.offsets.length) finish(head, head.pieces.length === 1 ? head.pieces[0]! : EncodedWindows.concat(head.pieces));
      } catch (err) {
        finish(head, undefined, err);
      }
      return;
    }
    // Otherwise whole small requests, best first, share one run.
    const picked: EncodeRequest[] = [];
    let windows = 0;
    for (const r of this.encodes) {
      if (r.next > 0 || r.positions !== head.positions || windows + r.offsets.length > limit) continue;
      picked.push(r);
      windows += r.offsets.length;
      if (windows >= limit) break;
    }
    try {
      const merged = await this.engine.encodeAudioParts(picked.map((r) => ({ samples: r.samples, offsets: r.offsets, lengths: r.lengths })), { positions: head.positions });
      this.stats.encoderRuns++;
      this.stats.windowsEncoded += windows;
      let at = 0;
      for (const r of picked) {
        finish(r, picked.length === 1 ? merged : merged.slice(at, r.offsets.length));
        at += r.offsets.length;
      }
    } catch (err) {
      for (const r of picked) finish(r, undefined, err);
    }
  }

}
