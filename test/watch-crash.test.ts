// Issue 7's end-to-end scenario with a real daemon: ten recordings land in a watched folder (some
// written slowly, some renamed after copying) plus a corrupt file; the daemon is killed with
// SIGKILL while jobs run; after a restart every recording is transcribed exactly once, the
// corrupt one failed with its reason, and the database passes its integrity check.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WxClient } from '../daemon/ipc/client.js';
import { TranscriptStore } from '../daemon/store/index.js';
import { alive, killDaemonAndRemove, lockedDaemonPid, pathsOf, requireBuiltDaemon, tempHome, untilStatus, wx } from './daemon-helpers.js';
import { sharedPath, tinyModelDir } from './shared.js';

let home: string;
let dir: string;
let env: NodeJS.ProcessEnv;


const daemonPid = (): number => lockedDaemonPid(home);

beforeAll(() => {
  requireBuiltDaemon();
  home = tempHome();
  dir = path.join(home, 'inbox');
  fs.mkdirSync(dir);
  fs.writeFileSync(pathsOf(home).config, JSON.stringify({ jobs: { maxAttempts: 2, retryBaseMs: 100 }, watch: { stabilityMs: 300, presencePollMs: 100 } }));
  env = { WX_MODEL: tinyModelDir() };
});

afterAll(() => {
  killDaemonAndRemove(home);
});

describe('watched folder survives kill -9', () => {
  it('ten recordings → ten transcripts, each once; a corrupt file → one failed job', async () => {
    const add = await wx(home, ['watch', 'add', dir, '--formats', 'txt'], env);
    expect(add.code, add.stderr).toBe(0);
    const client = await WxClient.connect({ home });
    const clips = Array.from({ length: 10 }, (_, i) => sharedPath('fixtures', 'speech', `dev-${String(20 + i).padStart(3, '0')}.wav`));
    for (const [i, clip] of clips.entries()) {
      const target = path.join(dir, `rec-${i}.wav`);
      if (i < 3) {
        // Written slowly, in chunks.
        const bytes = fs.readFileSync(clip);
        const fd = fs.openSync(target, 'w');
        for (let c = 0; c < 4; c++) {
          fs.writeSync(fd, bytes.subarray((c * bytes.length) / 4, ((c + 1) * bytes.length) / 4));
          await client.call('status', undefined);
        }
        fs.closeSync(fd);
      } else if (i < 6) {
        // Copied, then renamed.
        fs.copyFileSync(clip, path.join(dir, `copy-${i}.wav`));
        fs.renameSync(path.join(dir, `copy-${i}.wav`), target);
      } else {
        fs.copyFileSync(clip, target);
      }
    }
    fs.writeFileSync(path.join(dir, 'corrupt.wav'), Buffer.concat([Buffer.from('RIFF'), Buffer.alloc(200, 7)]));

    // Kill the daemon while jobs run.
    await untilStatus(client, (s) => s.queue.running > 0 && s.queue.done >= 1, 'jobs to be running', 180_000);
    const pid = daemonPid();
    process.kill(pid, 'SIGKILL');
    await client.close().catch(() => undefined);
    while (alive(pid)) await new Promise((r) => setImmediate(r));

    const start = await wx(home, ['daemon', 'start'], env);
    expect(start.code, start.stderr).toBe(0);
    const c2 = await WxClient.connect({ home });
    const s = await untilStatus(c2, (st) => st.queue.done >= 10 && st.queue.failed >= 1 && st.queue.queued === 0 && st.queue.running === 0, 'all jobs', 180_000);
    const jobs = await c2.call('jobs.list', { limit: 100 });
    const failures = JSON.stringify(jobs.filter((j) => j.state === 'failed').map((j) => [j.path, j.error]));
    expect(s.queue.done, failures).toBe(10);
    expect(s.queue.failed, failures).toBe(1);
    const done = jobs.filter((j) => j.state === 'done');
    expect(new Set(done.map((j) => j.path)).size).toBe(10);
    expect(new Set(done.map((j) => j.path))).toEqual(new Set(clips.map((_, i) => path.join(dir, `rec-${i}.wav`))));
    const failed = jobs.filter((j) => j.state === 'failed');
    expect(failed).toHaveLength(1);
    expect(failed[0]!.error).toContain('corrupt.wav');
    for (let i = 0; i < 10; i++) expect(fs.readFileSync(path.join(dir, `rec-${i}.txt`), 'utf8').trim().length).toBeGreaterThan(0);
    await c2.close();
    const stop = await wx(home, ['daemon', 'stop'], env);
    expect(stop.code, stop.stderr).toBe(0);

    const store = TranscriptStore.open(pathsOf(home).db);
    try {
      expect(store.integrityCheck()).toBe('ok');
    } finally {
      store.close();
    }
  });
});
