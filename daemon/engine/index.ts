// The engine's public surface: a loaded model with its tokenizer and feature extractor, able to
// encode windows of audio and decode them (batched). Everything above (pipeline, daemon, CLI)
// goes through here.
import { MelExtractor } from '../audio/index.js';
import { WhisperModel, type EncodedWindows } from './model.js';
import { WhisperTokenizer } from './tokenizer.js';
import { decodeWindows, detectLanguage, type DecodeOptions, type DecodeResult, type WindowJob } from './decoding/task.js';
import type { Backend } from './backend.js';
import type { Precision } from './manifest.js';

export type { DecodeOptions, DecodeResult, WindowJob } from './decoding/task.js';
export type { EncodedWindows } from './model.js';
export type { Precision, ModelManifest, ModelDims } from './manifest.js';
export { WhisperTokenizer } from './tokenizer.js';

export interface EngineOptions {
  precision: Precision;
  /** Intra-op threads for inference (0 = all cores). */
  threads?: number;
  backend?: Backend;
}

export class WhisperEngine {
  private constructor(
    readonly model: WhisperModel,
    readonly tokenizer: WhisperTokenizer,
    readonly mel: MelExtractor,
  ) {}

  /** Loads an installed model directory (see daemon/models/registry.ts to resolve names). */
  static async open(dir: string, opts: EngineOptions): Promise<WhisperEngine> {
    const model = await WhisperModel.load(dir, opts);
    const tokenizer = WhisperTokenizer.fromModelDir(dir);
    const mel = MelExtractor.fromPreprocessorConfig(dir);
    return new WhisperEngine(model, tokenizer, mel);
  }

  get name(): string {
    return this.model.manifest.name;
  }

  get precision(): Precision {
    return this.model.precision;
  }

  /** Samples per 30-s window. */
  get windowSamples(): number {
    return this.model.dims.nAudioCtx * 2 * 160;
  }

  /** Encodes windows of 16 kHz audio: `offsets[i]` (samples) with `lengths[i]` samples each
   *  (zero-padded to 30 s). */
  async encodeAudio(samples: Float32Array, offsets: readonly number[], lengths?: readonly number[]): Promise<EncodedWindows> {
    const mel = await this.mel.windowsAsync(samples, offsets, lengths);
    return this.model.encode(mel, offsets.length);
  }

  /** Encodes windows of several recordings in one run. */
  async encodeAudioParts(parts: readonly { samples: Float32Array; offsets: readonly number[]; lengths: readonly number[] }[]): Promise<EncodedWindows> {
    const mels = await Promise.all(parts.map((p) => this.mel.windowsAsync(p.samples, p.offsets, p.lengths)));
    const total = mels.reduce((s, m) => s + m.length, 0);
    const all = new Float32Array(total);
    let at = 0;
    for (const m of mels) {
      all.set(m, at);
      at += m.length;
    }
    return this.model.encode(all, parts.reduce((s, p) => s + p.offsets.length, 0));
  }

  decode(jobs: readonly WindowJob[], opts: { maxRows?: number } = {}): Promise<DecodeResult[]> {
    return decodeWindows(this.model, this.tokenizer, jobs, opts);
  }

  async decodeOne(enc: EncodedWindows, index: number, options: DecodeOptions): Promise<DecodeResult> {
    return (await this.decode([{ enc, index, options }]))[0]!;
  }

  detectLanguage(enc: EncodedWindows, index: number): Promise<{ language: string; probs: Record<string, number> }> {
    return detectLanguage(this.model, this.tokenizer, enc, index);
  }

  close(): Promise<void> {
    return this.model.close();
  }
}
