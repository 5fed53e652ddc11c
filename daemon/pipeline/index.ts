// The pipeline's public surface: a Transcriber owns a warm engine (and the VAD) and turns files
// into transcripts. The daemon keeps one; `wx transcribe --no-daemon` makes its own.
import { loadAudio } from '../audio/index.js';
import { SileroVad } from '../audio/vad.js';
import { WhisperEngine, type Precision } from '../engine/index.js';
import { resolveModel } from '../models/registry.js';
import { WxError } from '../errors.js';
import { transcribeSamples, type PipelineOptions, type Strategy } from './transcribe.js';
import type { Transcript } from './types.js';

export type { Transcript, Segment, OutputFormat } from './types.js';
export type { Strategy, PipelineOptions } from './transcribe.js';

export interface TranscribeOptions {
  language?: string;
  task?: 'transcribe' | 'translate';
  strategy?: Strategy;
  initialPrompt?: string;
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
  onImportProgress?: (p: { step: string; fraction: number }) => void;
}

export class Transcriber {
  private vad: SileroVad | undefined;
  private constructor(readonly engine: WhisperEngine, private readonly threads: number) {}

  static async open(opts: TranscriberOptions): Promise<Transcriber> {
    const installed = await resolveModel(opts.model, { home: opts.home, precision: opts.precision, ...(opts.onImportProgress ? { onProgress: opts.onImportProgress } : {}) });
    const engine = await WhisperEngine.open(installed.dir, { precision: opts.precision, threads: opts.threads ?? 0 });
    return new Transcriber(engine, opts.threads ?? 0);
  }

  get modelName(): string {
    return this.engine.name;
  }

  get precision(): Precision {
    return this.engine.precision;
  }

  private async vadModel(): Promise<SileroVad> {
    this.vad ??= await SileroVad.load({ threads: this.threads > 0 ? this.threads : 2 });
    return this.vad;
  }

  async transcribeSamples(samples: Float32Array, opts: TranscribeOptions & PipelineOptions = {}, hooks: { onProgress?: (p: { processedS: number; durationS: number }) => void; signal?: AbortSignal } = {}): Promise<Transcript> {
    const strategy = opts.strategy ?? 'vad';
    const vad = strategy === 'vad' ? await this.vadModel() : undefined;
    return transcribeSamples(this.engine, vad, samples, opts, hooks);
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

  async close(): Promise<void> {
    await this.engine.close();
    await this.vad?.close();
  }
}
