// Formats other than WAV go through an ffmpeg child process. The files are made with ffmpeg in
// a temp dir from a shared fixture, then decoded by loadAudio and compared with the original.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MelExtractor, loadAudio, probeDuration } from '../daemon/audio/index.js';
import { audioError, maxAbsDiff, meanAbsDiff, readWavS16 } from './audio-helpers.js';
import { sharedPath, tinyModelDir } from './shared.js';

function ffmpegPath(): string {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const p = path.join(dir, 'ffmpeg');
    if (dir && fs.existsSync(p)) return p;
  }
  throw new Error('ffmpeg is not installed: these tests need it (apt-get install --no-install-recommends ffmpeg; .ci/run installs it)');
}

let tmp: string;
let original: Float32Array;
let mel: MelExtractor;
let originalMel: Float32Array;
const made: Record<string, string> = {};

function ffmpeg(...args: string[]): void {
  execFileSync(ffmpegPath(), ['-nostdin', '-hide_banner', '-loglevel', 'error', '-y', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
}

beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wx-ffmpeg-test-'));
  const src = sharedPath('fixtures', 'fx-multi.wav');
  original = readWavS16(src).samples;
  mel = MelExtractor.fromPreprocessorConfig(tinyModelDir());
  originalMel = mel.window(original);
  const out = (name: string) => (made[name] = path.join(tmp, name));
  ffmpeg('-i', src, '-c:a', 'flac', out('speech.flac'));
  ffmpeg('-i', src, '-ar', '44100', '-ac', '2', '-c:a', 'libmp3lame', '-b:a', '128k', out('speech.mp3'));
  ffmpeg('-i', src, '-c:a', 'aac', '-b:a', '96k', out('speech.m4a'));
  ffmpeg('-i', src, '-c:a', 'libopus', '-b:a', '48k', out('speech.opus'));
  ffmpeg('-i', src, '-c:a', 'libvorbis', '-q:a', '4', out('speech.ogg'));
  ffmpeg('-i', src, '-c:a', 'adpcm_ms', out('speech-adpcm.wav'));
  ffmpeg('-f', 'lavfi', '-i', 'testsrc=size=160x120:rate=10', '-i', src, '-shortest', '-c:v', 'mpeg4', '-c:a', 'aac', out('speech-video.mp4'));
  ffmpeg('-f', 'lavfi', '-i', 'testsrc=size=160x120:rate=10', '-t', '2', '-an', '-c:v', 'mpeg4', out('silent-video.mp4'));
}, 120_000);

