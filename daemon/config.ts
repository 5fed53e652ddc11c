// $WX_HOME/config.json: every key optional, documented here and in the README. Unknown keys
// and wrong types are rejected with the key path and what was expected, so a typo never
// silently falls back to a default.
import fs from 'node:fs';
import os from 'node:os';
import { WxError, describeError } from './errors.js';
import { OUTPUT_FORMATS, type OutputFormat } from './pipeline/types.js';

/** Widest beam search: its hypotheses are rows of the engine scheduler's decoder batch (8). */
export const MAX_BEAM = 8;

/** A beam width wx takes: an integer from 1 (greedy) to MAX_BEAM. */
export function isBeamSize(n: unknown): n is number {
  return Number.isInteger(n) && (n as number) >= 1 && (n as number) <= MAX_BEAM;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface WxConfig {
  /** Default model: an installed name (under $WX_HOME/models) or a model directory. `WX_MODEL` overrides. */
  model: string | null;
  precision: 'int8' | 'fp32';
  /** ONNX Runtime intra-op threads (default: CPU cores, at most 4). */
  threads: number;
  strategy: 'vad' | 'sequential';
  language: string | null;
  /** Beam search width of each window's first decode (1: greedy). */
  beamSize: number;
  /** Formats written next to recordings by watched folders unless a watch says otherwise. */
  formats: OutputFormat[];
  logLevel: LogLevel;
  /** Rotate daemon.log when it passes this size; keep this many old files. */
  log: { maxBytes: number; keep: number };
  /** Speech detection of the `vad` strategy (the pipeline's own defaults): a pause of
   *  minSilenceMs ends a region, regions get speechPadMs on each side, windows hold ≤ maxChunkS
   *  of audio with at most maxSilenceS of each pause between regions. */
  vad: { threshold: number; minSilenceMs: number; speechPadMs: number; maxChunkS: number; maxSilenceS: number };
  /** `concurrency`: jobs run at once (default 4). Their windows share the engine scheduler's
   *  encoder and decoder batches, so several recordings finish sooner than one after another. */
  jobs: { maxAttempts: number; retryBaseMs: number; concurrency: number };
  /** Watched folders: how long a file's size/mtime must stay unchanged before it counts as
   *  complete, and how often a folder's presence (unmounted drive) is checked. */
  watch: { stabilityMs: number; presencePollMs: number };
  dictation: { mode: 'low' | 'balanced' | 'high'; fillers: boolean; trailingSpace: boolean; replacements: Record<string, string>; audioContext: 'fit' | 'full' };
  /** Seconds without transcription or dictation after which a warm model gives back the memory
   *  it holds for work in flight (decoder caches, encoder scratch; made again on the next
   *  request). 0 keeps it. */
  idleReleaseS: number;
}

export function defaultConfig(): WxConfig {
  return {
    model: null,
    precision: 'int8',
    threads: Math.max(1, Math.min(4, os.availableParallelism?.() ?? os.cpus().length)),
    strategy: 'vad',
    language: null,
    beamSize: 1,
    formats: ['txt'],
    logLevel: 'info',
    log: { maxBytes: 5 * 1024 * 1024, keep: 3 },
    vad: { threshold: 0.5, minSilenceMs: 100, speechPadMs: 30, maxChunkS: 30, maxSilenceS: 1.5 },
    jobs: { maxAttempts: 3, retryBaseMs: 2000, concurrency: 4 },
    watch: { stabilityMs: 2000, presencePollMs: 2000 },
    dictation: { mode: 'balanced', fillers: true, trailingSpace: false, replacements: {}, audioContext: 'fit' },
    idleReleaseS: 60,
  };
}

type Check = (value: unknown, key: string) => unknown;

function bad(file: string, key: string, expected: string, value: unknown): WxError {
  return new WxError('config.invalid', `${file}: "${key}" must be ${expected} (got ${JSON.stringify(value)})`, { file, key });
}

function validate(raw: unknown, file: string): Partial<WxConfig> {
  const oneOf =
    (...options: readonly string[]): Check =>
    (v, k) => {
      if (typeof v !== 'string' || !options.includes(v)) throw bad(file, k, `one of ${options.join(', ')}`, v);
      return v;
    };
  const int =
    (min: number, max: number): Check =>
    (v, k) => {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw bad(file, k, `an integer from ${min} to ${max}`, v);
      return v;
    };
  const num =
    (min: number, max: number): Check =>
    (v, k) => {
      if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) throw bad(file, k, `a number from ${min} to ${max}`, v);
      return v;
    };
  const bool: Check = (v, k) => {
    if (typeof v !== 'boolean') throw bad(file, k, 'true or false', v);
    return v;
  };
  const strOrNull: Check = (v, k) => {
    if (v !== null && (typeof v !== 'string' || v === '')) throw bad(file, k, 'a non-empty string or null', v);
    return v;
  };
  const formats: Check = (v, k) => {
    if (!Array.isArray(v) || v.some((f) => !OUTPUT_FORMATS.includes(f as OutputFormat))) throw bad(file, k, `an array of ${OUTPUT_FORMATS.join(', ')}`, v);
    return v;
  };
  const stringMap: Check = (v, k) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v) || Object.values(v).some((x) => typeof x !== 'string')) throw bad(file, k, 'an object of strings', v);
    return v;
  };
  const object =
    (shape: Record<string, Check>): Check =>
    (v, k) => {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) throw bad(file, k, 'an object', v);
      const out: Record<string, unknown> = {};
      for (const [key, value] of Object.entries(v)) {
        const path = k ? `${k}.${key}` : key;
        const check = shape[key];
        if (!check) throw new WxError('config.unknown_key', `${file}: unknown key "${path}" (known: ${Object.keys(shape).join(', ')})`, { file, key: path });
        out[key] = check(value, path);
      }
      return out;
    };
  const schema = object({
    model: strOrNull,
    precision: oneOf('int8', 'fp32'),
    threads: int(1, 256),
    strategy: oneOf('vad', 'sequential'),
    language: strOrNull,
    beamSize: int(1, MAX_BEAM),
    formats,
    logLevel: oneOf('debug', 'info', 'warn', 'error'),
    log: object({ maxBytes: int(4096, 2 ** 40), keep: int(0, 100) }),
    vad: object({ threshold: num(0, 1), minSilenceMs: int(0, 10_000), speechPadMs: int(0, 5000), maxChunkS: num(1, 30), maxSilenceS: num(0, 30) }),
    jobs: object({ maxAttempts: int(1, 100), retryBaseMs: int(0, 3_600_000), concurrency: int(1, 64) }),
    watch: object({ stabilityMs: int(50, 600_000), presencePollMs: int(50, 600_000) }),
    dictation: object({ mode: oneOf('low', 'balanced', 'high'), fillers: bool, trailingSpace: bool, replacements: stringMap, audioContext: oneOf('fit', 'full') }),
    idleReleaseS: num(0, 86_400),
  });
  return schema(raw, '') as Partial<WxConfig>;
}

