// Dictation benchmarks through a real daemon: dev clips streamed at real-time pace in 100-ms
// frames, per mode: final latency (stop → final, daemon-measured and client wall), the partial
// cadence achieved, time to first text after speech starts, final WER (vs the true text and vs
// offline transcription of the same clips), and the daemon's CPU per real-time second. Then two
// sessions at once. WX_BENCH_DICTATION_CLIPS sets clips per mode (default 10; the full
// run is 100), WX_BENCH_DICTATION_MODES which modes, WX_BENCH_DICTATION_CONTEXT fit|full.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadAudio } from '../daemon/audio/index.js';
import { floatToS16 } from '../daemon/dictation/wav-writer.js';
import { WxClient } from '../daemon/ipc/client.js';
import type { DictationFinal } from '../daemon/ipc/protocol.js';
import { wordErrorRate } from '../daemon/pipeline/wer.js';
import { fmt, median, quantile, table, type BenchSuite, sharedDir } from './util.js';

const shared = sharedDir();
const FRAME = 1600;

interface Clip {
  file: string;
  text: string;
  start: number;
}

interface Run {
  final: DictationFinal;
  wallStopMs: number;
  partialGapsMs: number[];
}

/** CPU seconds (user + system) the process has used, from /proc (Linux) — null elsewhere. */
function cpuSeconds(pid: number): number | null {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return null;
  }
}

async function stream(c: WxClient, file: string, mode: 'low' | 'balanced' | 'high'): Promise<Run> {
  const pcm = floatToS16(await loadAudio(file));
  const { sessionId } = await c.call('dictation.start', { mode, source: 'client' });
  const times: number[] = [];
  const off = c.on('dictation.partial', (p) => {
    if (p.sessionId === sessionId) times.push(performance.now());
  });
  const n = Math.ceil(pcm.length / 2 / FRAME);
  const t0 = performance.now();
  const sent: Promise<unknown>[] = [];
  for (let i = 0; i < n; i++) {
    const wait = t0 + i * 100 - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    sent.push(c.call('dictation.audio', { sessionId, seq: i, pcm: pcm.subarray(i * FRAME * 2, Math.min(pcm.length, (i + 1) * FRAME * 2)).toString('base64') }));
  }
  await Promise.all(sent);
  const ts = performance.now();
  const final = await c.call('dictation.stop', { sessionId });
  const wallStopMs = performance.now() - ts;
  off();
  return { final, wallStopMs, partialGapsMs: times.slice(1).map((t, i) => t - times[i]!) };
}

