// Decoding through external programs: ffmpeg everywhere, afconvert (built into macOS) when
// ffmpeg is absent. Always spawned with an argument array (never a shell), input passed as an
// absolute `file:` URL so a file name can never be read as an option or an ffmpeg protocol.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { native } from '../native.js';
import { AUDIO_ERROR_CODES, AudioError, type AudioErrorCode } from './errors.js';

const RATE = 16000;
// ffmpeg's default resampler lets content just above 8 kHz alias back (−31 dB measured at
// 8.6 kHz); these settings give ≥ 80 dB like the native resampler.
const RESAMPLE_FILTER = `aresample=${RATE}:filter_size=128:cutoff=0.91:kaiser_beta=12`;
const STDERR_LIMIT = 64 * 1024;

export function installHint(): string {
  if (process.platform === 'darwin') return 'install it with `brew install ffmpeg`';
  if (process.platform === 'linux') return 'install it with `sudo apt-get install ffmpeg` or your distribution’s ffmpeg package';
  return 'install ffmpeg and put it on PATH';
}

async function executable(file: string): Promise<boolean> {
  try {
    await fs.promises.access(file, fs.constants.X_OK);
    return (await fs.promises.stat(file)).isFile();
  } catch {
    return false;
  }
}

async function onPath(name: string): Promise<string | null> {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    if (await executable(candidate)) return candidate;
  }
  return null;
}

/** `WX_FFMPEG` (a path, or `none` to disable), else `ffmpeg` on PATH. */
export async function findFfmpeg(): Promise<string | null> {
  const forced = process.env.WX_FFMPEG;
  if (forced === 'none') return null;
  if (forced) return (await executable(forced)) ? forced : null;
  return onPath('ffmpeg');
}

async function findFfprobe(): Promise<string | null> {
  const ffmpeg = await findFfmpeg();
  if (!ffmpeg) return null;
  const beside = path.join(path.dirname(ffmpeg), 'ffprobe');
  return (await executable(beside)) ? beside : onPath('ffprobe');
}

export async function findAfconvert(): Promise<string | null> {
  if (process.platform !== 'darwin' || process.env.WX_FFMPEG === 'none') return null;
  return (await executable('/usr/bin/afconvert')) ? '/usr/bin/afconvert' : null;
}

interface RunResult {
  code: number | null;
  stdout: Buffer[];
  stdoutBytes: number;
  stderr: string;
}

/** Runs a program, collecting stdout up to `maxStdout` bytes (killing it beyond). */
function run(program: string, args: string[], opts: { signal?: AbortSignal | undefined; maxStdout: number; file: string }): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) return reject(opts.signal.reason);
    const child = spawn(program, args, { stdio: ['ignore', 'pipe', 'pipe'], shell: false });
    const stdout: Buffer[] = [];
    let stdoutBytes = 0;
    let stderr = '';
    let failure: unknown = null;
    const stop = (why: unknown) => {
      if (failure === null) failure = why;
      child.kill('SIGKILL');
    };
    const onAbort = () => stop(opts.signal!.reason);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    child.stdout.on('data', (chunk: Buffer) => {
      stdoutBytes += chunk.length;
      if (stdoutBytes > opts.maxStdout) {
        stop(new AudioError('audio.too_large', opts.file, `decoded audio is longer than the limit of ${Math.round(opts.maxStdout / 4 / RATE)} s`));
        return;
      }
      stdout.push(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      if (stderr.length < STDERR_LIMIT) stderr += chunk.toString('utf8');
    });
    child.on('error', (err) => {
      opts.signal?.removeEventListener('abort', onAbort);
      reject(new AudioError('audio.no_decoder', opts.file, `cannot run ${program}: ${err.message} (${installHint()})`, { cause: err }));
    });
    child.on('close', (code) => {
      opts.signal?.removeEventListener('abort', onAbort);
      if (failure !== null) reject(failure);
      else resolve({ code, stdout, stdoutBytes, stderr });
    });
  });
}