afterAll(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

describe('ffmpeg decoding', () => {
  it('FLAC is lossless: identical samples', async () => {
    const x = await loadAudio(made['speech.flac']!);
    expect(x.length).toBe(original.length);
    expect(maxAbsDiff(x, original)).toBeLessThan(1e-6);
  });

  // Lossy codecs change the waveform; their features must stay close to the original's.
  for (const [name, meanTol] of [
    ['speech.mp3', 0.03],
    ['speech.m4a', 0.03],
    ['speech.opus', 0.05],
    ['speech.ogg', 0.04],
    ['speech-video.mp4', 0.03],
    ['speech-adpcm.wav', 0.06], // 4-bit ADPCM noise lifts the silent frames
  ] as const) {
    it(`${name}: 16 kHz mono, features close to the original`, async () => {
      const x = await loadAudio(made[name]!);
      expect(Math.abs(x.length - original.length), 'length').toBeLessThanOrEqual(2048);
      const diff = meanAbsDiff(mel.window(x), originalMel);
      expect(diff).toBeLessThanOrEqual(meanTol);
      // …and far from unrelated audio (the test would catch a decoder returning noise).
      expect(meanAbsDiff(mel.window(x), mel.window(original.subarray(16000 * 4)))).toBeGreaterThan(5 * diff);
    });
  }

  it('44.1 and 48 kHz renditions made by ffmpeg give the 16 kHz mel within 1e-2 mean abs (native resampler)', async () => {
    for (const rate of [44100, 48000]) {
      const file = path.join(tmp, `rendition-${rate}.wav`);
      ffmpeg('-i', sharedPath('fixtures', 'fx-multi.wav'), '-af', `aresample=${rate}:filter_size=128:cutoff=0.97:kaiser_beta=12`, '-c:a', 'pcm_s16le', file);
      const x = await loadAudio(file);
      expect(Math.abs(x.length - original.length)).toBeLessThanOrEqual(2);
      expect(meanAbsDiff(mel.window(x), originalMel), `${rate} Hz`).toBeLessThanOrEqual(1e-2);
    }
  });

  it('probes durations cheaply', async () => {
    expect(await probeDuration(made['speech.mp3']!)).toBeCloseTo(original.length / 16000, 1);
    expect(await probeDuration(made['speech.flac']!)).toBeCloseTo(original.length / 16000, 2);
    const err = await audioError(probeDuration(made['silent-video.mp4']!));
    expect(err.code).toBe('audio.no_audio_stream');
  });

  it('a video without sound: no_audio_stream naming the file', async () => {
    const err = await audioError(loadAudio(made['silent-video.mp4']!));
    expect(err.code).toBe('audio.no_audio_stream');
    expect(err.message).toContain(made['silent-video.mp4']!);
  });

  it('enforces the length limit while ffmpeg streams', async () => {
    const err = await audioError(loadAudio(made['speech.mp3']!, { maxSeconds: 3 }));
    expect(err.code).toBe('audio.too_large');
  });

  it('aborts: before starting and while decoding', async () => {
    const before = new AbortController();
    before.abort(new Error('cancelled by the test'));
    await expect(loadAudio(made['speech.m4a']!, { signal: before.signal })).rejects.toThrow('cancelled by the test');
    const during = new AbortController();
    const p = loadAudio(made['speech.opus']!, { signal: during.signal });
    during.abort(new Error('cancelled mid-way'));
    await expect(p).rejects.toThrow('cancelled mid-way');
  });

  it('file names are never interpreted (no shell, no options, no protocols)', async () => {
    // A shell would run the touch in its working directory (this process's cwd).
    const canary = 'wx-audio-test-canary';
    const weird = path.join(tmp, `-i x $(touch ${canary}) \`touch ${canary}\` 'q' "d";.mp3`);
    fs.copyFileSync(made['speech.mp3']!, weird);
    const x = await loadAudio(weird);
    expect(Math.abs(x.length - original.length)).toBeLessThanOrEqual(2048);
    expect(fs.existsSync(path.join(process.cwd(), canary))).toBe(false);
    expect(fs.existsSync(path.join(tmp, canary))).toBe(false);
    const protocol = path.join(tmp, 'concat:a|b.mp3');
    fs.copyFileSync(made['speech.mp3']!, protocol);
    expect((await loadAudio(protocol)).length).toBe(x.length);
  });

  it('without ffmpeg: a clear error naming the format and what to install', async () => {
    const saved = process.env.WX_FFMPEG;
    process.env.WX_FFMPEG = 'none';
    try {
      for (const [name, format] of [
        ['speech.mp3', 'MP3'],
        ['speech.flac', 'FLAC'],
        ['speech.m4a', 'MP4/M4A'],
      ] as const) {
        const err = await audioError(loadAudio(made[name]!));
        expect(err.code).toBe('audio.no_decoder');
        expect(err.message).toContain(made[name]!);
        expect(err.message).toContain(format);
        expect(err.message).toMatch(/install/);
        expect(err.message).toMatch(/ffmpeg/);
      }
      // WAV needs nothing external.
      expect((await loadAudio(sharedPath('fixtures', 'fx-short.wav'))).length).toBeGreaterThan(0);
    } finally {
      if (saved === undefined) delete process.env.WX_FFMPEG;
      else process.env.WX_FFMPEG = saved;
    }
  });
});
