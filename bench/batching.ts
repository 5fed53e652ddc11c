// Continuous batching across recordings: 8 recordings submitted at once through one Transcriber
// (its scheduler shares encoder runs and decoder steps between them) against the same 8 one
// after another; and the latency of a 3-s interactive clip submitted during a backlog.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { importModel } from '../daemon/engine/import.js';
import { Transcriber } from '../daemon/pipeline/index.js';
import { loadAudio } from '../daemon/audio/index.js';
import { fmt, median, table, type BenchSuite, sharedDir } from './util.js';

const shared = sharedDir();

export const suite: BenchSuite = {
  name: 'batching',
  description: '8 recordings at once vs one after another (INT8, 2 threads); interactive latency during a backlog',
  async run(args) {
    const runs = args.includes('--quick') ? 2 : 3;
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'wx-bench-batch-'));
    try {
      await importModel(path.join(shared, 'models', 'wx-tiny-en-synth'), { home, name: 'tiny', precision: 'int8' });
      const t = await Transcriber.open({ model: 'tiny', precision: 'int8', home, threads: 2 });
      // Eight ~30-s recordings: consecutive dev clips joined with their own silences.
      const clips = await Promise.all(Array.from({ length: 80 }, (_, i) => loadAudio(path.join(shared, 'fixtures', 'speech', `dev-${String(i).padStart(3, '0')}.wav`))));
      const recordings: Float32Array[] = [];
      for (let r = 0; r < 8; r++) {
        const parts = clips.slice(r * 10, r * 10 + 10);
        const out = new Float32Array(parts.reduce((s, p) => s + p.length, 0));
        parts.reduce((at, p) => (out.set(p, at), at + p.length), 0);
        recordings.push(out);
      }
      const audioS = recordings.reduce((s, r) => s + r.length, 0) / 16000;
      await t.transcribeSamples(recordings[0]!); // warm-up
      // Per mode and run: wall s, and the scheduler's own account of it (encoder runs, decoder
      // steps), so the gain of each part shows — batching can only save decoder time here.
      interface Run { wall: number; encoder: number; decoder: number; steps: number; rows: number }
      const modes: Record<'seq' | 'par', Run[]> = { seq: [], par: [] };
      const measure = async (mode: 'seq' | 'par', work: () => Promise<unknown>) => {
        const s0 = { ...t.scheduler.stats };
        const t0 = performance.now();
        await work();
        const s1 = t.scheduler.stats;
        modes[mode].push({
          wall: (performance.now() - t0) / 1000,
          encoder: (s1.encoderMs - s0.encoderMs) / 1000,
          decoder: (s1.decoderMs - s0.decoderMs) / 1000,
          steps: s1.decoderSteps - s0.decoderSteps,
          rows: s1.rowSteps - s0.rowSteps,
        });
      };
      for (let i = 0; i < runs; i++) {
        await measure('seq', async () => {
          for (const r of recordings) await t.transcribeSamples(r, { priority: 'backlog' });
        });
        await measure('par', () => Promise.all(recordings.map((r) => t.transcribeSamples(r, { priority: 'backlog' }))));
      }
      const med = (mode: 'seq' | 'par', k: keyof Run) => median(modes[mode].map((r) => r[k]));
      const row = (label: string, mode: 'seq' | 'par') => [
        label,
        fmt(med(mode, 'wall'), 2),
        fmt(audioS / med(mode, 'wall'), 0),
        fmt(med(mode, 'encoder'), 2),
        fmt(med(mode, 'decoder'), 2),
        fmt(med(mode, 'wall') - med(mode, 'encoder') - med(mode, 'decoder'), 2),
        med(mode, 'steps'),
        fmt(med(mode, 'rows') / Math.max(1, med(mode, 'steps')), 2),
      ];
      console.log(table(
        ['mode', 'wall s (median)', 'audio s / s', 'encoder s', 'decoder s', 'other s', 'decoder calls', 'rows per call'],
        [row('one after another', 'seq'), row('8 at once', 'par')],
      ));
      console.log(`aggregate throughput gain: ${fmt(med('seq', 'wall') / med('par', 'wall'), 2)}× (${fmt(audioS, 0)} s of audio in 8 recordings); ` +
        `by part: encoder ${fmt(med('seq', 'encoder') / med('par', 'encoder'), 2)}×, decoder ${fmt(med('seq', 'decoder') / med('par', 'decoder'), 2)}×`);

      // Interactive 3-s clip: idle vs submitted while the 8 recordings run as backlog.
      const clip = clips[90] ?? clips[0]!;
      const idle: number[] = [];
      const busy: number[] = [];
      for (let i = 0; i < runs + 1; i++) {
        let t0 = performance.now();
        await t.transcribeSamples(clip, { priority: 'interactive' });
        if (i > 0) idle.push(performance.now() - t0);
        const backlog = Promise.all(recordings.map((r) => t.transcribeSamples(r, { priority: 'backlog' })));
        while (t.scheduler.stats.activeRows === 0) await new Promise<void>((r) => setImmediate(r));
        t0 = performance.now();
        await t.transcribeSamples(clip, { priority: 'interactive' });
        if (i > 0) busy.push(performance.now() - t0);
        await backlog;
      }
      console.log(`interactive 3-s clip: idle ${fmt(median(idle), 0)} ms, during the backlog ${fmt(median(busy), 0)} ms (${fmt(median(busy) / median(idle), 2)}× idle)`);
      await t.close();
    } finally {
      fs.rmSync(home, { recursive: true, force: true });
    }
  },
};
