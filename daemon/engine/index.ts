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

  /** Encoder positions (audio context) that hold `samples` of audio plus a second of lead-out,
   *  in whole 5-s steps, at least 10 s: what a short dictation utterance is encoded with. The
   *  encoder's cost falls with it (linear layers proportionally, attention quadratically). */
  fitPositions(samples: number): number {
    const full = this.model.dims.nAudioCtx;
    const perSecond = full / (this.windowSamples / 16000);
    const seconds = Math.max(10, Math.ceil((samples / 16000 + 1) / 5) * 5);
    return Math.min(full, Math.round(seconds * perSecond));
  }

  /** Encodes windows of 16 kHz audio: `offsets[i]` (samples) with `lengths[i]` samples each
   *  (zero-padded to 30 s), or to `positions` encoder positions (2 mel frames each) when given. */
  async encodeAudio(samples: Float32Array, offsets: readonly number[], lengths?: readonly number[], opts: { positions?: number } = {}): Promise<EncodedWindows> {
    const mel = this.cropMel(await this.mel.windowsAsync(samples, offsets, lengths), offsets.length, opts.positions);
    return this.model.encode(mel, offsets.length, opts);
  }

  /** The first 2·positions frames of each [n_mels, 3000] window. Whisper's log-mel is
   *  normalised by the window's maximum, which lies in the audio, so this equals the features of
   *  the shorter window exactly. */
  private cropMel(mel: Float32Array, windows: number, positions?: number): Float32Array {
    const d = this.model.dims;
    if (positions === undefined || positions === d.nAudioCtx) return mel;
    const full = 2 * d.nAudioCtx;
    const frames = 2 * positions;
    const out = new Float32Array(windows * d.nMels * frames);
    for (let r = 0; r < windows * d.nMels; r++) out.set(mel.subarray(r * full, r * full + frames), r * frames);
    return out;
  }

  /** Encodes windows of several recordings in one run (all with the same audio context). */
  async encodeAudioParts(parts: readonly { samples: Float32Array; offsets: readonly number[]; lengths: readonly number[] }[], opts: { positions?: number } = {}): Promise<EncodedWindows> {
    const mels = await Promise.all(parts.map(async (p) => this.cropMel(await this.mel.windowsAsync(p.samples, p.offsets, p.lengths), p.offsets.length, opts.positions)));
    const total = mels.reduce((s, m) => s + m.length, 0);
    const all = new Float32Array(total);
    let at = 0;
    for (const m of mels) {
      all.set(m, at);
      at += m.length;
    }
    return this.model.encode(all, parts.reduce((s, p) => s + p.offsets.length, 0), opts);
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
