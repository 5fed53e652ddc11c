// The pipeline's public surface: a Transcriber owns a warm engine (and the VAD) and turns files
// into transcripts. The daemon keeps one; `wx transcribe --no-daemon` makes its own.
import v8 from 'node:v8';
import vm from 'node:vm';
import { loadAudio } from '../audio/index.js';
import { SileroVad } from '../audio/vad.js';
import { WhisperEngine, type Precision } from '../engine/index.js';
import { resolveModel } from '../models/registry.js';
import { WxError } from '../errors.js';
import { scheduledAccess, transcribeSamples, type PipelineOptions, type Strategy } from './transcribe.js';
import { EngineScheduler, type Priority, type SchedulerOptions } from '../engine/scheduler.js';
import type { Transcript } from './types.js';
import { native } from '../native.js';

// A full collection on demand (V8 exposes it under a flag, which can be set at run time): the
// caches just dropped are typed arrays whose memory goes back only when collected.
let gc: (() => void) | undefined;
function collectGarbage(): void {
  if (!gc) {
    v8.setFlagsFromString('--expose-gc');
    gc = vm.runInNewContext('gc') as () => void;
  }
  gc();
}

export type { Transcript, Segment, OutputFormat } from './types.js';
export type { Strategy, PipelineOptions } from './transcribe.js';

export interface TranscribeOptions {
  language?: string;
  task?: 'transcribe' | 'translate';
  strategy?: Strategy;
  initialPrompt?: string;
  /** Scheduler priority of this transcription's model work (default interactive). */
  priority?: Priority;
}

export interface TranscribeProgress {
  file: string;
  processedS: number;
  durationS: number;
}

export interface TranscriberOptions {
  /** Installed name, alias, installed directory or Hugging Face model directory. */
  model: string;
  precision: Precision;
  home: string;
  threads?: number;
  scheduler?: SchedulerOptions;
  onImportProgress?: (p: { step: string; fraction: number }) => void;
}

export class Transcriber {
  private vad: SileroVad | undefined;
  /** Every model call of every transcription (and dictation) goes through this one scheduler. */
  readonly scheduler: EngineScheduler;
  private constructor(readonly engine: WhisperEngine, schedulerOptions: SchedulerOptions = {}) {
    this.scheduler = new EngineScheduler(engine, schedulerOptions);
  }

  static async open(opts: TranscriberOptions): Promise<Transcriber> {
    const installed = await resolveModel(opts.model, { home: opts.home, precision: opts.precision, ...(opts.onImportProgress ? { onProgress: opts.onImportProgress } : {}) });
    const engine = await WhisperEngine.open(installed.dir, { precision: opts.precision, threads: opts.threads ?? 0 });
    return new Transcriber(engine, opts.scheduler);
  }

  get modelName(): string {
    return this.engine.name;
  }

  get precision(): Precision {
    return this.engine.precision;
  }

  private async vadModel(): Promise<SileroVad> {
    // One thread: the VAD graph is small and a second thread never paid (bench/vad.ts).
    this.vad ??= await SileroVad.load({ threads: 1 });
    return this.vad;
  }

  async transcribeSamples(samples: Float32Array, opts: TranscribeOptions & PipelineOptions = {}, hooks: { onProgress?: (p: { processedS: number; durationS: number }) => void; signal?: AbortSignal } = {}): Promise<Transcript> {
    const strategy = opts.strategy ?? 'vad';
    const vad = strategy === 'vad' ? await this.vadModel() : undefined;
    return transcribeSamples(scheduledAccess(this.scheduler, opts.priority ?? 'interactive'), vad, samples, opts, hooks);
  }

  async transcribeFile(file: string, opts: TranscribeOptions & PipelineOptions = {}, hooks: { onProgress?: (p: TranscribeProgress) => void; signal?: AbortSignal } = {}): Promise<Transcript> {
    const samples = await loadAudio(file, hooks.signal ? { signal: hooks.signal } : {});
    try {
      return await this.transcribeSamples(samples, opts, {
        ...(hooks.signal ? { signal: hooks.signal } : {}),
        onProgress: (p) => hooks.onProgress?.({ file, ...p }),
      });
    } catch (err) {
      if (err instanceof WxError) {
        throw new WxError(err.code, `${file}: ${err.message}`, { ...err.context, file }, { cause: err });
      }
      throw new WxError('pipeline.failed', `${file}: transcription failed: ${(err as Error).message}`, { file }, { cause: err });
    }
  }

  /**
   * Gives memory back while idle: the engine's caches and scratch (made again on the next
   * request), then garbage collection of what they held and the C allocator's free pages. For a
   * daemon that stays up all day after a long transcription. Returns false, and does nothing,
   * while work is queued or running.
   */
  releaseMemory(): boolean {
    if (!this.scheduler.releaseMemory()) return false;
    collectGarbage();
    native().trimMemory();
    return true;
  }

  async close(): Promise<void> {
    await this.scheduler.close();
    await this.engine.close();
    await this.vad?.close();
  }
}
