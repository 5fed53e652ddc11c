// End to end: `wx transcribe --no-daemon` on dev-long.wav (4 min), INT8 and FP32, both
// strategies, warm (both models loaded in-process, run alternately) and cold (a whole `wx`
// process), and the peer (whisper.cpp on the same weights, ../shared/peer/bench.sh) run
// alternately with our cold INT8 vad run; speeds are reported as ratios measured pair by pair.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { importModel } from '../daemon/engine/import.js';
import { Transcriber } from '../daemon/pipeline/index.js';
import { wordErrorRate } from '../daemon/pipeline/wer.js';
import type { Precision } from '../daemon/engine/manifest.js';
import { fmt, median, table, type BenchSuite, sharedDir } from './util.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const shared = sharedDir();
const longWav = path.join(shared, 'fixtures', 'speech', 'dev-long.wav');

interface LongManifest {
  long: { duration: number; segments: { text: string }[] };
}

function peer(quant: string): { wall_s: number; rss_mb: number; encode_ms_per_window: number; decode_ms_per_token: number; text: string } | undefined {
  const script = path.join(shared, 'peer', 'bench.sh');
  if (!fs.existsSync(script)) return undefined;
  const transcript = path.join(os.tmpdir(), `wx-peer-${process.pid}.txt`);
  const r = spawnSync('bash', [script, longWav, quant, '2'], { encoding: 'utf8', env: { ...process.env, TRANSCRIPT: transcript } });
  if (r.status !== 0) {
    console.log(`peer ${quant} unavailable: ${r.stderr.trim().split('\n').pop()}`);
    return undefined;
  }
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
  out.text = fs.existsSync(transcript) ? fs.readFileSync(transcript, 'utf8') : '';
  fs.rmSync(transcript, { force: true });
  return out;
}

function coldRun(home: string, precision: Precision, strategy: string): { wallS: number; text: string } {
  const t0 = performance.now();
  const out = execFileSync(process.execPath, [path.join(root, 'bin', 'wx.js'), 'transcribe', '--no-daemon', '--model', 'tiny', '--precision', precision, '--strategy', strategy, '--threads', '2', longWav], {
    encoding: 'utf8',
    env: { ...process.env, WX_HOME: home },
    maxBuffer: 16 << 20,
  });
  return { wallS: (performance.now() - t0) / 1000, text: out };
}

