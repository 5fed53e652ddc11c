// One dictation decode: the audio of the current utterance (≤ one 30-s window) → text. Runs
// where the model is (the transcriber worker thread), against the smallest model surface:
// encode + decode, which both the engine and the engine scheduler offer; dictation asks for the
// highest priority where a scheduler honours one.
import type { DecodeResult, EncodedWindows, WhisperEngine, WindowJob } from '../engine/index.js';

export type ModelPriority = 'dictation' | 'interactive' | 'backlog';

export interface WindowModel {
  encode(samples: Float32Array, offsets: readonly number[], lengths: readonly number[], opts?: { priority?: ModelPriority; positions?: number }): Promise<EncodedWindows>;
  decode(jobs: readonly WindowJob[], opts?: { priority?: ModelPriority }): Promise<DecodeResult[]>;
}

/** The engine itself as a WindowModel (no scheduler: calls run as they come). */
export function engineWindowModel(engine: WhisperEngine): WindowModel {
  return {
    encode: (samples, offsets, lengths, opts) => engine.encodeAudio(samples, offsets, lengths, opts),
    decode: (jobs) => engine.decode(jobs),
  };
}

export interface UtteranceRequest {
  /** 16 kHz mono samples of the utterance so far. */
  samples: Float32Array;
  /** Text said before this utterance, given to the model as context. */
  prompt?: string;
  language?: string;
  /** Audio context of the encode: `fit` (default) encodes only as many positions as the
   *  utterance needs (≥ 10 s, WhisperEngine.fitPositions) — ~3× cheaper for a few seconds of
   *  speech, and on the 100 dev clips also more accurate than `full`, which pads to the whole
   *  30-s window (greedy WER 31.0% vs 37.7%; bench/RESULTS.md). */
  context?: 'fit' | 'full';
  /** Words of this utterance already committed: the decode continues them (a forced prefix,
   *  text-only) instead of guessing them again, so the hypothesis always starts with them. */
  prefix?: string;
}

export interface UtteranceHypothesis {
  text: string;
  tokens: number[];
  avgLogprob: number;
  noSpeechProb: number;
  /** Wall time of encode + decode in the model's thread. */
  decodeMs: number;
}

/** Most prompt tokens: a short context helps, a long one costs decoder time on every step. */
const MAX_PROMPT_TOKENS = 64;

/** What a dictation decode needs to know of the engine. */
export type UtteranceEngine = Pick<WhisperEngine, 'tokenizer' | 'windowSamples' | 'fitPositions'>;

export async function decodeUtterance(model: WindowModel, engine: UtteranceEngine, req: UtteranceRequest): Promise<UtteranceHypothesis> {
  const t0 = performance.now();
  const tokenizer = engine.tokenizer;
  const length = Math.min(req.samples.length, engine.windowSamples);
  const enc = await model.encode(req.samples, [0], [length], { priority: 'dictation', ...((req.context ?? 'fit') === 'fit' ? { positions: engine.fitPositions(length) } : {}) });
  const prompt = req.prompt?.trim() ? tokenizer.encode(' ' + req.prompt.trim()).slice(-MAX_PROMPT_TOKENS) : [];
  const prefixText = req.prefix?.trim() ?? '';
  const prefix = prefixText ? tokenizer.encode(' ' + prefixText) : [];
  // Timestamps on, as the offline pipeline decodes: the model was trained that way and its text
  // is the same shape the final transcript of a file would have. A forced prefix is text-only.
  const [r] = await model.decode(
    [
      {
        enc,
        index: 0,
        options: {
          temperature: 0,
          ...(prefix.length ? { timestamps: false, prefix } : { timestamps: true, maxInitialTimestamp: 2.0 }),
          ...(req.language ? { language: req.language } : {}),
          ...(prompt.length ? { previousTokens: prompt } : {}),
        },
      },
    ],
    { priority: 'dictation' },
  );
  return {
    text: (prefixText + r!.text).trim(),
    tokens: [...prefix, ...r!.tokens.filter((t) => t < tokenizer.eot)],
    avgLogprob: r!.avgLogprob,
    noSpeechProb: r!.noSpeechProb,
    decodeMs: performance.now() - t0,
  };
}
