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
      const seq: number[] = [];
      const par: number[] = [];
      const steps = { seq: 0, par: 0, rows: { seq: 0, par: 0 } };
      for (let i = 0; i < runs; i++) {
        let s0 = { ...t.scheduler.stats };
        let t0 = performance.now();
        for (const r of recordings) await t.transcribeSamples(r, { priority: 'backlog' });
        seq.push((performance.now() - t0) / 1000);
        steps.seq = t.scheduler.stats.decoderSteps - s0.decoderSteps;
        steps.rows.seq = t.scheduler.stats.rowSteps - s0.rowSteps;
        s0 = { ...t.scheduler.stats };
        t0 = performance.now();
        await Promise.all(recordings.map((r) => t.transcribeSamples(r, { priority: 'backlog' })));
        par.push((performance.now() - t0) / 1000);
        steps.par = t.scheduler.stats.decoderSteps - s0.decoderSteps;
        steps.rows.par = t.scheduler.stats.rowSteps - s0.rowSteps;
      }
      console.log(table(
        ['mode', 'wall s (median)', 'audio s / s', 'decoder calls', 'rows per call'],
        [
          ['one after another', fmt(median(seq), 2), fmt(audioS / median(seq), 0), steps.seq, fmt(steps.rows.seq / Math.max(1, steps.seq), 2)],
          ['8 at once', fmt(median(par), 2), fmt(audioS / median(par), 0), steps.par, fmt(steps.rows.par / Math.max(1, steps.par), 2)],
        ],
      ));
      console.log(`aggregate throughput gain: ${fmt(median(seq) / median(par), 2)}× (${fmt(audioS, 0)} s of audio in 8 recordings)`);

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
