// The audio front-end: any recording → 16 kHz mono float32 → Whisper log-mel features.
// WAV is decoded, downmixed and resampled by the native addon (C++, off the JS thread for
// files); every other format goes through an ffmpeg child process (afconvert on macOS when
// ffmpeg is absent). This module is the only place the rest of wx touches audio decoding.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WxError, describeError } from '../errors.js';
import { AUDIO_ERROR_CODES, AudioError, type AudioErrorCode } from './errors.js';
import { native } from '../native.js';
import { decodeWithAfconvert, decodeWithFfmpeg, findAfconvert, findFfmpeg, ffprobeDuration, installHint } from './external.js';

export { AudioError, type AudioErrorCode } from './errors.js';
export { MelExtractor, type MelOptions } from './mel.js';
export * from './vad.js';

/** The rate every model input uses. */
export const SAMPLE_RATE = 16000;
/** Longest recording loadAudio accepts by default (12 h at 16 kHz ≈ 2.8 GB of float32). */
export const DEFAULT_MAX_SECONDS = 12 * 3600;

/** Turns a coded error thrown by the addon into an AudioError naming the file. */
function fromNative(err: unknown, file: string): unknown {
  const code = (err as { code?: unknown })?.code;
  if (typeof code === 'string' && AUDIO_ERROR_CODES.has(code)) {
    return new AudioError(code as AudioErrorCode, file, describeError(err), { cause: err });
  }
  return err;
}

export function defaultThreads(): number {
  return Math.max(1, Math.min(4, os.availableParallelism()));
}

interface NativeDecoded {
  sampleRate: number;
  sourceRate: number;
  channels: number;
  frames: number;
  samples: Float32Array;
}

/** True when the bytes start like a RIFF/RF64 WAVE file. */
export function isWav(head: Uint8Array): boolean {
  if (head.length < 12) return false;
  const tag = String.fromCharCode(head[0]!, head[1]!, head[2]!, head[3]!);
  const wave = String.fromCharCode(head[8]!, head[9]!, head[10]!, head[11]!);
  return (tag === 'RIFF' || tag === 'RF64') && wave === 'WAVE';
}

/** A WAV file, or what is left of one cut off inside its first 12 bytes (the native reader says so). */
function looksLikeWav(head: Uint8Array): boolean {
  if (head.length >= 12) return isWav(head);
  const riff = [0x52, 0x49, 0x46, 0x46];
  return head.length > 0 && head.every((b, i) => i >= 4 || b === riff[i]);
}

/** Decodes a WAV file held in memory to mono float32 at its own sample rate. */
export function decodeWav(buf: Uint8Array, file = '<buffer>'): { sampleRate: number; channels: number; samples: Float32Array } {
  try {
    const d = native().wavDecode(buf, 0, defaultThreads()) as NativeDecoded;
    return { sampleRate: d.sampleRate, channels: d.channels, samples: d.samples };
  } catch (err) {
    throw fromNative(err, file);
  }
}

/** Band-limited resampling (polyphase Kaiser-windowed sinc, ≥ 80 dB design stop band). */
export function resample(x: Float32Array, from: number, to: number): Float32Array {
  if (!Number.isInteger(from) || !Number.isInteger(to) || from <= 0 || to <= 0) {
    throw new WxError('audio.unsupported', `resample: sample rates must be positive integers (got ${from} → ${to})`, { step: 'resample' });
  }
  if (from === to) return x.slice();
  try {
    return native().resample(x, from, to, defaultThreads()) as Float32Array;
  } catch (err) {
    throw fromNative(err, '<samples>');
  }
}

interface NativeStreamResampler {
  push(chunk: Float32Array): Float32Array;
  flush(): Float32Array;
}

/**
 * Resampling for audio that arrives in pieces (a microphone at 44.1/48 kHz): `push` returns the
 * output samples the input so far determines, `flush` the rest at the end. The outputs joined
 * together equal `resample()` of the whole signal exactly (no seams at chunk boundaries).
 */
export class StreamResampler {
  private readonly impl: NativeStreamResampler | null;
  private done = false;

  constructor(readonly from: number, readonly to: number) {
    if (!Number.isInteger(from) || !Number.isInteger(to) || from <= 0 || to <= 0) {
      throw new WxError('audio.unsupported', `StreamResampler: sample rates must be positive integers (got ${from} → ${to})`, { step: 'resample' });
    }
    if (from === to) {
      this.impl = null;
      return;
    }
    try {
      const Impl = native().StreamResampler as new (from: number, to: number) => NativeStreamResampler;
      this.impl = new Impl(from, to);
    } catch (err) {
      throw fromNative(err, '<stream>');
    }
  }

  push(chunk: Float32Array): Float32Array {
    if (this.done) throw new WxError('audio.stream_closed', 'StreamResampler: push after flush', { step: 'resample' });
    return this.impl ? this.impl.push(chunk) : chunk.slice();
  }

  flush(): Float32Array {
    this.done = true;
    return this.impl ? this.impl.flush() : new Float32Array(0);
  }
}

export interface LoadAudioOptions {
  signal?: AbortSignal;
  /** Refuse recordings longer than this (DEFAULT_MAX_SECONDS). */
  maxSeconds?: number;
}