/** What the config sets for every transcription (a request's own options override it). */
export function pipelineDefaults(c: WxConfig): { strategy: 'vad' | 'sequential'; language?: string; beamSize: number; maxSilenceS: number; vad: { threshold: number; minSilenceMs: number; speechPadMs: number; maxChunkS: number } } {
  const { maxSilenceS, ...vad } = c.vad;
  return { strategy: c.strategy, ...(c.language ? { language: c.language } : {}), beamSize: c.beamSize, maxSilenceS, vad };
}

/** Loads $WX_HOME/config.json over the defaults (a missing file means all defaults); the
 *  environment's WX_MODEL overrides `model`. */
export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): WxConfig {
  const config = defaultConfig();
  let text: string | null = null;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new WxError('config.read', `cannot read ${file}: ${describeError(err)}`, { file });
  }
  if (text !== null && text.trim() !== '') {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw new WxError('config.parse', `${file} is not valid JSON: ${describeError(err)}`, { file });
    }
    const user = validate(raw, file);
    for (const [key, value] of Object.entries(user)) {
      const base = (config as unknown as Record<string, unknown>)[key];
      (config as unknown as Record<string, unknown>)[key] =
        base && typeof base === 'object' && !Array.isArray(base) && key !== 'formats' ? { ...base, ...(value as object) } : value;
    }
  }
  if (env.WX_MODEL) config.model = env.WX_MODEL;
  return config;
}
