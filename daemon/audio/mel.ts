// Whisper's log-mel features, computed by the native addon exactly like Hugging Face's
// WhisperFeatureExtractor (parity ≤ 5e-4 with its outputs, see test/audio.test.ts).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WxError } from '../errors.js';
import { native } from '../native.js';

export interface MelOptions {
  nMels: number;
  nFft?: number;
  hop?: number;
  sampleRate?: number;
  /** Length of one model window in seconds (30 for Whisper). */
  chunkSeconds?: number;
  /** Worker threads for the heavy calls (default: available cores, at most 4). */
  threads?: number;
}

interface NativeMelPlan {
  compute(samples: Float32Array, starts: Float64Array, reals: Float64Array, padded: number, out: Float32Array, threads: number): void;
  computeAsync(samples: Float32Array, starts: Float64Array, reals: Float64Array, padded: number, out: Float32Array, threads: number): Promise<void>;
  filters(): Float32Array;
}

function configError(file: string, reason: string): WxError {
  return new WxError('model.bad_preprocessor_config', `${file}: ${reason}`, { file, step: 'mel' });
}

export class MelExtractor {
  readonly nMels: number;
  readonly nFft: number;
  readonly hop: number;
  readonly sampleRate: number;
  /** Samples in one model window (480 000 for Whisper) and its frame count (3000). */
  readonly windowSamples: number;
  readonly windowFrames: number;
  readonly threads: number;
  private readonly plan: NativeMelPlan;

  /** Settings from a model's `preprocessor_config.json` (the file, or the model directory holding it). */
  static fromPreprocessorConfig(fileOrModelDir: string, threads?: number): MelExtractor {
    let file = fileOrModelDir;
    if (fs.existsSync(file) && fs.statSync(file).isDirectory()) file = path.join(file, 'preprocessor_config.json');
    let cfg: Record<string, unknown>;
    try {
      cfg = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw configError(file, code === 'ENOENT' ? 'no preprocessor_config.json here' : `unreadable preprocessor config: ${(err as Error).message}`);
    }
    const int = (key: string, fallback?: number): number => {
      const v = cfg[key] ?? fallback;
      if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw configError(file, `${key} must be a positive integer (got ${JSON.stringify(cfg[key])})`);
      return v;
    };
    const sampleRate = int('sampling_rate', 16000);
    const hop = int('hop_length', 160);
    const nSamples = typeof cfg.n_samples === 'number' ? int('n_samples') : int('chunk_length', 30) * sampleRate;
    const opts: MelOptions = { nMels: int('feature_size'), nFft: int('n_fft', 400), hop, sampleRate, chunkSeconds: nSamples / sampleRate };
    if (threads !== undefined) opts.threads = threads;
    return new MelExtractor(opts);
  }

  constructor(opts: MelOptions) {
    this.nMels = opts.nMels;
    this.nFft = opts.nFft ?? 400;
    this.hop = opts.hop ?? 160;
    this.sampleRate = opts.sampleRate ?? 16000;
    this.windowSamples = Math.round((opts.chunkSeconds ?? 30) * this.sampleRate);
    this.windowFrames = Math.floor(this.windowSamples / this.hop);
    this.threads = Math.max(1, Math.floor(opts.threads ?? Math.min(4, os.availableParallelism())));
    // Hugging Face builds Whisper's filters up to 8 kHz whatever the rate (= Nyquist at 16 kHz).
    const fMax = Math.min(8000, this.sampleRate / 2);
    try {
      const Plan = native().MelPlan as new (nMels: number, nFft: number, hop: number, sampleRate: number, fMax: number) => NativeMelPlan;
      this.plan = new Plan(this.nMels, this.nFft, this.hop, this.sampleRate, fMax);
    } catch (err) {
      throw new WxError('audio.unsupported', `mel settings not supported: ${(err as Error).message}`, { step: 'mel' }, { cause: err });
    }
  }

  /** The Slaney mel filters, dense [nMels, nFft/2 + 1] row-major. */
  filters(): Float32Array {
    return this.plan.filters();
  }

  private jobs(samples: Float32Array, offsets: readonly number[], lengths?: readonly number[]): { starts: Float64Array; reals: Float64Array } {
    if (lengths && lengths.length !== offsets.length) {
      throw new WxError('audio.bad_window', `mel: ${offsets.length} offsets but ${lengths.length} lengths`, { step: 'mel' });
    }
    const starts = new Float64Array(offsets.length);
    const reals = new Float64Array(offsets.length);
    offsets.forEach((off, i) => {
      if (!Number.isFinite(off) || off < 0) throw new WxError('audio.bad_window', `mel: window offset ${off} is not a sample index`, { step: 'mel' });
      const start = Math.min(Math.floor(off), samples.length);
      const wanted = lengths?.[i] ?? Infinity;
      if (!(wanted >= 0)) throw new WxError('audio.bad_window', `mel: window length ${wanted} is negative`, { step: 'mel' });
      starts[i] = start;
      reals[i] = Math.min(Math.floor(Math.min(wanted, this.windowSamples)), samples.length - start);
    });
    return { starts, reals };
  }

  /** One 30-s window starting at sample `offset` (zero-padded to 30 s first, exactly like WhisperFeatureExtractor) → [nMels, 3000] row-major. */
  window(samples: Float32Array, offset = 0, out?: Float32Array): Float32Array {
    const size = this.nMels * this.windowFrames;
    const dst = out ?? new Float32Array(size);
    if (dst.length < size) throw new WxError('audio.bad_window', `mel: output buffer holds ${dst.length} floats, needs ${size}`, { step: 'mel' });
    const { starts, reals } = this.jobs(samples, [offset]);
    this.plan.compute(samples, starts, reals, this.windowSamples, dst, this.threads);
    return dst;
  }

  /**
   * Several windows written into one [B, nMels, 3000] buffer (for batched encoder runs). A window
   * with a `length` shorter than 30 s (a VAD chunk) sees zeros beyond it.
   */
  windows(samples: Float32Array, offsets: readonly number[], lengths?: readonly number[]): Float32Array {
    const { starts, reals } = this.jobs(samples, offsets, lengths);
    const out = new Float32Array(offsets.length * this.nMels * this.windowFrames);
    this.plan.compute(samples, starts, reals, this.windowSamples, out, this.threads);
    return out;
  }

  /** `windows` on worker threads, leaving the event loop free. */
  async windowsAsync(samples: Float32Array, offsets: readonly number[], lengths?: readonly number[]): Promise<Float32Array> {
    const { starts, reals } = this.jobs(samples, offsets, lengths);
    const out = new Float32Array(offsets.length * this.nMels * this.windowFrames);
    await this.plan.computeAsync(samples, starts, reals, this.windowSamples, out, this.threads);
    return out;
  }

  /** Arbitrary length (streaming): [nMels, frames], frames = floor(len / hop), after optional zero padding to `padToSamples`. */
  logMel(samples: Float32Array, opts: { padToSamples?: number } = {}): { data: Float32Array; frames: number } {
    const padded = Math.max(samples.length, Math.floor(opts.padToSamples ?? 0));
    const frames = Math.floor(padded / this.hop);
    const data = new Float32Array(this.nMels * frames);
    if (frames > 0) this.plan.compute(samples, new Float64Array([0]), new Float64Array([samples.length]), padded, data, this.threads);
    return { data, frames };
  }
}