/** First bytes of a file, or a typed error for missing, unreadable and empty files. */
async function head(file: string): Promise<{ bytes: Uint8Array; size: number }> {
  let handle: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(file, 'r');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new AudioError('audio.not_found', file, 'no such file', { cause: err });
    throw new AudioError('audio.unreadable', file, `cannot open: ${describeError(err)}`, { cause: err });
  }
  try {
    const st = await handle.stat();
    if (st.isDirectory()) throw new AudioError('audio.not_audio', file, 'is a directory, not an audio file');
    if (st.size === 0) throw new AudioError('audio.empty', file, 'the file is empty (0 bytes)');
    const bytes = new Uint8Array(Math.min(64, st.size));
    await handle.read(bytes, 0, bytes.length, 0);
    return { bytes, size: st.size };
  } catch (err) {
    if (err instanceof AudioError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EISDIR') throw new AudioError('audio.not_audio', file, 'is a directory, not an audio file', { cause: err });
    throw new AudioError('audio.unreadable', file, `cannot read: ${describeError(err)}`, { cause: err });
  } finally {
    await handle.close();
  }
}

/** A guess at the container from its magic bytes, for error messages only. */
function sniffContainer(b: Uint8Array): string | null {
  const ascii = (o: number, n: number) => String.fromCharCode(...b.subarray(o, o + n));
  if (b.length >= 4 && ascii(0, 4) === 'fLaC') return 'FLAC';
  if (b.length >= 4 && ascii(0, 4) === 'OggS') return 'Ogg';
  if (b.length >= 3 && ascii(0, 3) === 'ID3') return 'MP3';
  if (b.length >= 2 && b[0] === 0xff && (b[1]! & 0xe0) === 0xe0) return 'MPEG audio';
  if (b.length >= 8 && ascii(4, 4) === 'ftyp') return 'MP4/M4A';
  if (b.length >= 4 && b[0] === 0x1a && b[1] === 0x45 && b[2] === 0xdf && b[3] === 0xa3) return 'Matroska/WebM';
  if (b.length >= 12 && ascii(0, 4) === 'FORM' && (ascii(8, 4) === 'AIFF' || ascii(8, 4) === 'AIFC')) return 'AIFF';
  if (b.length >= 4 && ascii(0, 4) === 'caff') return 'CAF';
  if (b.length >= 12 && ascii(0, 4) === 'RIFF') return 'RIFF';
  return null;
}

function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason ?? new Error('aborted');
}

/**
 * Any recording → 16 kHz mono float32. WAV natively; everything else (mp3, m4a/aac, flac,
 * ogg/opus, video) through ffmpeg, or afconvert on macOS when ffmpeg is absent.
 */
export async function loadAudio(file: string, opts: LoadAudioOptions = {}): Promise<Float32Array> {
  const { signal } = opts;
  checkAborted(signal);
  const maxSamples = Math.floor((opts.maxSeconds ?? DEFAULT_MAX_SECONDS) * SAMPLE_RATE);
  const { bytes } = await head(file);
  checkAborted(signal);
  if (looksLikeWav(bytes)) {
    try {
      const d = (await native().wavDecodeFile(path.resolve(file), SAMPLE_RATE, defaultThreads(), maxSamples)) as NativeDecoded;
      checkAborted(signal);
      return d.samples;
    } catch (err) {
      const typed = fromNative(err, file);
      // Compressed WAV payloads (ADPCM, GSM, …) are ffmpeg's job.
      if (!(typed instanceof AudioError && typed.code === 'audio.unsupported')) throw typed;
      if (!(await findFfmpeg())) {
        throw new AudioError('audio.unsupported', file, `${String(typed.context.reason)}; ffmpeg can decode it: ${installHint()}`, { cause: typed });
      }
    }
  }
  const ffmpeg = await findFfmpeg();
  if (ffmpeg) return decodeWithFfmpeg(ffmpeg, file, { signal, maxSamples });
  const afconvert = await findAfconvert();
  if (afconvert) return decodeWithAfconvert(afconvert, file, { signal, maxSamples });
  const container = sniffContainer(bytes);
  const ext = path.extname(file).toLowerCase();
  if (container === null && (ext === '.wav' || ext === '.wave')) {
    throw new AudioError('audio.not_audio', file, 'not a WAV file (no RIFF/WAVE header)');
  }
  throw new AudioError(
    'audio.no_decoder',
    file,
    `${container ? `is ${container}, not WAV` : 'is not a WAV file'}; decoding it needs ffmpeg, which is not installed (${installHint()})`,
  );
}

/** Duration in seconds: from the WAV header, or ffprobe's container metadata, else by decoding. */
export async function probeDuration(file: string): Promise<number> {
  const { bytes } = await head(file);
  if (looksLikeWav(bytes)) {
    try {
      const info = native().wavProbe(path.resolve(file)) as { sampleRate: number; frames: number };
      return info.frames / info.sampleRate;
    } catch (err) {
      const typed = fromNative(err, file);
      if (!(typed instanceof AudioError && typed.code === 'audio.unsupported')) throw typed;
    }
  }
  const seconds = await ffprobeDuration(file);
  if (seconds !== null) return seconds;
  return (await loadAudio(file)).length / SAMPLE_RATE;
}