export const suite: BenchSuite = {
  name: 'dictation',
  description: 'dictation: real-time dev clips per mode — final latency p50/p95, partial cadence, first text, WER vs truth/offline, daemon CPU per real-time second; two sessions at once',
  async run() {
    const manifest = JSON.parse(fs.readFileSync(path.join(shared, 'fixtures', 'speech', 'manifest.json'), 'utf8')) as { clips: { file: string; text: string; start: number }[] };
    const count = Number(process.env.WX_BENCH_DICTATION_CLIPS ?? 10);
    const clips: Clip[] = manifest.clips.slice(0, count).map((c) => ({ file: path.join(shared, 'fixtures', 'speech', c.file), text: c.text, start: c.start }));
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'wx-bench-dictation-'));
    // WX_BENCH_DICTATION_CONTEXT=full|fit overrides the dictation audio context (config default: fit).
    const context = process.env.WX_BENCH_DICTATION_CONTEXT;
    if (context) fs.writeFileSync(path.join(home, 'config.json'), JSON.stringify({ dictation: { audioContext: context } }));
    console.log(`dictation audio context: ${context ?? 'fit (default)'}`);
    process.env.WX_MODEL = path.join(shared, 'models', 'wx-tiny-en-synth');
    process.env.WX_HOME = home;
    const client = await WxClient.connect({ home, autostart: true });
    try {
      while ((await client.call('status', undefined)).model === null) await new Promise((r) => setTimeout(r, 100));
      const pid = client.server.pid;
      // Offline transcription of the same clips (the daemon's vad pipeline), for the WER delta.
      const offline = (await client.call('transcribe', { files: clips.map((c) => c.file), wait: true })).transcripts.map((t) => t?.transcript.text.trim() ?? '');
      const truth = clips.map((c) => c.text);
      const rows: (string | number)[][] = [];
      // WX_BENCH_DICTATION_MODES=balanced,low limits the modes measured.
      const modes = (process.env.WX_BENCH_DICTATION_MODES?.split(',') ?? ['low', 'balanced', 'high']) as ('low' | 'balanced' | 'high')[];
      for (const mode of modes) {
        const runs: Run[] = [];
        const cpu0 = cpuSeconds(pid);
        for (const clip of clips) runs.push(await stream(client, clip.file, mode));
        const cpu1 = cpuSeconds(pid);
        const audioS = runs.reduce((a, r) => a + r.final.stats.audio_s, 0);
        const lat = runs.map((r) => r.final.latency_ms);
        const wall = runs.map((r) => r.wallStopMs);
        const gaps = runs.flatMap((r) => r.partialGapsMs);
        const first = runs.map((r, i) => (r.final.stats.first_text_audio_s ?? NaN) - clips[i]!.start).filter(Number.isFinite);
        const finals = runs.map((r) => r.final.text);
        rows.push([
          mode,
          `${fmt(median(lat), 0)} / ${fmt(quantile(lat, 0.95), 0)} ms`,
          `${fmt(median(wall), 0)} / ${fmt(quantile(wall, 0.95), 0)} ms`,
          gaps.length ? `${fmt(median(gaps), 0)} ms` : '—',
          first.length ? `${fmt(median(first), 2)} / ${fmt(quantile(first, 0.95), 2)} s` : '—',
          `${fmt(wordErrorRate(truth, finals).wer * 100)}% (offline ${fmt(wordErrorRate(truth, offline).wer * 100)}%)`,
          `${fmt(wordErrorRate(offline, finals).wer * 100)}%`,
          cpu0 !== null && cpu1 !== null ? `${fmt((cpu1 - cpu0) / audioS, 2)} s/s` : '—',
        ]);
      }
      console.log(`${clips.length} dev clips per mode, streamed at real-time pace in 100-ms frames; medians / p95.\n`);
      console.log(
        table(['mode', 'final latency (daemon)', 'stop→final (client wall)', 'partial interval', 'first text after speech start', 'final WER vs truth', 'final vs offline', 'daemon CPU per audio s'], rows),
      );
      // Two sessions at once (balanced), each on its own connection.
      const other = await WxClient.connect({ home });
      try {
        const lat: number[] = [];
        for (let i = 0; i + 1 < clips.length; i += 2) {
          const [a, b] = await Promise.all([stream(client, clips[i]!.file, 'balanced'), stream(other, clips[i + 1]!.file, 'balanced')]);
          lat.push(a.final.latency_ms, b.final.latency_ms);
        }
        console.log(`\ntwo sessions at once (balanced, ${lat.length} finals): latency p50 ${fmt(median(lat), 0)} ms, p95 ${fmt(quantile(lat, 0.95), 0)} ms`);
        // The same with a watched-folder backlog running: the 4-min dev-long.wav queued twice
        // at backlog priority (copies, so they are two jobs).
        const backlogDir = path.join(home, 'backlog');
        fs.mkdirSync(backlogDir);
        const files = [0, 1].map((i) => {
          const f = path.join(backlogDir, `long-${i}.wav`);
          fs.copyFileSync(path.join(shared, 'fixtures', 'speech', 'dev-long.wav'), f);
          return f;
        });
        await client.call('transcribe', { files, wait: false, priority: 'backlog' });
        const busy: number[] = [];
        for (let i = 0; i + 1 < clips.length; i += 2) {
          const [a, b] = await Promise.all([stream(client, clips[i]!.file, 'balanced'), stream(other, clips[i + 1]!.file, 'balanced')]);
          busy.push(a.final.latency_ms, b.final.latency_ms);
        }
        const q = (await client.call('status', undefined)).queue;
        console.log(`two sessions at once + backlog of 2× dev-long.wav (balanced, ${busy.length} finals): latency p50 ${fmt(median(busy), 0)} ms, p95 ${fmt(quantile(busy, 0.95), 0)} ms (backlog after: ${q.queued} queued, ${q.running} running, ${q.done} done)`);
      } finally {
        await other.close();
      }
      await client.call('daemon.shutdown', undefined);
    } finally {
      await client.close().catch(() => {});
      fs.rmSync(home, { recursive: true, force: true });
    }
  },
};
