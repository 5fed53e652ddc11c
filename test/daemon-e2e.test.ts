// End to end with the real model: `wx transcribe` through a real daemon (the model warm in its
// worker thread), `wx search` finding the words, `wx status --json` showing the model, two CLIs
// at once, a restart keeping every transcript, a kill -9 with queued work recovered.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WxClient } from '../daemon/ipc/client.js';
import { TranscriptStore } from '../daemon/store/index.js';
import { alive, killDaemonAndRemove, pathsOf, requireBuiltDaemon, tempHome, wx } from './daemon-helpers.js';
import { sharedPath, tinyModelDir } from './shared.js';

const fixtures = JSON.parse(fs.readFileSync(sharedPath('fixtures', 'fixtures.json'), 'utf8')) as Record<string, { text: string }>;
const short = sharedPath('fixtures', 'fx-short.wav');
const multi = sharedPath('fixtures', 'fx-multi.wav');
let home: string;
let env: NodeJS.ProcessEnv;


/** Words of the true text that the model also produced (the test model is not perfect). */
function wordsFound(truth: string, output: string): string[] {
  const out = new Set(output.toLowerCase().match(/[a-z]{4,}/g) ?? []);
  return (truth.toLowerCase().match(/[a-z]{4,}/g) ?? []).filter((w) => out.has(w));
}

beforeAll(() => {
  requireBuiltDaemon();
  home = tempHome();
  env = { WX_MODEL: tinyModelDir() };
});

afterAll(async () => {
  killDaemonAndRemove(home);
});

