// VAD benchmarks: Silero v5 speed on dev-long.wav (4 min) — Silero's own graph frame by frame vs
// our block graph (same weights) frame by frame and in blocks on 1 and 2 threads — streaming
// per-frame latency, and memory. The pipeline budget is
// that VAD costs < 2% of a transcription: at the 120× real-time target that is ≥ 6000× for VAD.
import ort from 'onnxruntime-node';
import { loadAudio } from '../daemon/audio/index.js';
import { SileroVad, SpeechSegmenter, VAD_CONTEXT, VAD_FRAME, VAD_SAMPLE_RATE, regionsFromProbabilities, resolveSileroModel, streamSpeechChunks } from '../daemon/audio/vad.js';
import { fmt, median, peakRssMb, quantile, rssMb, table, type BenchSuite, sharedFile } from './util.js';

/** Silero's published graph run the way its own wrapper runs it: one frame (with context) per call. */
async function upstreamProbabilities(audio: Float32Array): Promise<Float32Array> {
  const session = await upstreamSession();
  const sr = new ort.Tensor('int64', BigInt64Array.from([BigInt(VAD_SAMPLE_RATE)]), []);
  const frames = Math.ceil(audio.length / VAD_FRAME);
  const out = new Float32Array(frames);
  const input = new Float32Array(VAD_CONTEXT + VAD_FRAME);
  let state = new Float32Array(256);
  for (let f = 0; f < frames; f++) {
    input.fill(0);
    const from = Math.max(0, f * VAD_FRAME - VAD_CONTEXT);
    input.set(audio.subarray(from, Math.min(audio.length, (f + 1) * VAD_FRAME)), from - (f * VAD_FRAME - VAD_CONTEXT));
    const r = await session.run({ input: new ort.Tensor('float32', input, [1, input.length]), state: new ort.Tensor('float32', state, [2, 1, 128]), sr });
    out[f] = (r.output!.data as Float32Array)[0]!;
    state = Float32Array.from(r.stateN!.data as Float32Array);
  }
  return out;
}

let upstream: Promise<ort.InferenceSession> | undefined;
const upstreamSession = () =>
  (upstream ??= ort.InferenceSession.create(resolveSileroModel(), { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all' }));

/** Wall and process CPU milliseconds of each run (CPU includes worker threads). */
async function measure(fn: () => Promise<unknown>, runs: number): Promise<{ wall: number[]; cpu: number[] }> {
  await fn();
  const wall: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < runs; i++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    await fn();
    wall.push(performance.now() - t0);
    const c = process.cpuUsage(c0);
    cpu.push((c.user + c.system) / 1000);
  }
  return { wall, cpu };
}

export const suite: BenchSuite = {
  name: 'vad',
  description: "Silero VAD v5 on dev-long.wav: × real time (Silero's graph vs our block graph, 1-2 threads), streaming latency, memory",
  async run() {
    const audio = await loadAudio(sharedFile('fixtures', 'speech', 'dev-long.wav'));
    const seconds = audio.length / VAD_SAMPLE_RATE;
    const rssBefore = rssMb();
    const t0 = performance.now();
    const vad = await SileroVad.load();
    const loadMs = performance.now() - t0;
    const rssLoaded = rssMb();
    const vad2 = await SileroVad.load({ threads: 2 });
    try {
      const runs = 5;
      const rows: (string | number)[][] = [];
      const add = (name: string, r: { wall: number[]; cpu: number[] }) => {
        const wall = median(r.wall);
        const cpu = median(r.cpu);
        rows.push([name, fmt(wall, 0), fmt(seconds / (wall / 1000), 0) + '×', fmt(cpu, 0), fmt(seconds / (cpu / 1000), 0) + '×', fmt((100 * wall) / ((seconds / 120) * 1000), 1) + '%']);
      };
      add("Silero's own graph, 1 frame per call", await measure(() => upstreamProbabilities(audio), 3));
      add('our graph, 1 frame per call (stream)', await measure(() => vad.probabilitiesSequential(audio), runs));
      add('our graph, 512-frame blocks, 1 thread', await measure(() => vad.probabilities(audio), runs));
      add('our graph, 512-frame blocks, 2 threads', await measure(() => vad2.probabilities(audio), runs));
      // Time until the first chunk is final, i.e. until transcription could start.
      const firstChunk: number[] = [];
      const allChunks: number[] = [];
      for (let run = 0; run < runs + 1; run++) {
        const t = performance.now();
        let first = NaN;
        for await (const _chunk of streamSpeechChunks(vad, audio)) {
          if (Number.isNaN(first)) first = performance.now() - t;
        }
        if (run > 0) {
          firstChunk.push(first);
          allChunks.push(performance.now() - t);
        }
      }
      const probs = await vad.probabilities(audio);
      add('regions from probabilities', await measure(async () => regionsFromProbabilities(probs, audio.length), runs));
      console.log(`dev-long.wav, ${fmt(seconds, 1)} s; medians of ${runs} runs (3 for Silero's graph); "share" = wall time as a share of a 120× real-time transcription\n`);
      console.log(table(['pass', 'wall ms', '× real time', 'CPU ms', '× per CPU-s', 'share @120×'], rows));
      console.log(`\nstreamSpeechChunks: first ≤30-s chunk final after ${fmt(median(firstChunk), 1)} ms, all chunks after ${fmt(median(allChunks), 0)} ms (1 thread)`);

      // Streaming: one model call per 32-ms frame, as dictation does.
      const perFrame: number[] = [];
      const frames = Math.floor(audio.length / VAD_FRAME);
      for (let run = 0; run < 3; run++) {
        const stream = vad.createStream();
        for (let f = 0; f < frames; f++) {
          const frame = audio.subarray(f * VAD_FRAME, (f + 1) * VAD_FRAME);
          const s = performance.now();
          await stream.push(frame);
          if (run > 0) perFrame.push((performance.now() - s) * 1000);
        }
      }
      const segTimes = await measure(async () => {
        const seg = new SpeechSegmenter(vad);
        for (let i = 0; i < audio.length; i += 320) await seg.push(audio.subarray(i, i + 320));
        seg.flush();
      }, 3);
      console.log('\nstreaming (VadStream.push of one 512-sample frame; SpeechSegmenter fed 20-ms pieces)\n');
      console.log(
        table(
          ['frame latency p50 µs', 'p95 µs', 'p99 µs', 'frame budget µs', 'segmenter × real time', 'CPU per real-time s'],
          [[fmt(quantile(perFrame, 0.5), 0), fmt(quantile(perFrame, 0.95), 0), fmt(quantile(perFrame, 0.99), 0), fmt((VAD_FRAME / VAD_SAMPLE_RATE) * 1e6, 0), fmt(seconds / (median(segTimes.wall) / 1000), 0) + '×', fmt((median(segTimes.cpu) / seconds), 2) + ' ms']],
        ),
      );
      console.log(`\nmemory: model load ${fmt(loadMs, 0)} ms, RSS +${fmt(rssLoaded - rssBefore, 1)} MB for one session, now ${fmt(rssMb(), 0)} MB, peak ${fmt(peakRssMb(), 0)} MB`);
    } finally {
      await vad.close();
      await vad2.close();
      if (upstream) await (await upstream).release();
    }
  },
};
