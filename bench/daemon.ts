// Daemon benchmarks: what a client waits for. Start-to-ready (an `initialize` reply), connect +
// initialize, a `status` round trip on an open connection, the whole `wx status` command,
// search through the daemon over 100,000 stored segments, warm `wx transcribe` of a 3-s clip,
// and the daemon's resident memory idle with the model loaded.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { WxClient } from '../daemon/ipc/client.js';
import { wxPaths, projectRoot } from '../daemon/paths.js';
import { TranscriptStore } from '../daemon/store/index.js';
import { corpus, fill } from './store.js';
import { fmt, median, quantile, table, type BenchSuite, sharedDir } from './util.js';

const shared = sharedDir();
const wxBin = path.join(projectRoot(), 'bin', 'wx.js');

function runWx(home: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [wxBin, ...args], { env: { ...process.env, WX_HOME: home, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d) => (err += d));
    child.once('exit', (code) => (code === 0 ? resolve(code) : reject(new Error(`wx ${args.join(' ')} exited ${code}: ${err}`))));
  });
}

async function stopDaemon(home: string): Promise<void> {
  const c = await WxClient.connect({ home });
  const pid = c.server.pid;
  await c.call('daemon.shutdown', undefined);
  await c.connection.closed;
  while (fs.existsSync(wxPaths(home).lock)) await new Promise((r) => setTimeout(r, 10));
  void pid;
}

async function timeMs(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

export const suite: BenchSuite = {
  name: 'daemon',
  description: 'daemon: start-to-ready, connect+initialize, status round trip, `wx status` wall, search over 100k segments via the socket, warm `wx transcribe` 3-s clip, idle RSS',
  async run() {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'wx-bench-daemon-'));
    const rows: (string | number)[][] = [];
    try {
      // Start to ready, no model configured (pure daemon start), 5 fresh homes.
      const starts: number[] = [];
      for (let i = 0; i < 5; i++) {
        const home = path.join(root, `start-${i}`);
        starts.push(await timeMs(async () => (await WxClient.connect({ home, autostart: true })).close()));
        await stopDaemon(home);
      }
      rows.push(['start to ready (spawn → initialize reply)', `${fmt(median(starts))} ms`, `p95 ${fmt(quantile(starts, 0.95))} ms`, 'median of 5']);

      // A home with the model configured and 100,000 stored segments.
      const home = path.join(root, 'main');
      const env = { WX_MODEL: path.join(shared, 'models', 'wx-tiny-en-synth') };
      fs.mkdirSync(home, { recursive: true });
      const store = TranscriptStore.open(wxPaths(home).db);
      fill(store, 1000, 100, corpus(7));
      const segments = store.counts().segments;
      store.close();
      process.env.WX_MODEL = env.WX_MODEL;
      const first = await WxClient.connect({ home, autostart: true });
      // Wait for the model through the protocol (status shows it once loaded).
      let status = await first.call('status', undefined);
      while (!status.model) {
        await new Promise((r) => setTimeout(r, 50));
        status = await first.call('status', undefined);
      }
      rows.push(['model load in the daemon (worker thread)', `${fmt(status.model.load_ms, 0)} ms`, '', status.model.name]);

      const connects: number[] = [];
      for (let i = 0; i < 50; i++) connects.push(await timeMs(async () => (await WxClient.connect({ home })).close()));
      rows.push(['connect + initialize', `${fmt(median(connects), 2)} ms`, `p95 ${fmt(quantile(connects, 0.95), 2)} ms`, '50 runs']);

      const trips: number[] = [];
      for (let i = 0; i < 1000; i++) trips.push(await timeMs(() => first.call('status', undefined)));
      rows.push(['`status` round trip, open connection', `${fmt(median(trips), 3)} ms`, `p95 ${fmt(quantile(trips, 0.95), 3)} ms`, '1000 runs (target ≤ 1 ms)']);

      const cli: number[] = [];
      for (let i = 0; i < 10; i++) cli.push(await timeMs(() => runWx(home, ['status', '--json'], env)));
      rows.push(['`wx status --json`, whole command', `${fmt(median(cli), 0)} ms`, `p95 ${fmt(quantile(cli, 0.95), 0)} ms`, '10 runs (target ≤ 60 ms)']);

      // The floor for a one-shot client: Node start + the IPC client module + one round trip.
      const clientModule = path.join(projectRoot(), 'dist', 'daemon', 'ipc', 'client.js');
      const script = `const { WxClient } = await import(${JSON.stringify(clientModule)}); const c = await WxClient.connect({ home: ${JSON.stringify(home)} }); await c.call('status'); await c.close();`;
      const minimal: number[] = [];
      for (let i = 0; i < 10; i++) {
        minimal.push(
          await timeMs(
            () =>
              new Promise<void>((resolve, reject) => {
                const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'ignore' });
                child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`minimal client exited ${code}`))));
              }),
          ),
        );
      }
      const bare: number[] = [];
      for (let i = 0; i < 10; i++) {
        bare.push(await timeMs(() => new Promise<void>((resolve) => spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' }).once('exit', () => resolve()))));
      }
      rows.push(['one-shot client: node + IPC client + `status`', `${fmt(median(minimal), 0)} ms`, `p95 ${fmt(quantile(minimal, 0.95), 0)} ms`, `10 runs; bare \`node -e 0\` ${fmt(median(bare), 0)} ms`]);

      const queries = ['the', 'w1a', 'w2b w3c', '"we w5a"', 'w9* -the', 'w1a OR w7c', 'wzzz', 'w4e'];
      for (const q of queries) await first.call('search', { query: q, limit: 20 });
      const searches: number[] = [];
      for (let i = 0; i < 200; i++) {
        const q = queries[i % queries.length]!;
        searches.push(await timeMs(() => first.call('search', { query: q, limit: 20 })));
      }
      rows.push([`search via the socket, ${segments.toLocaleString('en')} segments`, `${fmt(median(searches), 2)} ms`, `p95 ${fmt(quantile(searches, 0.95), 2)} ms`, '200 queries, limit 20 (target p95 ≤ 10 ms)']);

      const clip = path.join(shared, 'fixtures', 'fx-short.wav');
      await runWx(home, ['transcribe', clip], env);
      const tr: number[] = [];
      for (let i = 0; i < 5; i++) tr.push(await timeMs(() => runWx(home, ['transcribe', clip], env)));
      rows.push(['warm `wx transcribe` fx-short.wav (2.9 s), whole command', `${fmt(median(tr), 0)} ms`, `p95 ${fmt(quantile(tr, 0.95), 0)} ms`, '5 runs (target ≤ 500 ms)']);

      const idle = await first.call('status', undefined);
      rows.push(['daemon RSS idle, model loaded', `${fmt(idle.rss_mb, 0)} MB`, '', 'after the runs above']);
      await first.close();
      await stopDaemon(home);
      console.log(table(['measure', 'median', 'p95', 'notes'], rows));
    } finally {
      delete process.env.WX_MODEL;
      fs.rmSync(root, { recursive: true, force: true });
    }
  },
};