export const suite: BenchSuite = {
  name: 'e2e',
  description: 'wx transcribe on dev-long.wav (242 s), 2 threads: warm and cold × real time, WER, and the peer side by side',
  async run(args) {
    const runs = args.includes('--quick') ? 3 : 5;
    const manifest = JSON.parse(fs.readFileSync(path.join(shared, 'fixtures', 'speech', 'manifest.json'), 'utf8')) as LongManifest;
    const audioS = manifest.long.duration;
    const ref = manifest.long.segments.map((s) => s.text).join(' ');
    const wer = (text: string) => 100 * wordErrorRate(ref, text, { normalize: true }).wer;
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'wx-bench-e2e-'));
    try {
      await importModel(path.join(shared, 'models', 'wx-tiny-en-synth'), { home, name: 'tiny', precision: 'both' });
      const rows: (string | number)[][] = [];
      // Warm: both precisions loaded in one process and run alternately, so each INT8 run has an
      // FP32 partner measured next to it (the machine's speed drifts by 10–30% over minutes).
      const transcribers = {
        int8: await Transcriber.open({ model: 'tiny', precision: 'int8', home, threads: 2 }),
        fp32: await Transcriber.open({ model: 'tiny', precision: 'fp32', home, threads: 2 }),
      };
      const speedups: string[] = [];
      try {
        for (const strategy of ['vad', 'sequential'] as const) {
          const times = { int8: [] as number[], fp32: [] as number[] };
          const texts = { int8: '', fp32: '' };
          for (let i = 0; i < runs + 1; i++) {
            for (const precision of ['int8', 'fp32'] as const) {
              const t0 = performance.now();
              texts[precision] = (await transcribers[precision].transcribeFile(longWav, { strategy })).text;
              if (i > 0) times[precision].push((performance.now() - t0) / 1000);
            }
          }
          for (const precision of ['int8', 'fp32'] as const) {
            const cold = coldRun(home, precision, strategy);
            const warm = median(times[precision]);
            rows.push([precision, strategy, fmt(warm, 2), fmt(audioS / warm, 0), fmt(cold.wallS, 2), fmt(audioS / cold.wallS, 0), fmt(wer(texts[precision]), 1)]);
          }
          const ratios = times.int8.map((t, i) => times.fp32[i]! / t);
          speedups.push(`${strategy} ${fmt(median(ratios), 2)}× (pairs ${fmt(Math.min(...ratios), 2)}–${fmt(Math.max(...ratios), 2)})`);
        }
        // Beam search (5 hypotheses per window), INT8 warm only: what the accuracy costs.
        const times: number[] = [];
        let text = '';
        for (let i = 0; i < Math.min(runs, 3) + 1; i++) {
          const t0 = performance.now();
          text = (await transcribers.int8.transcribeFile(longWav, { strategy: 'vad', beamSize: 5 })).text;
          if (i > 0) times.push((performance.now() - t0) / 1000);
        }
        rows.push(['int8', 'vad, beam 5', fmt(median(times), 2), fmt(audioS / median(times), 0), '—', '—', fmt(wer(text), 1)]);
      } finally {
        await Promise.all([transcribers.int8.close(), transcribers.fp32.close()]);
      }
      console.log(table(['precision', 'strategy', 'warm s', 'warm ×RT', 'cold s', 'cold ×RT', 'WER %'], rows));
      console.log(`INT8 speed-up over FP32, warm (median of ${runs} alternating pairs): ${speedups.join('; ')}`);

      // Side by side with the peer, alternating: wx (cold process, INT8, vad) / whisper.cpp f16 / q8_0.
      const pairs: { wx: number; f16?: number; q8?: number }[] = [];
      let peerText = '';
      let peerInfo: ReturnType<typeof peer>;
      for (let i = 0; i < runs; i++) {
        const ours = coldRun(home, 'int8', 'vad').wallS;
        const f16 = peer('f16');
        const q8 = peer('q8_0');
        if (f16) {
          peerText = f16.text;
          peerInfo = f16;
        }
        pairs.push({ wx: ours, ...(f16 ? { f16: f16.wall_s } : {}), ...(q8 ? { q8: q8.wall_s } : {}) });
        if (!f16 && !q8) break;
      }
      const f16s = pairs.filter((p) => p.f16 !== undefined);
      if (f16s.length === 0) {
        console.log('\npeer not available: no side-by-side ratio');
        return;
      }
      const q8s = pairs.filter((p) => p.q8 !== undefined);
      console.log(`\nside by side, ${pairs.length} alternating runs (whole processes, cold):`);
      console.log(table(['engine', 'median s', '×RT', 'wx speed-up (median of pair ratios)'], [
        ['wx int8 vad', fmt(median(pairs.map((p) => p.wx)), 2), fmt(audioS / median(pairs.map((p) => p.wx)), 0), '—'],
        ['whisper.cpp f16', fmt(median(f16s.map((p) => p.f16!)), 2), fmt(audioS / median(f16s.map((p) => p.f16!)), 0), `${fmt(median(f16s.map((p) => p.f16! / p.wx)), 2)}×`],
        ...(q8s.length ? [['whisper.cpp q8_0', fmt(median(q8s.map((p) => p.q8!)), 2), fmt(audioS / median(q8s.map((p) => p.q8!)), 0), `${fmt(median(q8s.map((p) => p.q8! / p.wx)), 2)}×`]] : []),
      ]));
      if (peerInfo) console.log(`peer f16: encoder ${peerInfo.encode_ms_per_window} ms/window, decoder ${peerInfo.decode_ms_per_token} ms/token, RSS ${peerInfo.rss_mb} MB, WER ${fmt(wer(peerText), 1)}%`);
    } finally {
      fs.rmSync(home, { recursive: true, force: true });
    }
  },
};
