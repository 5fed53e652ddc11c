// The native audio front-end on real files: log-mel parity with Hugging Face's
// WhisperFeatureExtractor outputs, the resampler's stop band and fidelity, every WAV sample
// format, and bad input (each must give a typed AudioError naming the file and the reason).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AudioError, MelExtractor, SAMPLE_RATE, StreamResampler, decodeWav, loadAudio, probeDuration, resample } from '../daemon/audio/index.js';
import {
  audioError,
  maxAbsDiff,
  meanAbsDiff,
  readF32,
  readWavS16,
  referenceLogMel,
  referenceMelFilters,
  referenceUpsample,
  rmsDb,
  sine,
  toneAmplitude,
  wavBytes,
  type SampleFormat,
} from './audio-helpers.js';
import { repoRoot, sharedPath, tinyModelDir } from './shared.js';

const referenceDir = () => sharedPath('fixtures', 'reference');
const fixtureNames = (): string[] =>
  fs
    .readdirSync(referenceDir())
    .filter((f) => f.endsWith('.mel.f32'))
    .map((f) => f.slice(0, -'.mel.f32'.length))
    .sort();

let tmp: string;
beforeAll(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wx-audio-test-'));
});
afterAll(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('log-mel parity with WhisperFeatureExtractor', () => {
  it('has reference features to compare with', () => {
    expect(fixtureNames().length).toBeGreaterThanOrEqual(3);
  });

  it('matches every reference [80, 3000] within 5e-4 (API)', async () => {
    const mel = MelExtractor.fromPreprocessorConfig(tinyModelDir());
    expect(mel.nMels).toBe(80);
    expect(mel.windowFrames).toBe(3000);
    for (const name of fixtureNames()) {
      const samples = await loadAudio(sharedPath('fixtures', `${name}.wav`));
      const ours = mel.window(samples, 0);
      const ref = readF32(path.join(referenceDir(), `${name}.mel.f32`));
      expect(ours.length, name).toBe(ref.length);
      expect(maxAbsDiff(ours, ref), name).toBeLessThanOrEqual(5e-4);
    }
  });

  it('matches every reference through `wx debug mel`', () => {
    const cli = path.join(repoRoot, 'dist', 'cli', 'commands', 'debug-mel.js');
    if (!fs.existsSync(cli)) throw new Error(`${cli} is missing: run \`npx tsc -p tsconfig.json\` (npm test does) before this test`);
    for (const name of fixtureNames()) {
      const out = path.join(tmp, `${name}.cli.f32`);
      const r = spawnSync(process.execPath, [path.join(repoRoot, 'bin', 'wx.js'), 'debug', 'mel', sharedPath('fixtures', `${name}.wav`), '--out', out, '--model', tinyModelDir()], {
        encoding: 'utf8',
      });
      expect(r.status, r.stderr).toBe(0);
      const ref = readF32(path.join(referenceDir(), `${name}.mel.f32`));
      expect(maxAbsDiff(readF32(out), ref), name).toBeLessThanOrEqual(5e-4);
    }
  });

  it('`wx debug mel --n-mels 128` writes [128, 3000]; a bad --n-mels is refused', () => {
    const out = path.join(tmp, 'short-128.f32');
    const wx = path.join(repoRoot, 'bin', 'wx.js');
    const r = spawnSync(process.execPath, [wx, 'debug', 'mel', sharedPath('fixtures', 'fx-short.wav'), '--out', out, '--n-mels', '128'], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const features = readF32(out);
    expect(features.length).toBe(128 * 3000);
    expect(maxAbsDiff(features, new MelExtractor({ nMels: 128 }).window(readWavS16(sharedPath('fixtures', 'fx-short.wav')).samples))).toBeLessThan(1e-6);
    const bad = spawnSync(process.execPath, [wx, 'debug', 'mel', sharedPath('fixtures', 'fx-short.wav'), '--out', out, '--n-mels', '100'], { encoding: 'utf8' });
    expect(bad.status).not.toBe(0);
    expect(bad.stderr).toMatch(/--n-mels/);
  });

  it('`wx debug mel` names the file when it cannot read it', () => {
    const missing = path.join(tmp, 'no-such-recording.wav');
    const r = spawnSync(process.execPath, [path.join(repoRoot, 'bin', 'wx.js'), 'debug', 'mel', missing, '--out', path.join(tmp, 'x.f32')], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(missing);
    expect(r.stderr).toContain('no such file');
  });

  it('batched, async, preallocated and streaming variants agree exactly with window()', async () => {
    const mel = new MelExtractor({ nMels: 80, threads: 2 });
    const long = await loadAudio(sharedPath('fixtures', 'speech', 'dev-long.wav'));
    expect(long.length).toBeGreaterThan(60 * SAMPLE_RATE);
    const offsets = [0, 17 * SAMPLE_RATE + 123, 45 * SAMPLE_RATE];
    const lengths = [30 * SAMPLE_RATE, 7 * SAMPLE_RATE + 5, 12 * SAMPLE_RATE];
    const size = 80 * 3000;
    const batch = mel.windows(long, offsets, lengths);
    const batchAsync = await mel.windowsAsync(long, offsets, lengths);
    expect(batch.length).toBe(3 * size);
    expect(maxAbsDiff(batch, batchAsync)).toBe(0);
    offsets.forEach((off, i) => {
      // A chunk shorter than 30 s is zero-padded: same as the window of the chunk alone.
      const single = mel.window(long.slice(off, off + lengths[i]!), 0);
      expect(maxAbsDiff(batch.subarray(i * size, (i + 1) * size), single), `window ${i}`).toBe(0);
    });
    const out = new Float32Array(size);
    expect(mel.window(long, offsets[1], out)).toBe(out);
    expect(maxAbsDiff(out, mel.window(long.slice(offsets[1]!, offsets[1]! + 30 * SAMPLE_RATE)))).toBe(0);
    // Streaming: a short recording padded to 30 s is exactly the first window.
    const short = await loadAudio(sharedPath('fixtures', 'fx-short.wav'));
    const streamed = mel.logMel(short, { padToSamples: 30 * SAMPLE_RATE });
    expect(streamed.frames).toBe(3000);
    expect(maxAbsDiff(streamed.data, mel.window(short))).toBe(0);
    // Unpadded: floor(len / hop) frames.
    expect(mel.logMel(short).frames).toBe(Math.floor(short.length / 160));
    expect(mel.logMel(new Float32Array(100)).frames).toBe(0);
  });

  it('windowsAsync leaves the event loop free while it computes', async () => {
    const mel = new MelExtractor({ nMels: 80, threads: 1 });
    const samples = await loadAudio(sharedPath('fixtures', 'speech', 'dev-long.wav'));
    const offsets = Array.from({ length: 40 }, (_, i) => (i % 8) * 30 * SAMPLE_RATE);
    let ticks = 0;
    let done = false;
    const spin = () => {
      if (done) return;
      ticks++;
      setImmediate(spin);
    };
    setImmediate(spin);
    const out = await mel.windowsAsync(samples, offsets);
    done = true;
    expect(out.length).toBe(40 * 80 * 3000);
    // 40 windows take tens of milliseconds; a blocking call would allow no tick at all.
    expect(ticks).toBeGreaterThan(3);
  });

  it('equals a float64 by-the-book log-mel for other FFT sizes and 128 bins', () => {
    // Random-ish but deterministic signal with speech-like level changes.
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
    const x = new Float32Array(16000);
    for (let i = 0; i < x.length; i++) x[i] = 0.3 * rnd() * (1 + Math.sin(i / 900)) + 0.2 * Math.sin(i * 0.05);
    // 400 = 2·(4·2·5·5), 512 = 2·(4·4·4·4), 480 = 2·(4·4·3·5: generic radix 3), 1000 = 2·(4·2·... 5·5·5)
    for (const [nMels, nFft, hop] of [
      [80, 400, 160],
      [128, 400, 160],
      [80, 512, 128],
      [64, 480, 160],
      [80, 1000, 250],
    ] as const) {
      const mel = new MelExtractor({ nMels, nFft, hop });
      const ours = mel.logMel(x);
      const ref = referenceLogMel(x, nMels, nFft, hop, 16000);
      expect(ours.frames).toBe(Math.floor(x.length / hop));
      expect(maxAbsDiff(ours.data, ref), `n_fft ${nFft}, ${nMels} mels`).toBeLessThan(2e-4);
    }
  });

  it('builds Slaney-normalised filters like librosa / Hugging Face (80 and 128 bins)', () => {
    for (const nMels of [80, 128]) {
      const ours = new MelExtractor({ nMels }).filters();
      const ref = referenceMelFilters(nMels, 400, 16000, 8000);
      expect(ours.length).toBe(nMels * 201);
      let worst = 0;
      for (let m = 0; m < nMels; m++) for (let k = 0; k < 201; k++) worst = Math.max(worst, Math.abs(ours[m * 201 + k]! - ref[m]![k]!));
      expect(worst).toBeLessThan(1e-7);
    }
  });

  it('reads its settings from preprocessor_config.json and rejects a broken one', () => {
    const dir = path.join(tmp, 'model-128');
    fs.mkdirSync(dir, { recursive: true });
    const cfg = JSON.parse(fs.readFileSync(path.join(tinyModelDir(), 'preprocessor_config.json'), 'utf8')) as Record<string, unknown>;
    fs.writeFileSync(path.join(dir, 'preprocessor_config.json'), JSON.stringify({ ...cfg, feature_size: 128 }));
    const mel = MelExtractor.fromPreprocessorConfig(dir);
    expect(mel.nMels).toBe(128);
    expect(mel.window(sine(440, 16000, 1)).length).toBe(128 * 3000);
    fs.writeFileSync(path.join(dir, 'preprocessor_config.json'), JSON.stringify({ ...cfg, feature_size: 'many' }));
    expect(() => MelExtractor.fromPreprocessorConfig(dir)).toThrow(/feature_size/);
    expect(() => MelExtractor.fromPreprocessorConfig(path.join(tmp, 'nowhere'))).toThrow(/preprocessor_config/);
  });
});

describe('resampler', () => {
  it('attenuates tones above the new Nyquist by ≥ 60 dB and keeps the pass band flat', () => {
    // 44101 Hz has no small ratio to 16 kHz: the interpolated-phase path.
    for (const from of [44100, 48000, 22050, 96000, 44101]) {
      const ref = 0.5 / Math.SQRT2;
      for (const f of [8200, 9000, 12000, 20000]) {
        if (f >= from / 2) continue;
        const y = resample(sine(f, from, 1), from, 16000);
        expect(y.length).toBe(Math.ceil((from * 1) * 16000 / from));
        expect(rmsDb(y, ref, 400), `${f} Hz at ${from} Hz`).toBeLessThanOrEqual(-60);
      }
      for (const f of [100, 1000, 4000, 7000]) {
        const y = resample(sine(f, from, 1), from, 16000);
        expect(Math.abs(rmsDb(y, ref, 400)), `${f} Hz at ${from} Hz`).toBeLessThan(0.05);
      }
    }
  });

  it('adds no delay and keeps DC exact', () => {
    for (const from of [44100, 48000, 22050, 8000, 44101]) {
      // An impulse at input sample p must peak at the output sample nearest p·16000/from.
      const x = new Float32Array(from);
      const p = Math.floor(from / 2);
      x[p] = 1;
      const y = resample(x, from, 16000);
      let peak = 0;
      for (let i = 1; i < y.length; i++) if (Math.abs(y[i]!) > Math.abs(y[peak]!)) peak = i;
      expect(peak, `${from} Hz`).toBe(Math.round((p * 16000) / from));
      const dc = resample(new Float32Array(from).fill(0.25), from, 16000);
      expect(maxAbsDiff(dc.subarray(1000, 15000), new Float32Array(14000).fill(0.25)), `${from} Hz`).toBeLessThan(1e-6);
    }
  });

  it('streams: chunked pushes join to exactly the one-shot result', async () => {
    const speech16k = await loadAudio(sharedPath('fixtures', 'fx-short.wav'));
    let seed = 99;
    const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
    for (const [from, to] of [
      [16000, 44100],
      [16000, 48000],
      [16000, 8000],
      [16000, 16000],
    ] as const) {
      // The input is real speech at `from` (made by the one-shot resampler where needed);
      // what is compared is streaming vs one-shot on that same input.
      const input = from === 16000 ? speech16k : resample(speech16k, 16000, from);
      const mic = to === 16000 ? input : resample(input, from, to);
      const whole = resample(mic, to, 16000);
      const stream = new StreamResampler(to, 16000);
      const parts: Float32Array[] = [];
      for (let at = 0; at < mic.length; ) {
        const n = Math.min(mic.length - at, 1 + Math.floor(rnd() * 3000));
        parts.push(stream.push(mic.subarray(at, at + n)));
        at += n;
      }
      parts.push(stream.flush());
      const joined = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
      let at = 0;
      for (const p of parts) {
        joined.set(p, at);
        at += p.length;
      }
      expect(joined.length, `${to} Hz`).toBe(whole.length);
      expect(maxAbsDiff(joined, whole), `${to} Hz`).toBe(0);
      expect(() => stream.push(new Float32Array(10))).toThrow(/after flush/);
    }
  });

  it('upsamples without images (8 kHz → 16 kHz)', () => {
    const y = resample(sine(1000, 8000, 1), 8000, 16000);
    expect(y.length).toBe(16000);
    expect(toneAmplitude(y, 1000, 16000, 400)).toBeCloseTo(0.5, 2);
    // The image of 1 kHz at 8k − 1k = 7 kHz must be gone.
    expect(20 * Math.log10(toneAmplitude(y, 7000, 16000, 400) / 0.5)).toBeLessThan(-60);
  });

  it('44.1 and 48 kHz renditions of a fixture give the 16 kHz mel within 1e-2 mean abs', async () => {
    const file = sharedPath('fixtures', 'fx-multi.wav');
    const original = readWavS16(file);
    expect(original.rate).toBe(16000);
    const mel = MelExtractor.fromPreprocessorConfig(tinyModelDir());
    const want = mel.window(original.samples);
    for (const rate of [44100, 48000]) {
      // Made by an independent float64 reference interpolator, written as a 24-bit stereo WAV so
      // the decode path (24-bit, downmix, resample) is the one a real recording takes.
      const up = referenceUpsample(original.samples, 16000, rate);
      const wavFile = path.join(tmp, `fx-multi-${rate}.wav`);
      fs.writeFileSync(wavFile, wavBytes([up, up], rate, 's24'));
      const back = await loadAudio(wavFile);
      expect(Math.abs(back.length - original.samples.length)).toBeLessThanOrEqual(1);
      const got = mel.window(back);
      const diff = meanAbsDiff(got, want);
      expect(diff, `${rate} Hz`).toBeLessThanOrEqual(1e-2);
    }
  });
});

describe('WAV decoding', () => {
  const rate = 22050;
  const left = sine(440, rate, 0.2, 0.6);
  const right = sine(1300, rate, 0.2, 0.3);
  const third = sine(90, rate, 0.2, 0.1);
  const mono = (i: number) => (left[i]! + right[i]! + third[i]!) / 3;

  const tolerance: Record<SampleFormat, number> = { u8: 1.5 / 128, s16: 2 / 32768, s24: 2 / 8388608, s32: 1e-6, f32: 1e-7, f64: 1e-7 };
  for (const format of ['u8', 's16', 's24', 's32', 'f32', 'f64'] as const) {
    for (const extensible of [false, true]) {
      it(`decodes ${format}${extensible ? ' (WAVE_FORMAT_EXTENSIBLE)' : ''}, 3 channels mixed to mono`, () => {
        const d = decodeWav(wavBytes([left, right, third], rate, format, { extensible }), 'mix.wav');
        expect(d.sampleRate).toBe(rate);
        expect(d.channels).toBe(3);
        expect(d.samples.length).toBe(left.length);
        let worst = 0;
        for (let i = 0; i < left.length; i++) worst = Math.max(worst, Math.abs(d.samples[i]! - mono(i)));
        expect(worst).toBeLessThanOrEqual(tolerance[format]);
      });
    }
  }

  it('decodes µ-law and A-law', () => {
    const base = wavBytes([new Float32Array(4)], 8000, 'u8');
    for (const [tag, silence, loudest] of [
      [7, 0xff, 0x00],
      [6, 0xd5, 0xaa],
    ] as const) {
      const b = Buffer.from(base);
      b.writeUInt16LE(tag, 20);
      b[44] = silence;
      b[45] = loudest;
      b[46] = silence;
      b[47] = loudest ^ 0x80; // the same magnitude, other sign
      const d = decodeWav(b, 'g711.wav');
      expect(Math.abs(d.samples[0]!)).toBeLessThan(0.001);
      expect(Math.abs(d.samples[1]!)).toBeGreaterThan(0.95);
      expect(d.samples[3]).toBeCloseTo(-d.samples[1]!, 6);
    }
  });

  it('loads a fixture natively at 16 kHz identical to a plain reader', async () => {
    const file = sharedPath('fixtures', 'fx-short.wav');
    const plain = readWavS16(file).samples;
    const ours = await loadAudio(file);
    expect(maxAbsDiff(ours, plain)).toBe(0);
    expect(await probeDuration(file)).toBeCloseTo(plain.length / 16000, 6);
  });

  it('reads a streamed WAV (size fields left at 0xFFFFFFFF)', async () => {
    const b = wavBytes([sine(300, 16000, 0.5)], 16000, 's16');
    b.writeUInt32LE(0xffffffff, 4);
    b.writeUInt32LE(0xffffffff, 40);
    const file = path.join(tmp, 'streamed.wav');
    fs.writeFileSync(file, b);
    expect((await loadAudio(file)).length).toBe(8000);
  });
});

describe('bad input gives a typed error naming the file and the reason', () => {
  const fixture = () => fs.readFileSync(sharedPath('fixtures', 'fx-short.wav'));
  const write = (name: string, bytes: Uint8Array) => {
    const file = path.join(tmp, name);
    fs.writeFileSync(file, bytes);
    return file;
  };

  it('missing file', async () => {
    const file = path.join(tmp, 'missing.wav');
    const err = await audioError(loadAudio(file));
    expect(err.code).toBe('audio.not_found');
    expect(err.message).toContain(file);
    expect(err.context.file).toBe(file);
  });

  it('empty file', async () => {
    const file = write('empty.wav', new Uint8Array(0));
    const err = await audioError(loadAudio(file));
    expect(err.code).toBe('audio.empty');
    expect(err.message).toContain(file);
    expect(err.message).toMatch(/empty/);
  });

  it('truncated data and truncated header', async () => {
    const full = fixture();
    const cut = write('cut.wav', full.subarray(0, 1000));
    let err = await audioError(loadAudio(cut));
    expect(err.code).toBe('audio.truncated');
    expect(err.message).toContain(cut);
    expect(err.message).toMatch(/truncated/);
    for (const n of [6, 30]) {
      const head = write(`head-${n}.wav`, full.subarray(0, n));
      err = await audioError(loadAudio(head));
      expect(err.code, `${n} bytes`).toBe('audio.truncated');
      expect(err.message).toContain(head);
    }
  });

  it('huge declared size: no giant allocation, no hang', async () => {
    const b = Buffer.from(fixture().subarray(0, 4096));
    b.writeUInt32LE(0xfffffff0, 4);
    b.writeUInt32LE(0xfffffff0, 40);
    const file = write('huge.wav', b);
    const before = process.memoryUsage().rss;
    const err = await audioError(loadAudio(file));
    expect(err.code).toBe('audio.truncated');
    expect(err.message).toContain(file);
    expect(err.message).toMatch(/declares 4\.0 GB/);
    expect(() => decodeWav(b, file)).toThrow(AudioError);
    expect(process.memoryUsage().rss - before).toBeLessThan(64 * 2 ** 20);
    // A fmt chunk claiming to be huge is cut off as well.
    const c = Buffer.from(fixture().subarray(0, 4096));
    c.writeUInt32LE(0x7ffffff0, 16);
    expect((await audioError(loadAudio(write('huge-fmt.wav', c)))).code).toBe('audio.truncated');
  });

  it('a genuinely huge WAV (sparse, 2 GB): duration from the header, refused before allocating', async () => {
    const file = path.join(tmp, 'sparse-huge.wav');
    const dataBytes = 2_000_000_000;
    const header = wavBytes([new Float32Array(0)], 16000, 's16');
    header.writeUInt32LE(36 + dataBytes, 4);
    header.writeUInt32LE(dataBytes, 40);
    fs.writeFileSync(file, header);
    fs.truncateSync(file, 44 + dataBytes);
    const started = performance.now();
    expect(await probeDuration(file)).toBeCloseTo(dataBytes / 2 / 16000, 6);
    const before = process.memoryUsage().rss;
    const err = await audioError(loadAudio(file));
    expect(err.code).toBe('audio.too_large');
    expect(err.message).toContain(file);
    expect(process.memoryUsage().rss - before).toBeLessThan(64 * 2 ** 20);
    expect(performance.now() - started).toBeLessThan(5000);
    fs.rmSync(file);
  });

  it('corrupt header values', async () => {
    const zeroCh = Buffer.from(fixture());
    zeroCh.writeUInt16LE(0, 22);
    let err = await audioError(loadAudio(write('zero-channels.wav', zeroCh)));
    expect(err.code).toBe('audio.not_audio');
    expect(err.message).toMatch(/0 channels/);
    const zeroRate = Buffer.from(fixture());
    zeroRate.writeUInt32LE(0, 24);
    err = await audioError(loadAudio(write('zero-rate.wav', zeroRate)));
    expect(err.message).toMatch(/sample rate 0/);
    // A tiny bogus rate would turn a small file into gigabytes at 16 kHz.
    const tinyRate = Buffer.from(fixture());
    tinyRate.writeUInt32LE(7, 24);
    err = await audioError(loadAudio(write('tiny-rate.wav', tinyRate)));
    expect(err.code).toBe('audio.not_audio');
    expect(err.message).toMatch(/sample rate 7 Hz/);
  });

  it('header fuzz: random corruption of the first 64 bytes decodes or throws an AudioError, nothing else', () => {
    const base = fixture();
    let seed = 2024;
    const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
    const outcomes = new Map<string, number>();
    for (let it = 0; it < 3000; it++) {
      const b = Buffer.from(base.subarray(0, rnd() < 0.3 ? Math.floor(rnd() * base.length) : base.length));
      for (let m = 0, n = 1 + Math.floor(rnd() * 4); m < n; m++) b[Math.floor(rnd() * Math.min(64, b.length))] = Math.floor(rnd() * 256);
      let outcome = 'decoded';
      try {
        const d = decodeWav(b, 'fuzz.wav');
        expect(d.samples.every(Number.isFinite)).toBe(true);
      } catch (err) {
        expect(err).toBeInstanceOf(AudioError);
        outcome = (err as AudioError).code;
      }
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    }
    expect(outcomes.get('decoded')).toBeGreaterThan(0);
    expect(outcomes.get('audio.truncated')).toBeGreaterThan(0);
    expect(outcomes.get('audio.not_audio')).toBeGreaterThan(0);
  });

  it('random bytes and wrong extensions', async () => {
    let seed = 7;
    const junk = new Uint8Array(50_000).map(() => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24);
    for (const name of ['random.wav', 'random.mp3', 'random.bin']) {
      const file = write(name, junk);
      const err = await audioError(loadAudio(file));
      expect(['audio.not_audio', 'audio.no_audio_stream'], `${name}: ${err.message}`).toContain(err.code);
      expect(err.message).toContain(file);
    }
    const text = write('notes.wav', new TextEncoder().encode('these are my meeting notes, not a recording\n'.repeat(20)));
    const err = await audioError(loadAudio(text));
    expect(err.code).toBe('audio.not_audio');
    expect(err.message).toContain(text);
    // A real WAV with a misleading extension is still decoded (by content, not name).
    const disguised = write('really-a-wav.mp3', fixture());
    expect(maxAbsDiff(await loadAudio(disguised), readWavS16(sharedPath('fixtures', 'fx-short.wav')).samples)).toBe(0);
  });

  it('a directory', async () => {
    const err = await audioError(loadAudio(tmp));
    expect(err.code).toBe('audio.not_audio');
    expect(err.message).toContain(tmp);
  });

  it('longer than the limit', async () => {
    const err = await audioError(loadAudio(sharedPath('fixtures', 'fx-multi.wav'), { maxSeconds: 2 }));
    expect(err.code).toBe('audio.too_large');
    expect(err.message).toContain('fx-multi.wav');
  });

  it('unsupported WAV encodings without ffmpeg name what to install', async () => {
    const adpcm = Buffer.from(fixture());
    adpcm.writeUInt16LE(2, 20); // Microsoft ADPCM
    const file = write('adpcm.wav', adpcm);
    expect(() => decodeWav(adpcm, file)).toThrow(/not supported natively/);
    const saved = process.env.WX_FFMPEG;
    process.env.WX_FFMPEG = 'none';
    try {
      const err = await audioError(loadAudio(file));
      expect(err.code).toBe('audio.unsupported');
      expect(err.message).toContain(file);
      expect(err.message).toMatch(/not supported natively; ffmpeg can decode it: install it/);
    } finally {
      if (saved === undefined) delete process.env.WX_FFMPEG;
      else process.env.WX_FFMPEG = saved;
    }
  });
});
