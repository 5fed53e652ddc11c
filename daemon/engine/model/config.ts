// Reads a Hugging Face Whisper model directory's JSON files into the few numbers and lists the
// engine needs. Every dimension and id comes from here (or the tokenizer): nothing is assumed
// from a particular checkpoint.
import fs from 'node:fs';
import path from 'node:path';
import { WxError } from '../../errors.js';
import type { ModelDims } from '../manifest.js';

export interface GenerationConfig {
  suppressTokens: number[];
  beginSuppressTokens: number[];
  maxInitialTimestampIndex: number;
  /** `[layer, head]` pairs for word-level timing (kept for later; optional in checkpoints). */
  alignmentHeads: [number, number][];
  langToId: Record<string, number>;
  taskToId: Record<string, number>;
  noTimestampsTokenId: number | undefined;
  isMultilingual: boolean | undefined;
}

export interface WhisperConfig {
  dims: ModelDims;
  activation: string;
  scaleEmbedding: boolean;
  generation: GenerationConfig;
  /** From preprocessor_config.json. */
  features: { nMels: number; nFft: number; hop: number; sampleRate: number; chunkLength: number };
}

function readJson(file: string, required: boolean): Record<string, unknown> | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (!required && (err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new WxError('model.missing_file', `cannot read ${path.basename(file)} in ${path.dirname(file)}: ${(err as Error).message}`, { file });
  }
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
    return v as Record<string, unknown>;
  } catch (err) {
    throw new WxError('model.corrupt', `${file} is not valid JSON: ${(err as Error).message}`, { file });
  }
}

function int(obj: Record<string, unknown>, key: string, file: string, fallback?: number): number {
  const v = obj[key];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new WxError('model.corrupt', `${file} lacks "${key}"`, { file, key });
  }
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new WxError('model.corrupt', `${file}: "${key}" must be a positive integer, got ${JSON.stringify(v)}`, { file, key });
  return v;
}

const intList = (v: unknown): number[] => (Array.isArray(v) ? v.filter((x): x is number => Number.isInteger(x)) : []);

export function readWhisperConfig(dir: string): WhisperConfig {
  const cfgFile = path.join(dir, 'config.json');
  const cfg = readJson(cfgFile, true)!;
  const modelType = cfg.model_type;
  if (modelType !== 'whisper') {
    throw new WxError('model.unsupported', `${cfgFile}: model_type ${JSON.stringify(modelType)} is not a Whisper model (expected "whisper")`, { file: cfgFile });
  }
  const activation = typeof cfg.activation_function === 'string' ? cfg.activation_function : 'gelu';
  if (activation !== 'gelu') throw new WxError('model.unsupported', `${cfgFile}: activation ${activation} is not supported (only gelu)`, { file: cfgFile });
  const dims: ModelDims = {
    nMels: int(cfg, 'num_mel_bins', cfgFile),
    nAudioCtx: int(cfg, 'max_source_positions', cfgFile),
    dModel: int(cfg, 'd_model', cfgFile),
    encoderLayers: int(cfg, 'encoder_layers', cfgFile),
    encoderHeads: int(cfg, 'encoder_attention_heads', cfgFile),
    decoderLayers: int(cfg, 'decoder_layers', cfgFile),
    decoderHeads: int(cfg, 'decoder_attention_heads', cfgFile),
    nVocab: int(cfg, 'vocab_size', cfgFile),
    nTextCtx: int(cfg, 'max_target_positions', cfgFile),
    encoderFfn: int(cfg, 'encoder_ffn_dim', cfgFile),
    decoderFfn: int(cfg, 'decoder_ffn_dim', cfgFile),
  };
  for (const [heads, what] of [[dims.encoderHeads, 'encoder'], [dims.decoderHeads, 'decoder']] as const) {
    if (dims.dModel % heads !== 0) throw new WxError('model.corrupt', `${cfgFile}: d_model ${dims.dModel} is not divisible by ${what} heads ${heads}`, { file: cfgFile });
  }

  const genFile = path.join(dir, 'generation_config.json');
  const gen = readJson(genFile, false) ?? {};
  const suppress = intList(gen.suppress_tokens ?? cfg.suppress_tokens);
  const beginSuppress = intList(gen.begin_suppress_tokens ?? cfg.begin_suppress_tokens);
  const heads = Array.isArray(gen.alignment_heads) ? (gen.alignment_heads as unknown[]).filter((p): p is [number, number] => Array.isArray(p) && p.length === 2) : [];
  const numMap = (v: unknown): Record<string, number> => {
    const out: Record<string, number> = {};
    if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) if (Number.isInteger(x)) out[k] = x as number;
    return out;
  };
  const generation: GenerationConfig = {
    suppressTokens: suppress,
    beginSuppressTokens: beginSuppress,
    maxInitialTimestampIndex: typeof gen.max_initial_timestamp_index === 'number' ? gen.max_initial_timestamp_index : 50,
    alignmentHeads: heads,
    langToId: numMap(gen.lang_to_id),
    taskToId: numMap(gen.task_to_id),
    noTimestampsTokenId: typeof gen.no_timestamps_token_id === 'number' ? gen.no_timestamps_token_id : undefined,
    isMultilingual: typeof gen.is_multilingual === 'boolean' ? gen.is_multilingual : undefined,
  };

  const preFile = path.join(dir, 'preprocessor_config.json');
  const pre = readJson(preFile, false) ?? {};
  const features = {
    nMels: int(pre, 'feature_size', preFile, dims.nMels),
    nFft: int(pre, 'n_fft', preFile, 400),
    hop: int(pre, 'hop_length', preFile, 160),
    sampleRate: int(pre, 'sampling_rate', preFile, 16000),
    chunkLength: int(pre, 'chunk_length', preFile, 30),
  };
  if (features.nMels !== dims.nMels) {
    throw new WxError('model.corrupt', `${preFile}: feature_size ${features.nMels} disagrees with num_mel_bins ${dims.nMels} in config.json`, { file: preFile });
  }
  return { dims, activation, scaleEmbedding: cfg.scale_embedding === true, generation, features };
}
