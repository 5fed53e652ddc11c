// The audio front-end: log-mel throughput (× real time on 1 and 2 threads, 5 minutes of speech),
// batched 30-s windows as the engine asks for them, WAV decode + resample throughput from a
// file, ffmpeg decoding (when installed), and memory.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MelExtractor, SAMPLE_RATE, decodeWav, loadAudio, resample } from '../daemon/audio/index.js';
import { fmt, median, peakRssMb, rssMb, table, type BenchSuite, sharedFile } from './util.js';

const SECONDS = 300;
const RUNS = 7;

/** `seconds` of real speech: the shared long recording repeated. */
async function speech(seconds: number): Promise<Float32Array> {
  const long = await loadAudio(sharedFile('fixtures', 'speech', 'dev-long.wav'));
  const out = new Float32Array(seconds * SAMPLE_RATE);
  for (let at = 0; at < out.length; at += long.length) out.set(long.subarray(0, Math.min(long.length, out.length - at)), at);
  return out;
}

/** Interleaved 16-bit stereo WAV (both channels the same signal). */
function stereoWav(x: Float32Array, rate: number): Buffer {
  const data = x.length * 4;
  const b = Buffer.alloc(44 + data);
  b.write('RIFF', 0, 'ascii');
  b.writeUInt32LE(36 + data, 4);
  b.write('WAVEfmt ', 8, 'ascii');
  b.writeUInt32LE(16, 16);
  b.writeUInt16LE(1, 20);
  b.writeUInt16LE(2, 22);
  b.writeUInt32LE(rate, 24);
  b.writeUInt32LE(rate * 4, 28);
  b.writeUInt16LE(4, 32);
  b.writeUInt16LE(16, 34);
  b.write('data', 36, 'ascii');
  b.writeUInt32LE(data, 40);
  const pcm = new Int16Array(b.buffer, b.byteOffset + 44, x.length * 2);
  for (let i = 0; i < x.length; i++) pcm[2 * i] = pcm[2 * i + 1] = Math.max(-32768, Math.min(32767, Math.round(x[i]! * 32767)));
  return b;
}

interface Timing {
  wall: number[];
  /** CPU time of this process per run (all threads; ffmpeg's own time is not included). */
  cpu: number[];
}

/** Wall and CPU milliseconds per run; CPU time shows the cost even when the machine is busy. */
async function timeRuns(fn: () => unknown, runs: number, warmup = 1): Promise<Timing> {
  for (let i = 0; i < warmup; i++) await fn();
  const t: Timing = { wall: [], cpu: [] };
  for (let i = 0; i < runs; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await fn();
    t.wall.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    t.cpu.push((c.user + c.system) / 1000);
  }
  return t;
}

function hasFfmpeg(): boolean {
  return (process.env.PATH ?? '').split(path.delimiter).some((d) => d && fs.existsSync(path.join(d, 'ffmpeg')));
}

export const suite: BenchSuite = {
  name: 'audio',
  description: `log-mel and decode+resample throughput on ${SECONDS / 60} min of speech (median of ${RUNS} runs)`,
  async run() {
    const audio = await speech(SECONDS);
    const audioMs = SECONDS * 1000;
    const rows: (string | number)[][] = [];
    const row = (what: string, t: Timing, extra = '') => {
      const m = median(t.wall);
      rows.push([what, fmt(m, 1), fmt(audioMs / m, 0) + '×', fmt(median(t.cpu), 1), extra]);
    };

    for (const threads of [1, 2]) {
      const mel = new MelExtractor({ nMels: 80, threads });
      row(`log-mel 80 × ${SECONDS} s, ${threads} thread${threads > 1 ? 's' : ''}`, await timeRuns(() => mel.logMel(audio), RUNS, 2));
    }
    const mel128 = new MelExtractor({ nMels: 128, threads: 2 });
    row(`log-mel 128 × ${SECONDS} s, 2 threads`, await timeRuns(() => mel128.logMel(audio), RUNS, 1));
    const windowed = new MelExtractor({ nMels: 80, threads: 2 });
    const offsets = Array.from({ length: SECONDS / 30 }, (_, i) => i * 30 * SAMPLE_RATE);
    row(`${offsets.length} × 30-s windows (windowsAsync), 2 threads`, await timeRuns(() => windowed.windowsAsync(audio, offsets), RUNS, 1));
    const one = new MelExtractor({ nMels: 80, threads: 1 });
    const singleMs = await timeRuns(() => one.window(audio, 0), 20, 3);
    rows.push(['one 30-s window, 1 thread (latency)', fmt(median(singleMs.wall), 2), fmt(30_000 / median(singleMs.wall), 0) + '×', fmt(median(singleMs.cpu), 2), '']);

    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wx-bench-audio-'));
    try {
      const rssBefore = rssMb();
      for (const rate of [44100, 48000]) {
        const file = path.join(dir, `speech-${rate}.wav`);
        const bytes = stereoWav(resample(audio, SAMPLE_RATE, rate), rate);
        fs.writeFileSync(file, bytes);
        row(`WAV ${rate / 1000} kHz s16 stereo → 16 kHz mono, file (loadAudio)`, await timeRuns(() => loadAudio(file), RUNS, 1));
        row(`WAV ${rate / 1000} kHz s16 stereo → 16 kHz mono, memory (decodeWav+resample)`, await timeRuns(() => {
          const d = decodeWav(bytes);
          return resample(d.samples, d.sampleRate, SAMPLE_RATE);
        }, RUNS, 1));
      }
      const native16 = path.join(dir, 'speech-16000.wav');
      fs.writeFileSync(native16, stereoWav(audio, SAMPLE_RATE));
      row('WAV 16 kHz s16 stereo → mono, file (no resampling)', await timeRuns(() => loadAudio(native16), RUNS, 1));
      const rssAfter = rssMb();
      if (hasFfmpeg()) {
        const mp3 = path.join(dir, 'speech.mp3');
        execFileSync('ffmpeg', ['-nostdin', '-loglevel', 'error', '-y', '-i', path.join(dir, 'speech-44100.wav'), '-c:a', 'libmp3lame', '-b:a', '128k', mp3]);
        row('MP3 44.1 kHz stereo 128k → 16 kHz mono (ffmpeg child)', await timeRuns(() => loadAudio(mp3), 5, 1), 'CPU: ours only');
      } else {
        rows.push(['MP3 via ffmpeg', 'n/a', 'n/a', 'n/a', 'ffmpeg not installed']);
      }
      console.log(table(['what', 'median ms', '× real time', 'CPU ms', 'note'], rows));
      console.log(`\nRSS ${fmt(rssMb(), 0)} MB (decode runs added ${fmt(rssAfter - rssBefore, 0)} MB), peak RSS ${fmt(peakRssMb(), 0)} MB; ` +
        `cores: ${os.availableParallelism()}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
};
