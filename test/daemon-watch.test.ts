// Watched folders through a real daemon: `wx watch add` → files written slowly, renamed, or
// corrupt → one job per content, sidecar outputs, failures with reasons; the folder going
// away shows in `wx status`; re-armed after a restart.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WxClient } from '../daemon/ipc/client.js';
import { killDaemonAndRemove, pathsOf, requireBuiltDaemon, tempHome, untilStatus, wx } from './daemon-helpers.js';
import { sharedPath, tinyModelDir } from './shared.js';

let home: string;
let dir: string;
let env: NodeJS.ProcessEnv;


beforeAll(() => {
  requireBuiltDaemon();
  home = tempHome();
  dir = path.join(home, 'recordings in');
  fs.mkdirSync(dir);
  fs.writeFileSync(pathsOf(home).config, JSON.stringify({ jobs: { maxAttempts: 1 }, watch: { stabilityMs: 300, presencePollMs: 100 } }));
  env = { WX_MODEL: tinyModelDir() };
});

afterAll(() => {
  killDaemonAndRemove(home);
});

describe('watched folders in the daemon', () => {
  it('back-fills, takes slow writes once complete, follows renames, reports a corrupt file', async () => {
    fs.copyFileSync(sharedPath('fixtures', 'fx-short.wav'), path.join(dir, 'existing.wav'));
    const add = await wx(home, ['watch', 'add', dir, '--formats', 'txt,srt', '--json'], env);
    expect(add.code, add.stderr).toBe(0);
    expect(JSON.parse(add.stdout)).toMatchObject({ dir, formats: ['txt', 'srt'], state: 'ok' });
    const again = await wx(home, ['watch', 'add', dir], env);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('already watched');

    const client = await WxClient.connect({ home });
    // Written slowly, in chunks, under a partial-download name first.
    const multi = fs.readFileSync(sharedPath('fixtures', 'fx-multi.wav'));
    const part = path.join(dir, 'meeting.wav.part');
    const fd = fs.openSync(part, 'w');
    for (let i = 0; i < 4; i++) {
      fs.writeSync(fd, multi.subarray((i * multi.length) / 4, ((i + 1) * multi.length) / 4));
      await client.call('status', undefined); // a round trip between chunks
    }
    fs.closeSync(fd);
    fs.renameSync(part, path.join(dir, 'meeting.wav'));
    fs.writeFileSync(path.join(dir, 'broken.wav'), 'RIFF....WAVEfmt nonsense');

    const s = await untilStatus(client, (st) => st.queue.done + st.queue.failed >= 3 && st.queue.queued === 0 && st.queue.running === 0, 'three jobs');
    expect(s.queue).toMatchObject({ done: 2, failed: 1 });
    expect(s.watch).toEqual([expect.objectContaining({ dir, state: 'ok' })]);
    expect(s.last_error?.path).toBe(path.join(dir, 'broken.wav'));
    for (const name of ['existing', 'meeting']) {
      expect(fs.readFileSync(path.join(dir, `${name}.txt`), 'utf8').trim().length).toBeGreaterThan(0);
      expect(fs.readFileSync(path.join(dir, `${name}.srt`), 'utf8')).toContain('-->');
    }
    const failed = await client.call('jobs.list', { state: 'failed' });
    expect(failed).toEqual([expect.objectContaining({ path: path.join(dir, 'broken.wav') })]);
    expect(failed[0]!.error).toContain('broken.wav');

    // A rename is the same recording: no new job, the path follows.
    fs.renameSync(path.join(dir, 'existing.wav'), path.join(dir, 'renamed.wav'));
    const found = await (async () => {
      for (;;) {
        const jobs = await client.call('jobs.list', {});
        if (jobs.some((j) => j.path === path.join(dir, 'renamed.wav'))) return jobs;
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    expect(found).toHaveLength(3);
    await client.close();
  });

  it('a vanished folder shows as missing, comes back, and survives a daemon restart', async () => {
    const client = await WxClient.connect({ home });
    const away = `${dir}-away`;
    fs.renameSync(dir, away);
    await untilStatus(client, (s) => s.watch[0]?.state !== 'ok', 'the folder to be reported missing', 10_000);
    const human = await wx(home, ['status'], env);
    expect(human.stdout).toContain(`watching   ${dir} —`);
    fs.renameSync(away, dir);
    await untilStatus(client, (s) => s.watch[0]?.state === 'ok', 'the folder to come back', 10_000);
    await client.close();

    const restart = await wx(home, ['daemon', 'restart'], env);
    expect(restart.code, restart.stderr).toBe(0);
    fs.copyFileSync(sharedPath('fixtures', 'fx-short.wav'), path.join(dir, 'after-restart.wav'));
    fs.appendFileSync(path.join(dir, 'after-restart.wav'), Buffer.alloc(4));
    const c2 = await WxClient.connect({ home });
    const after = await untilStatus(c2, (s) => s.queue.done === 3 && s.queue.queued === 0 && s.queue.running === 0, 'the new file after restart');
    expect(fs.existsSync(path.join(dir, 'after-restart.txt'))).toBe(true);
    // The back-fill at start saw broken.wav again (same content): it stays one failed job.
    expect(after.queue.failed).toBe(1);
    expect(await c2.call('jobs.list', {})).toHaveLength(4);
    await c2.close();

    const rm = await wx(home, ['watch', 'rm', dir], env);
    expect(rm.code, rm.stderr).toBe(0);
    const ls = await wx(home, ['watch', 'ls', '--json'], env);
    expect(JSON.parse(ls.stdout)).toEqual([]);
    const rmAgain = await wx(home, ['watch', 'rm', dir], env);
    expect(rmAgain.code).toBe(1);
    expect(rmAgain.stderr).toContain('is not watched');
  });
});