describe('daemon end to end (real model)', () => {
  let shortText = '';

  it('transcribes through the daemon, same text as in-process, then finds it with wx search', async () => {
    const viaDaemon = await wx(home, ['transcribe', short], env);
    expect(viaDaemon.code, viaDaemon.stderr).toBe(0);
    expect(viaDaemon.stderr).toContain('started the daemon');
    shortText = viaDaemon.stdout.trim();
    const inProcess = await wx(home, ['transcribe', '--no-daemon', short], env);
    expect(inProcess.code, inProcess.stderr).toBe(0);
    expect(shortText).toBe(inProcess.stdout.trim());
    const words = wordsFound(fixtures['fx-short']!.text, shortText);
    expect(words.length).toBeGreaterThan(0);

    const search = await wx(home, ['search', words[0]!, '--json'], env);
    expect(search.code, search.stderr).toBe(0);
    const hits = JSON.parse(search.stdout);
    expect(hits.length).toBeGreaterThan(0);
    expect(hits[0].path).toBe(short);
    expect(hits[0].snippet.toLowerCase()).toContain(`[${words[0]}]`);
    expect(typeof hits[0].score).toBe('number');
    const human = await wx(home, ['search', words[0]!], env);
    expect(human.stdout).toContain(`${short}  00:00:00`);

    const none = await wx(home, ['search', 'zzzqqqxxx'], env);
    expect(none.code).toBe(0);
    expect(none.stdout).toContain('no matches');
  });

  it('wx status --json shows the loaded model and the finished job', async () => {
    const r = await wx(home, ['status', '--json'], env);
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout);
    expect(s.model.name).toBe('wx-tiny-en-synth');
    expect(s.model.precision).toBe('int8');
    expect(s.model.backend).toBe('onnxruntime-cpu');
    expect(s.model.load_ms).toBeGreaterThan(0);
    expect(s.model_loading).toBeNull();
    expect(s.queue.done).toBe(1);
    expect(s.queue.failed).toBe(0);
    // The finished job gives a speed for the backlog ETA; with nothing queued there is no ETA.
    expect(s.queue.speed_x).toBeGreaterThan(0);
    expect(s.queue.eta_s).toBeNull();
    const jobs = JSON.parse((await wx(home, ['jobs', '--json'], env)).stdout);
    expect(jobs).toEqual([expect.objectContaining({ path: short, state: 'done', attempts: 1, error: null })]);
  });

  it('two CLIs at once both get their transcripts', async () => {
    const [a, b] = await Promise.all([wx(home, ['transcribe', multi], env), wx(home, ['transcribe', short], env)]);
    expect(a.code, a.stderr).toBe(0);
    expect(b.code, b.stderr).toBe(0);
    expect(b.stdout.trim()).toBe(shortText);
    expect(wordsFound(fixtures['fx-multi']!.text, a.stdout).length).toBeGreaterThan(5);
  });

  it('progress notifications reach the requesting client, tied to its request and job', async () => {
    const client = await WxClient.connect({ home });
    const events: { requestId?: number | string; jobId?: number; file: string; processedS: number; durationS: number }[] = [];
    const other = await WxClient.connect({ home });
    const leaked: unknown[] = [];
    other.on('progress', (p) => leaked.push(p));
    client.on('progress', (p) => events.push(p));
    const r = await client.call('transcribe', { files: [multi], wait: true });
    expect(r.jobs[0]!.state).toBe('done');
    expect(events.length).toBeGreaterThan(0);
    for (const e of events) {
      expect(e.jobId).toBe(r.jobs[0]!.id);
      expect(e.file).toBe(multi);
      expect(e.processedS).toBeLessThanOrEqual(e.durationS + 1e-6);
    }
    expect(events.at(-1)!.processedS).toBeGreaterThan(0);
    expect(leaked).toEqual([]);
    const bad = await wx(home, ['search', 'font', '--since', 'not a date'], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('cannot read "not a date" as a date');
    const future = JSON.parse((await wx(home, ['search', 'font', '--since', '2999-01-01', '--json'], env)).stdout);
    expect(future).toEqual([]);
    await client.close();
    await other.close();
  });

  it('a corrupt file fails with its reason; wx jobs --failed lists it; wx retry queues it again', async () => {
    const bad = path.join(home, 'corrupt.wav');
    fs.writeFileSync(bad, 'RIFF this is not audio');
    const r = await wx(home, ['transcribe', bad], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(bad);
    const failed = JSON.parse((await wx(home, ['jobs', '--failed', '--json'], env)).stdout);
    expect(failed).toHaveLength(1);
    expect(failed[0].path).toBe(bad);
    expect(failed[0].error).toContain(bad);
    const retry = await wx(home, ['retry', String(failed[0].id)], env);
    expect(retry.code, retry.stderr).toBe(0);
    expect(retry.stdout).toContain('queued again');
    const notFailed = await wx(home, ['retry', '99999'], env);
    expect(notFailed.code).toBe(1);
    expect(notFailed.stderr).toContain('no job 99999');
  });

  it('Ctrl-C on wx transcribe cancels its job on the daemon', async () => {
    const { spawn } = await import('node:child_process');
    const long = sharedPath('fixtures', 'speech', 'dev-long.wav');
    const client = await WxClient.connect({ home });
    let started!: () => void;
    const jobStarted = new Promise<void>((r) => (started = r));
    // Progress notifications go to the requesting client only; watch the queue instead.
    const child = spawn(process.execPath, [path.join(process.cwd(), 'bin', 'wx.js'), 'transcribe', long], { env: { ...process.env, WX_HOME: home, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
    const poll = async () => {
      for (;;) {
        const jobs = await client.call('jobs.list', { state: 'running' });
        if (jobs.some((j) => j.path === long)) return started();
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    void poll();
    await jobStarted;
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(stderr).toContain('cancelled');
    const jobs = await client.call('jobs.list', {});
    expect(jobs.find((j) => j.path === long)?.state).toBe('cancelled');
    // The daemon is idle again and still serving.
    const status = await client.call('status', undefined);
    expect(status.queue.running).toBe(0);
    await client.close();
  });

  it('an interactive request does not wait for a long backlog job', async () => {
    const long = sharedPath('fixtures', 'speech', 'dev-long.wav');
    const client = await WxClient.connect({ home });
    const backlog = await client.call('transcribe', { files: [long], wait: false, priority: 'backlog' });
    const longId = backlog.jobs[0]!.id;
    for (;;) {
      const j = (await client.call('jobs.list', { state: 'running' })).find((x) => x.id === longId);
      if (j) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const quick = await client.call('transcribe', { files: [short], wait: true });
    expect(quick.jobs[0]!.state).toBe('done');
    expect(quick.transcripts[0]!.transcript.text.trim()).toBe(shortText);
    // The 4-minute recording is still being transcribed: the short one did not queue behind it.
    expect((await client.call('jobs.list', { state: 'running' })).map((j) => j.id)).toEqual([longId]);
    const cancel = await wx(home, ['cancel', String(longId)], env);
    expect(cancel.code, cancel.stderr).toBe(0);
    expect(cancel.stdout).toContain(`job ${longId} is cancelled`);
    const twice = await wx(home, ['retry', String(quick.jobs[0]!.id)], env);
    expect(twice.code).toBe(2);
    expect(twice.stderr).toContain('is done; cannot retry it');
    await client.close();
  });

  it('SIGTERM while a job runs: the job goes back to the queue and runs again at the next start', async () => {
    const long = sharedPath('fixtures', 'speech', 'dev-long.wav');
    const client = await WxClient.connect({ home });
    const queued = await client.call('transcribe', { files: [long], wait: false, priority: 'backlog' });
    const id = queued.jobs[0]!.id;
    const waitState = async (c: WxClient, state: string) => {
      for (;;) {
        const j = (await c.call('jobs.list', {})).find((x) => x.id === id);
        if (j?.state === state) return j;
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    await waitState(client, 'running');
    const pid = client.server.pid;
    const closed = client.connection.closed;
    process.kill(pid, 'SIGTERM');
    await closed;
    while (alive(pid)) await new Promise((r) => setTimeout(r, 20));
    expect(fs.existsSync(pathsOf(home).socket)).toBe(false);
    const store = TranscriptStore.open(pathsOf(home).db);
    const job = store.job(id)!;
    store.close();
    expect(job.state).toBe('queued');
    expect(job.attempts).toBe(0);
    const log = fs.readFileSync(path.join(pathsOf(home).logs, 'daemon.log'), 'utf8');
    expect(log).toContain('"msg":"job re-queued at shutdown"');

    const c2 = await WxClient.connect({ home, autostart: true });
    const again = await waitState(c2, 'running');
    expect(again.attempts).toBe(1);
    expect((await c2.call('jobs.cancel', { id })).state).toBe('cancelled');
    await c2.close();
  });

  it('a restart keeps every transcript; kill -9 with queued work loses nothing', async () => {
    const before = JSON.parse((await wx(home, ['search', 'font', '--json'], env)).stdout);
    expect(before.length).toBeGreaterThan(0);
    const restarted = await wx(home, ['daemon', 'restart'], env);
    expect(restarted.code, restarted.stderr).toBe(0);
    const after = JSON.parse((await wx(home, ['search', 'font', '--json'], env)).stdout);
    expect(after).toEqual(before);

    // Queue work without waiting, kill the daemon hard, and let the next command recover it.
    const client = await WxClient.connect({ home });
    const copies = [1, 2, 3].map((i) => {
      const p = path.join(home, `copy-${i}.wav`);
      fs.copyFileSync(i === 2 ? multi : short, p);
      // Distinct content, so that each is its own recording.
      fs.appendFileSync(p, Buffer.alloc(2 * i));
      return p;
    });
    const queued = await client.call('transcribe', { files: copies, wait: false, priority: 'backlog' });
    expect(queued.jobs.map((j) => j.state)).toEqual(['queued', 'queued', 'queued']);
    const pid = client.server.pid;
    await client.close();
    process.kill(pid, 'SIGKILL');
    const status = await wx(home, ['status', '--json'], env);
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout).pid).not.toBe(pid);
    // Wait for the recovered jobs through the protocol: transcribe again with wait returns
    // fresh jobs, so instead wait on the queue draining.
    const c2 = await WxClient.connect({ home });
    for (;;) {
      const st = await c2.call('status', undefined);
      if (st.queue.queued === 0 && st.queue.running === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    const jobs = await c2.call('jobs.list', {});
    for (const p of copies) {
      const forCopy = jobs.filter((j) => j.path === p);
      expect(forCopy).toHaveLength(1);
      expect(forCopy[0]!.state).toBe('done');
    }
    await c2.close();
    const stop = await wx(home, ['daemon', 'stop'], env);
    expect(stop.code).toBe(0);
    const store = TranscriptStore.open(pathsOf(home).db);
    expect(store.integrityCheck()).toBe('ok');
    store.close();
  });
  it('wx show exports a stored transcript; wx forget removes it from search', async () => {
    const srt = await wx(home, ['show', short, '--format', 'srt'], env);
    expect(srt.code, srt.stderr).toBe(0);
    expect(srt.stdout).toMatch(/^1\n00:00:\d\d,\d{3} --> 00:00:\d\d,\d{3}\n/);
    expect(srt.stdout).toContain(shortText);
    const jobs = JSON.parse((await wx(home, ['jobs', '--json'], env)).stdout) as { id: number; path: string; state: string }[];
    const jobId = jobs.find((j) => j.path === short && j.state === 'done')!.id;
    const byJob = await wx(home, ['show', String(jobId), '--json'], env);
    expect(JSON.parse(byJob.stdout)).toMatchObject({ path: short, model: 'wx-tiny-en-synth', precision: 'int8', transcript: { text: expect.stringContaining(shortText) } });

    const word = wordsFound(fixtures['fx-short']!.text, shortText)[0]!;
    const forget = await wx(home, ['forget', short], env);
    expect(forget.code, forget.stderr).toBe(0);
    const hits = JSON.parse((await wx(home, ['search', word, '--json'], env)).stdout) as { path: string }[];
    expect(hits.filter((h) => h.path === short)).toEqual([]);
    const gone = await wx(home, ['show', short], env);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain('no stored transcript');
    const again = await wx(home, ['forget', short], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('no recording');
  });
});

/** A daemon of its own with this config.json (the real model), shut down and removed after. */
async function withConfiguredDaemon(config: object, run: (client: WxClient, h: string) => Promise<void>): Promise<void> {
  const h = tempHome();
  fs.writeFileSync(pathsOf(h).config, JSON.stringify(config));
  process.env.WX_MODEL = tinyModelDir();
  let client: WxClient | null = null;
  try {
    client = await WxClient.connect({ home: h, autostart: true });
    await run(client, h);
    await client.call('daemon.shutdown', undefined);
    await client.connection.closed;
    client = null;
  } finally {
    delete process.env.WX_MODEL;
    if (client) {
      const pid = client.server.pid;
      if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
    fs.rmSync(h, { recursive: true, force: true });
  }
}

describe('jobs.concurrency', () => {
  it('with 2, two requests run at once and give the same transcripts as one at a time', async () => {
    await withConfiguredDaemon({ jobs: { concurrency: 2 } }, async (client, h) => {
      const serialShort = await client.call('transcribe', { files: [short], wait: true });
      expect(serialShort.jobs[0], JSON.stringify(serialShort.jobs)).toMatchObject({ state: 'done' });
      const [m, s] = await Promise.all([client.call('transcribe', { files: [multi], wait: true }), client.call('transcribe', { files: [short], wait: true })]);
      expect(s.transcripts[0]!.transcript.text).toBe(serialShort.transcripts[0]!.transcript.text);
      expect(m.jobs[0]!.state).toBe('done');
      const log = fs.readFileSync(path.join(pathsOf(h).logs, 'daemon.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      const ids = [m.jobs[0]!.id, s.jobs[0]!.id];
      const started = ids.map((id) => log.findIndex((l) => l.msg === 'job started' && l.job === id));
      const done = ids.map((id) => log.findIndex((l) => l.msg === 'job done' && l.job === id));
      // Both started before either finished.
      expect(Math.max(...started)).toBeLessThan(Math.min(...done));
    });
  });
});

describe('idle memory release', () => {
  it('an idle engine gives back its caches and scratch (config idleReleaseS), then transcribes the same', async () => {
    await withConfiguredDaemon({ idleReleaseS: 0.3 }, async (client) => {
      const releases = async (atLeast: number) => {
        const deadline = Date.now() + 30_000;
        for (;;) {
          const s = await client.call('status', undefined);
          if (s.memory_releases!.count >= atLeast || Date.now() > deadline) return s.memory_releases!;
          await new Promise((r) => setTimeout(r, 100));
        }
      };
      expect((await client.call('status', undefined)).memory_releases).toEqual({ count: 0, last: null });
      const first = await client.call('transcribe', { files: [multi], wait: true });
      expect(first.jobs[0]!.state).toBe('done');
      const one = await releases(1);
      expect(one.count).toBe(1);
      // The decoder batch's caches and the encoder's scratch of a 30-s window: tens of MB.
      expect(one.last!.rss_after_mb).toBeLessThan(one.last!.rss_before_mb - 10);
      const again = await client.call('transcribe', { files: [multi], wait: true });
      expect(again.jobs[0]!.state).toBe('done');
      expect(again.transcripts[0]!.transcript.text).toBe(first.transcripts[0]!.transcript.text);
      expect((await releases(2)).count).toBe(2);
    });
  });
});

describe('config.json pipeline settings', () => {
  it('vad settings in config.json apply to the daemon’s jobs and to --no-daemon alike; a beam wider than the batch is refused', async () => {
    // 1-s windows: fx-short (decoded whole, as one segment, by default) comes back in pieces.
    await withConfiguredDaemon({ vad: { maxChunkS: 1 } }, async (client, h) => {
      const r = await client.call('transcribe', { files: [short], wait: true });
      expect(r.jobs[0], JSON.stringify(r.jobs)).toMatchObject({ state: 'done' });
      const segments = r.transcripts[0]!.transcript.segments;
      expect(segments.length).toBeGreaterThan(1);
      for (const s of segments) expect(s.end - s.start).toBeLessThanOrEqual(1.01);
      const inProcess = await wx(h, ['transcribe', '--no-daemon', '--format', 'json', short], env);
      expect(inProcess.code, inProcess.stderr).toBe(0);
      expect(JSON.parse(inProcess.stdout).segments.map((s: { start: number }) => s.start)).toEqual(segments.map((s) => s.start));
      // A beam wider than the decoder batch is refused up front, naming the range.
      await expect(client.call('transcribe', { files: [short], options: { beamSize: 99 }, wait: true })).rejects.toThrow(/beamSize must be an integer from 1 to 8/);
      const beamed = await client.call('transcribe', { files: [short], options: { beamSize: 3 }, wait: true });
      expect(beamed.jobs[0]!.state).toBe('done');
      const defaults = await wx(home, ['transcribe', '--no-daemon', '--format', 'json', short], env);
      expect(JSON.parse(defaults.stdout).segments.length).toBe(1);
    });
  });
});