/** Maps ffmpeg's complaint to a stable code. */
function classifyFfmpeg(stderr: string): { code: AudioErrorCode; reason: string } {
  const lines = stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  const last = lines[lines.length - 1] ?? 'unknown error';
  if (/matches no streams|does not contain any stream|no audio stream/i.test(stderr)) return { code: 'audio.no_audio_stream', reason: 'has no audio stream' };
  if (/No such file or directory/i.test(stderr)) return { code: 'audio.not_found', reason: 'no such file' };
  if (/Permission denied/i.test(stderr)) return { code: 'audio.unreadable', reason: 'permission denied' };
  if (/Invalid data found when processing input|could not find codec parameters|moov atom not found|EBML header parsing failed|Invalid argument/i.test(stderr)) {
    return { code: 'audio.not_audio', reason: `not an audio or video file ffmpeg can read (ffmpeg: ${last})` };
  }
  if (/Decoder .* not found|unknown codec|unsupported codec|not supported/i.test(stderr)) {
    return { code: 'audio.unsupported', reason: `encoding not supported by this ffmpeg (ffmpeg: ${last})` };
  }
  return { code: 'audio.not_audio', reason: `ffmpeg could not decode it (ffmpeg: ${last})` };
}

function toFloat32(chunks: Buffer[], bytes: number): Float32Array {
  const out = new Float32Array(Math.floor(bytes / 4));
  const view = new Uint8Array(out.buffer);
  let at = 0;
  for (const c of chunks) {
    const n = Math.min(c.length, view.length - at);
    view.set(c.subarray(0, n), at);
    at += n;
  }
  return out;
}

export async function decodeWithFfmpeg(ffmpeg: string, file: string, opts: { signal?: AbortSignal | undefined; maxSamples: number }): Promise<Float32Array> {
  const args = ['-nostdin', '-hide_banner', '-loglevel', 'error', '-i', `file:${path.resolve(file)}`, '-map', '0:a:0', '-ac', '1', '-af', RESAMPLE_FILTER, '-c:a', 'pcm_f32le', '-f', 'f32le', 'pipe:1'];
  const r = await run(ffmpeg, args, { signal: opts.signal, maxStdout: opts.maxSamples * 4, file });
  if (r.code !== 0) {
    const { code, reason } = classifyFfmpeg(r.stderr);
    throw new AudioError(code, file, reason);
  }
  if (r.stdoutBytes < 4) throw new AudioError('audio.empty', file, 'contains no audio samples');
  return toFloat32(r.stdout, r.stdoutBytes);
}

/**
 * macOS without ffmpeg: Core Audio's converter writes a float WAV at the recording's own rate and
 * channel count; the native decoder then downmixes and resamples it like any WAV.
 */
export async function decodeWithAfconvert(afconvert: string, file: string, opts: { signal?: AbortSignal | undefined; maxSamples: number }): Promise<Float32Array> {
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'wx-afconvert-'));
  try {
    const out = path.join(dir, 'audio.wav');
    const r = await run(afconvert, ['-f', 'WAVE', '-d', 'LEF32', path.resolve(file), out], { signal: opts.signal, maxStdout: STDERR_LIMIT, file });
    if (r.code !== 0) {
      const text = (r.stderr || Buffer.concat(r.stdout).toString('utf8')).trim().split('\n').pop() ?? '';
      throw new AudioError('audio.not_audio', file, `not an audio file Core Audio can read (afconvert: ${text}); for other formats ${installHint()}`);
    }
    try {
      const d = (await native().wavDecodeFile(out, RATE, 2, opts.maxSamples)) as { samples: Float32Array };
      return d.samples;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code && AUDIO_ERROR_CODES.has(code)) throw new AudioError(code as AudioErrorCode, file, `after conversion: ${(err as Error).message}`, { cause: err });
      throw err;
    }
  } finally {
    await fs.promises.rm(dir, { recursive: true, force: true });
  }
}

/** Container duration from ffprobe (null when ffprobe is missing or cannot tell). */
export async function ffprobeDuration(file: string): Promise<number | null> {
  const ffprobe = await findFfprobe();
  if (!ffprobe) return null;
  const args = ['-v', 'error', '-select_streams', 'a', '-show_entries', 'stream=codec_type:format=duration', '-of', 'default=noprint_wrappers=1', `file:${path.resolve(file)}`];
  const r = await run(ffprobe, args, { maxStdout: STDERR_LIMIT, file });
  if (r.code !== 0) return null;
  const text = Buffer.concat(r.stdout).toString('utf8');
  if (!/codec_type=audio/.test(text)) throw new AudioError('audio.no_audio_stream', file, 'has no audio stream');
  const m = /duration=([0-9.]+)/.exec(text);
  const seconds = m ? Number(m[1]) : NaN;
  return Number.isFinite(seconds) ? seconds : null;
}
