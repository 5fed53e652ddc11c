// TranscriptStore against a real SQLite file in a temporary WX_HOME.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { WxError } from '../daemon/errors.js';
import { wxPaths } from '../daemon/paths.js';
import { PRIORITY, SCHEMA_VERSION, TranscriptStore, toFtsQuery, toPipelineTranscript, type TranscriptInput } from '../daemon/store/index.js';
import type { Transcript } from '../daemon/pipeline/types.js';
import { repoRoot } from './shared.js';

let home: string;
let dbFile: string;
let clock: number;
let store: TranscriptStore;
const open = () => TranscriptStore.open(dbFile, { now: () => clock });

const sha = (n: number) => n.toString(16).padStart(64, '0');

function media(name: string, content = name): string {
  const p = path.join(home, 'media', name);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, content);
  return p;
}

function transcript(texts: string[], extra: Partial<TranscriptInput> = {}): TranscriptInput {
  return {
    model: 'tiny.en',
    precision: 'int8',
    language: 'en',
    duration: texts.length * 2,
    text: texts.join(' '),
    segments: texts.map((text, i) => ({ start: i * 2, end: i * 2 + 2, text, avg_logprob: -0.2, no_speech_prob: 0.01, tokens: [1, 2, 3] })),
    ...extra,
  };
}

function expectCode(fn: () => unknown, code: string): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(WxError);
  expect((thrown as WxError).code).toBe(code);
}

/** Child processes run the compiled store (Node 20 cannot import .ts). */
function builtStore(): string {
  const file = path.join(repoRoot, 'dist', 'daemon', 'store', 'index.js');
  if (!fs.existsSync(file)) throw new Error(`${file} is missing: run \`npx tsc -p tsconfig.json\` (npm test does) before this test`);
  return file;
}

/** A recording with a finished transcript of `texts`. */
function transcribed(name: string, texts: string[]) {
  const rec = store.upsertRecording({ path: media(name), sha256: sha(name.length * 7919 + name.charCodeAt(0)), size: 10, mtimeMs: clock });
  const job = store.enqueueJob({ recordingId: rec.id, priority: PRIORITY.interactive, source: 'cli' });
  expect(store.claimNextJob()?.id).toBe(job.id);
  const t = store.completeJob(job.id, transcript(texts));
  return { rec, job, t };
}

beforeEach(() => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'wx-store-'));
  dbFile = wxPaths(home).db;
  clock = 1_700_000_000_000;
  store = open();
});

afterEach(() => {
  store.close();
  fs.rmSync(home, { recursive: true, force: true });
});

describe('schema and migrations', () => {
  it('creates the schema in an empty file with WAL and foreign keys, and re-opens it', () => {
    expect(fs.existsSync(path.join(home, 'wx.db'))).toBe(true);
    expect(store.schemaVersion).toBe(SCHEMA_VERSION);
    expect(store.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(store.db.pragma('foreign_keys', { simple: true })).toBe(1);
    expect(store.db.pragma('synchronous', { simple: true })).toBe(1); // NORMAL
    expect(store.db.pragma('busy_timeout', { simple: true })).toBe(5000);
    transcribed('private.wav', ['nobody else reads this']);
    for (const f of ['wx.db', 'wx.db-wal', 'wx.db-shm']) expect(fs.statSync(path.join(home, f)).mode & 0o777, f).toBe(0o600);
    const tables = (store.db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).all() as { name: string }[]).map((r) => r.name);
    expect(tables).toEqual(expect.arrayContaining(['recordings', 'jobs', 'transcripts', 'segments', 'segments_fts', 'watches']));
    transcribed('a.wav', ['kept across reopen']);
    expect(store.search('nobody')).toHaveLength(1);
    store.close();
    store = open();
    expect(store.schemaVersion).toBe(SCHEMA_VERSION);
    expect(store.search('reopen')).toHaveLength(1);
    expect(store.integrityCheck()).toBe('ok');
  });

  it('refuses a database from a newer wx with a clear error', () => {
    store.close();
    const raw = new Database(dbFile);
    raw.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    raw.close();
    expectCode(() => open(), 'store.too_new');
    const raw2 = new Database(dbFile);
    raw2.pragma(`user_version = ${SCHEMA_VERSION}`);
    raw2.close();
    store = open();
  });

  it('reports a file that is not a database with its path', () => {
    const bogus = path.join(home, 'bogus.db');
    fs.writeFileSync(bogus, 'this is not sqlite'.repeat(100));
    let err: unknown;
    try {
      TranscriptStore.open(bogus);
    } catch (e) {
      err = e;
    }
    expect((err as WxError).code).toBe('store.open_failed');
    expect((err as WxError).message).toContain(bogus);
  });
});

describe('recordings: identity is the content hash', () => {
  it('updates the path of a moved file instead of adding a recording', () => {
    const a = media('meeting.m4a');
    const r1 = store.upsertRecording({ path: a, sha256: sha(1), size: 5, mtimeMs: 1 });
    expect(r1.change).toBe('created');
    expect(store.upsertRecording({ path: a, sha256: sha(1), size: 5, mtimeMs: 2.7 }).change).toBe('unchanged');
    expect(store.unchangedRecording(a, 5, 2.7)?.id).toBe(r1.id);
    expect(store.unchangedRecording(a, 6, 2.7)).toBeUndefined();
    expect(store.unchangedRecording(a, 5, 3)).toBeUndefined();
    store.setRecordingMissing(a);
    expect(store.unchangedRecording(a, 5, 2.7)).toBeUndefined();
    store.upsertRecording({ path: a, sha256: sha(1), size: 5, mtimeMs: 2.7 });
    expect(store.unchangedRecording(a, 5, 2.7)?.missing).toBe(false);
    const b = path.join(home, 'media', 'renamed.m4a');
    fs.renameSync(a, b);
    const r2 = store.upsertRecording({ path: b, sha256: sha(1), size: 5, mtimeMs: 2 });
    expect(r2.change).toBe('moved');
    expect(r2.id).toBe(r1.id);
    expect(store.recordingByPath(a)).toBeUndefined();
    expect(store.recordingByPath(b)?.id).toBe(r1.id);
    expect(store.recordingBySha(sha(1))?.path).toBe(b);
    expect(store.counts().recordings).toBe(1);
  });

  it('keeps a copy as a second recording and an edit as new content', () => {
    const a = media('a.wav');
    const r1 = store.upsertRecording({ path: a, sha256: sha(2), size: 5, mtimeMs: 1, durationS: 3 });
    const copy = store.upsertRecording({ path: media('copy.wav', 'a.wav'), sha256: sha(2), size: 5, mtimeMs: 1 });
    expect(copy.change).toBe('copied');
    expect(copy.id).not.toBe(r1.id);
    const edited = store.upsertRecording({ path: a, sha256: sha(3), size: 9, mtimeMs: 5 });
    expect(edited.change).toBe('edited');
    expect(edited.id).toBe(r1.id);
    expect(edited.durationS).toBeNull();
  });

  it('treats a recording marked missing as moved even if a file reappears at its old path later', () => {
    const a = media('x.wav');
    const r1 = store.upsertRecording({ path: a, sha256: sha(4), size: 1, mtimeMs: 1 });
    expect(store.setRecordingMissing(a)).toBe(true);
    expect(store.recording(r1.id)?.missing).toBe(true);
    const r2 = store.upsertRecording({ path: media('y.wav'), sha256: sha(4), size: 1, mtimeMs: 1 });
    expect(r2).toMatchObject({ id: r1.id, change: 'moved', missing: false });
  });

  it('rejects a malformed hash with the path in the message', () => {
    expect(() => store.upsertRecording({ path: '/x/y.wav', sha256: 'abc', size: 1, mtimeMs: 1 })).toThrow(/y\.wav/);
  });
});

describe('job queue', () => {
  const rec = (n: number) => store.upsertRecording({ path: media(`r${n}.wav`), sha256: sha(100 + n), size: 1, mtimeMs: 1, durationS: 10 * n });

  it('claims by priority (dictation, then interactive, then watch), oldest first', () => {
    const w1 = store.enqueueJob({ recordingId: rec(1).id, priority: PRIORITY.watch, source: 'watch' });
    const w2 = store.enqueueJob({ recordingId: rec(2).id, priority: PRIORITY.watch, source: 'watch' });
    const cli = store.enqueueJob({ recordingId: rec(3).id, priority: PRIORITY.interactive, source: 'cli' });
    const dict = store.enqueueJob({ recordingId: rec(4).id, priority: PRIORITY.dictation, source: 'dictation' });
    expect(store.queueStats()).toMatchObject({ queued: 4, running: 0, queuedAudioS: 100, queuedUnknownDuration: 0 });
    const unknown = store.upsertRecording({ path: media('unknown.wav'), sha256: sha(77), size: 1, mtimeMs: 1 });
    const uj = store.enqueueJob({ recordingId: unknown.id, priority: PRIORITY.watch, source: 'watch' });
    expect(store.queueStats()).toMatchObject({ queued: 5, queuedAudioS: 100, queuedUnknownDuration: 1 });
    store.cancelJob(uj.id);
    const order = [store.claimNextJob(), store.claimNextJob(), store.claimNextJob(), store.claimNextJob()].map((j) => j?.id);
    expect(order).toEqual([dict.id, cli.id, w1.id, w2.id]);
    expect(store.claimNextJob()).toBeUndefined();
    expect(store.queueStats()).toMatchObject({ queued: 0, running: 4, runningAudioS: 100, queuedAudioS: 0 });
    const j = store.job(dict.id)!;
    expect(j).toMatchObject({ state: 'running', attempts: 1, startedAt: clock, path: path.join(home, 'media', 'r4.wav') });
  });

  it('follows the state machine and refuses illegal transitions', () => {
    const job = store.enqueueJob({ recordingId: rec(1).id, priority: 1, source: 'cli', options: { language: 'en' } });
    expect(job).toMatchObject({ state: 'queued', attempts: 0, reused: false, options: { language: 'en' } });
    expectCode(() => store.completeJob(job.id, transcript(['x'])), 'job.illegal_transition');
    expectCode(() => store.failJob(job.id, 'boom'), 'job.illegal_transition');
    expectCode(() => store.retryJob(job.id), 'job.illegal_transition');
    expectCode(() => store.releaseJob(job.id), 'job.illegal_transition');
    store.claimNextJob();
    store.completeJob(job.id, transcript(['x']));
    expect(store.job(job.id)).toMatchObject({ state: 'done', finishedAt: clock, error: null });
    expectCode(() => store.completeJob(job.id, transcript(['x'])), 'job.illegal_transition');
    expectCode(() => store.cancelJob(job.id), 'job.illegal_transition');
    expectCode(() => store.retryJob(job.id), 'job.illegal_transition');
    expectCode(() => store.failJob(job.id, 'late'), 'job.illegal_transition');
    expectCode(() => store.job(999) ?? store.cancelJob(999), 'job.not_found');

    const c = store.enqueueJob({ recordingId: rec(2).id, priority: 1, source: 'cli' });
    store.claimNextJob();
    expect(store.cancelJob(c.id).state).toBe('cancelled');
    expect(store.cancelJob(c.id).state).toBe('cancelled');
    // The worker of a cancelled job finishing late must not resurrect it.
    expectCode(() => store.completeJob(c.id, transcript(['late'])), 'job.illegal_transition');
    expect(store.transcriptForRecording(c.recordingId)).toBeUndefined();
    expect(store.retryJob(c.id)).toMatchObject({ state: 'queued', attempts: 0 });
  });

  it('retries a failure with exponential back-off, then stays failed with its reason', () => {
    const job = store.enqueueJob({ recordingId: rec(1).id, priority: 2, source: 'watch', maxAttempts: 3 });
    expect(store.claimNextJob()?.id).toBe(job.id);
    const f1 = store.failJob(job.id, 'decoder ran out of memory');
    expect(f1).toMatchObject({ state: 'queued', attempts: 1, error: 'decoder ran out of memory', notBefore: clock + 5_000 });
    expect(store.claimNextJob(clock + 4_999)).toBeUndefined();
    expect(store.claimNextJob(clock + 5_000)?.attempts).toBe(2);
    expect(store.failJob(job.id, 'again').notBefore).toBe(clock + 10_000);
    clock += 10_000;
    expect(store.claimNextJob()?.attempts).toBe(3);
    const failed = store.failJob(job.id, 'third time');
    expect(failed).toMatchObject({ state: 'failed', attempts: 3, error: 'third time', finishedAt: clock });
    expect(store.listJobs({ state: 'failed' }).map((j) => j.id)).toEqual([job.id]);
    expect(store.retryJob(job.id)).toMatchObject({ state: 'queued', attempts: 0, error: null });

    const corrupt = store.enqueueJob({ recordingId: rec(2).id, priority: 2, source: 'watch' });
    store.claimNextJob(clock + 1);
    store.claimNextJob(clock + 1);
    expect(store.failJob(corrupt.id, 'not an audio file', { retry: false })).toMatchObject({ state: 'failed', attempts: 1 });
  });

  it('deduplicates equal jobs for the same content when asked', () => {
    const r = rec(1);
    const a = store.enqueueJob({ recordingId: r.id, priority: PRIORITY.watch, source: 'watch', options: { b: 1, a: 2 }, dedupe: true });
    const b = store.enqueueJob({ recordingId: r.id, priority: PRIORITY.interactive, source: 'cli', options: { a: 2, b: 1 }, dedupe: true });
    expect(b).toMatchObject({ id: a.id, reused: true, priority: PRIORITY.interactive });
    const other = store.enqueueJob({ recordingId: r.id, priority: 2, source: 'watch', options: { a: 3 }, dedupe: true });
    expect(other.reused).toBe(false);
    const noDedupe = store.enqueueJob({ recordingId: r.id, priority: 2, source: 'cli', options: { a: 2, b: 1 } });
    expect(noDedupe.id).not.toBe(a.id);
    expect(store.listJobs({ recordingId: r.id })).toHaveLength(3);
    // A failed job does not count by default (an explicit request tries again); a re-scan can make it count.
    const failing = store.enqueueJob({ recordingId: rec(7).id, priority: 2, source: 'watch', dedupe: true });
    while (store.claimNextJob() && store.job(failing.id)?.state !== 'running');
    expect(store.job(failing.id)?.state).toBe('running');
    store.failJob(failing.id, 'corrupt', { retry: false });
    const again = store.enqueueJob({ recordingId: failing.recordingId, priority: 2, source: 'watch', dedupe: true, dedupeStates: ['queued', 'running', 'done', 'failed', 'cancelled'] });
    expect(again).toMatchObject({ id: failing.id, reused: true, state: 'failed' });
    expect(store.enqueueJob({ recordingId: failing.recordingId, priority: 2, source: 'watch', dedupe: true }).reused).toBe(false);
    // After an edit (new content) the same options make a new job.
    store.upsertRecording({ path: r.path, sha256: sha(999), size: 2, mtimeMs: 2 });
    expect(store.enqueueJob({ recordingId: r.id, priority: 2, source: 'watch', options: { a: 2, b: 1 }, dedupe: true }).reused).toBe(false);
  });

  it('writes transcript and done state in one transaction: a failure mid-way changes nothing', () => {
    const { rec: r, t } = transcribed('keep.wav', ['original words']);
    const again = store.enqueueJob({ recordingId: r.id, priority: 1, source: 'cli' });
    store.claimNextJob();
    expectCode(() => store.completeJob(again.id, transcript(['a', 'b'], { segments: [{ start: 0, end: 1, text: 'a' }, { start: 3, end: 2, text: 'b' }] })), 'store.bad_segment');
    // A constraint failure after the old transcript was already deleted inside the transaction.
    expect(() => store.completeJob(again.id, transcript(['new words'], { model: null as unknown as string }))).toThrow();
    expect(store.job(again.id)?.state).toBe('running');
    expect(store.transcriptForRecording(r.id)?.id).toBe(t.id);
    expect(store.search('original')).toHaveLength(1);
    expect(store.search('new')).toHaveLength(0);
    // Re-transcription replaces: one current transcript, no stale search hits.
    store.completeJob(again.id, transcript(['replacement words']));
    expect(store.transcriptForRecording(r.id)?.text).toBe('replacement words');
    expect(store.search('original')).toHaveLength(0);
    expect(store.counts().transcripts).toBe(1);
  });

  it('stores every field of the pipeline transcript and gives it back', () => {
    const r = rec(1);
    const job = store.enqueueJob({ recordingId: r.id, priority: 1, source: 'cli' });
    store.claimNextJob();
    const original: Transcript = {
      text: ' Hello there. General Kenobi.',
      language: 'en',
      duration: 4.5,
      segments: [
        { id: 0, seek: 0, start: 0, end: 1.5, text: ' Hello there.', tokens: [50364, 2425, 456, 13], temperature: 0, avg_logprob: -0.25, compression_ratio: 0.8, no_speech_prob: 0.01 },
        { id: 1, seek: 0, start: 2, end: 4.5, text: ' General Kenobi.', tokens: [50464, 6996, 591], temperature: 0.2, avg_logprob: -0.5, compression_ratio: 0.9, no_speech_prob: 0.03 },
      ],
    };
    const saved = store.completeJob(job.id, { ...original, model: 'tiny.en', precision: 'fp16' });
    expect(saved).toMatchObject({ recordingId: r.id, jobId: job.id, model: 'tiny.en', precision: 'fp16', language: 'en', durationS: 4.5 });
    const back = store.transcriptForRecording(r.id)!;
    expect(toPipelineTranscript(back)).toEqual(original);
    expect(store.recording(r.id)?.durationS).toBe(10); // a known duration is kept
  });

  it('requeues jobs left running by a closed (crashed) store, failing those out of attempts', () => {
    const a = store.enqueueJob({ recordingId: rec(1).id, priority: 1, source: 'cli' });
    const poison = store.enqueueJob({ recordingId: rec(2).id, priority: 2, source: 'watch', maxAttempts: 1 });
    store.claimNextJob();
    store.claimNextJob();
    store.close(); // no completeJob: the daemon died here
    store = open();
    expect(store.queueStats().running).toBe(2);
    expect(store.requeueRunningJobs()).toBe(1);
    expect(store.job(a.id)).toMatchObject({ state: 'queued', attempts: 1 });
    expect(store.job(a.id)?.error).toMatch(/interrupted/);
    expect(store.job(poison.id)).toMatchObject({ state: 'failed' });
    expect(store.claimNextJob()).toMatchObject({ id: a.id, attempts: 2 });
    // A clean shutdown gives the attempt back.
    expect(store.releaseJob(a.id)).toMatchObject({ state: 'queued', attempts: 1 });
  });

  it('keeps an earlier attempt\'s failure when a crash ends the last attempt', () => {
    const job = store.enqueueJob({ recordingId: rec(3).id, priority: 1, source: 'watch', maxAttempts: 3 });
    store.claimNextJob();
    store.failJob(job.id, '/in/corrupt.wav: not an audio file', { retry: true });
    store.claimNextJob(Date.now() + 1e9);
    store.close();
    store = open();
    expect(store.requeueRunningJobs()).toBe(1);
    store.claimNextJob(Date.now() + 1e9);
    store.close();
    store = open();
    expect(store.requeueRunningJobs()).toBe(0);
    const failed = store.job(job.id)!;
    expect(failed.state).toBe('failed');
    expect(failed.error).toBe('interrupted: the daemon stopped while this job ran (attempt 3 of 3); an earlier attempt failed: /in/corrupt.wav: not an audio file');
  });

  it('never hands the same job to two processes claiming at once', async () => {
    const distStore = builtStore();
    const ids = Array.from({ length: 400 }, (_, i) => store.enqueueJob({ recordingId: rec(i).id, priority: i % 3, source: 'watch' }).id);
    const script = path.join(home, 'claimer.mjs');
    fs.writeFileSync(
      script,
      `import { TranscriptStore } from ${JSON.stringify(distStore)};
       const store = TranscriptStore.open(process.argv[2]);
       process.stdout.write('ready;');
       process.stdin.once('data', () => {
         const got = [];
         for (let job; (job = store.claimNextJob()); ) got.push(job.id);
         store.close();
         process.stdout.write(JSON.stringify(got));
         process.exit(0);
       });`,
    );
    // Both open the database, then start claiming on the same signal.
    const claimers = [0, 1].map(() => {
      const child = spawn(process.execPath, [script, dbFile], { stdio: ['pipe', 'pipe', 'inherit'] });
      let out = '';
      const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
      const ready = new Promise<void>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => ((out += d.toString()).startsWith('ready;') ? resolve() : undefined));
        void exited.then((code) => reject(new Error(`claimer exited ${code} before it was ready`)));
      });
      const claimed = exited.then((code) => {
        if (code !== 0) throw new Error(`claimer exited ${code}`);
        return JSON.parse(out.slice('ready;'.length)) as number[];
      });
      claimed.catch(() => undefined); // awaited below; a failure surfaces through `ready` first
      return { child, ready, claimed };
    });
    await Promise.all(claimers.map((c) => c.ready));
    for (const c of claimers) c.child.stdin.write('go');
    const [a, b] = await Promise.all(claimers.map((c) => c.claimed)) as [number[], number[]];
    expect(a.filter((id) => b.includes(id))).toEqual([]);
    expect([...a, ...b].sort((x, y) => x - y)).toEqual(ids);
    expect(store.queueStats()).toMatchObject({ queued: 0, running: 400 });
  });

  it('survives kill -9 of a process completing jobs: every job is done with all its segments or not done at all', async () => {
    const distStore = builtStore();
    const ids: number[] = [];
    for (let i = 0; i < 600; i++) ids.push(store.enqueueJob({ recordingId: rec(i).id, priority: 2, source: 'watch' }).id);
    const script = path.join(home, 'worker.mjs');
    fs.writeFileSync(
      script,
      `import { TranscriptStore } from ${JSON.stringify(distStore)};
       const store = TranscriptStore.open(process.argv[2]);
       const segments = Array.from({ length: 50 }, (_, i) => ({ start: i, end: i + 1, text: 'segment ' + i + ' of a long meeting' }));
       let done = 0;
       for (;;) {
         const job = store.claimNextJob();
         if (!job) break;
         store.completeJob(job.id, { model: 'm', precision: 'fp32', language: 'en', duration: 50, text: 'x', segments });
         if (++done === 5) process.stdout.write('going\\n');
       }
       process.stdout.write('finished\\n');`,
    );
    const child = spawn(process.execPath, [script, dbFile], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => (d.toString().includes('going') ? resolve() : undefined));
      child.on('exit', () => reject(new Error('worker exited before it was killed')));
    });
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');

    store.close();
    store = open();
    expect(store.integrityCheck()).toBe('ok');
    const jobs = ids.map((id) => store.job(id)!);
    const done = jobs.filter((j) => j.state === 'done');
    expect(done.length).toBeGreaterThanOrEqual(5);
    expect(done.length).toBeLessThan(ids.length);
    for (const j of jobs) {
      const t = store.transcriptForRecording(j.recordingId);
      if (j.state === 'done') expect(t?.segments).toHaveLength(50);
      else expect(t).toBeUndefined();
    }
    expect(jobs.filter((j) => j.state === 'running').length).toBeLessThanOrEqual(1);
    const running = jobs.filter((j) => j.state === 'running').length;
    expect(store.requeueRunningJobs()).toBe(running);
    expect(store.queueStats()).toMatchObject({ running: 0, done: done.length, queued: ids.length - done.length });
    expect(store.search('"long meeting"', { limit: 1000 }).length).toBe(Math.min(1000, done.length * 50));
  });
});

describe('full-text search', () => {
  beforeEach(() => {
    transcribed('animals.wav', ['The quick brown fox', 'jumps over the lazy dog', 'and the dog sleeps']);
    transcribed('cafe.wav', ['Wir trafen uns im Café Müller', 'über die Straße', '東京で会議']);
  });

  it('finds segment text with path, times, bm25 order and highlighted snippet', () => {
    const hits = store.search('fox');
    expect(hits).toHaveLength(1);
    expect(hits[0]).toMatchObject({ path: path.join(home, 'media', 'animals.wav'), start: 0, end: 2, text: 'The quick brown fox' });
    expect(hits[0]!.snippet).toContain('[fox]');
    expect(store.search('fox', { highlight: { open: '<b>', close: '</b>' } })[0]!.snippet).toContain('<b>fox</b>');
    const dogs = store.search('dog');
    expect(dogs).toHaveLength(2);
    expect(dogs[0]!.score).toBeGreaterThanOrEqual(dogs[1]!.score);
    expect(store.search('cafe muller')[0]?.text).toBe('Wir trafen uns im Café Müller'); // diacritics folded
    expect(store.search('"quick brown"')).toHaveLength(1);
    expect(store.search('"brown quick"')).toHaveLength(0);
    expect(store.search('qui*')).toHaveLength(1);
    expect(store.search('dog -lazy').map((h) => h.text)).toEqual(['and the dog sleeps']);
    expect(store.search('dog NOT sleeps').map((h) => h.text)).toEqual(['jumps over the lazy dog']);
    expect(store.search('fox OR straße')).toHaveLength(2);
    expect(store.search('dog', { limit: 1, offset: 1 })).toHaveLength(1);
    expect(store.search('-dog')).toEqual([]);
  });

  it('filters by path glob and recording time', () => {
    expect(store.search('dog', { pathGlob: '*/animals.*' })).toHaveLength(2);
    expect(store.search('dog', { pathGlob: '*/cafe.*' })).toHaveLength(0);
    expect(store.search('dog', { sinceMs: clock + 1 })).toHaveLength(0);
    expect(store.search('dog', { sinceMs: clock })).toHaveLength(2);
  });

  it('keeps the index in step with updates and deletes', () => {
    const [hit] = store.search('fox');
    expect(store.updateSegmentText(hit!.segmentId, 'The quick brown cat')).toBe(true);
    expect(store.search('fox')).toHaveLength(0);
    expect(store.search('cat')[0]?.segmentId).toBe(hit!.segmentId);
    expect(store.deleteTranscript(hit!.transcriptId)).toBe(true);
    expect(store.search('cat')).toHaveLength(0);
    expect(store.search('dog')).toHaveLength(0);
    expect(store.search('Müller')).toHaveLength(1);
    const cafe = store.recordingByPath(path.join(home, 'media', 'cafe.wav'))!;
    expect(store.deleteRecording(cafe.id)).toBe(true);
    expect(store.search('Müller')).toHaveLength(0);
    expect(store.counts()).toMatchObject({ transcripts: 0, segments: 0, jobs: 1 }); // animals.wav's job stays
    expect(store.integrityCheck()).toBe('ok');
  });

  it('never throws on odd query syntax', () => {
    const odd = ['"', '""', '"""', 'AND', 'OR', 'NOT', 'fox AND', 'OR fox OR', '*', '**', '-', '--', '-"', '(fox', 'fox)', 'NEAR(fox dog)',
      'fox:', 'text:fox', '^fox', '{fox dog}', "'", "don't", ';DROP TABLE segments;--', '\\', '\u0000', '💥', '東京', 'ü*', '-*', 'a'.repeat(5000),
      'fox AND OR NOT dog', '"fox" "dog', '*fox', 'f*o*x', '+fox'];
    for (const q of odd) expect(() => store.search(q), q).not.toThrow();
    expect(store.search('"unterminated fox')).toHaveLength(0);
    expect(store.search('"quick brown')).toHaveLength(1);
    expect(store.search('東京で会議')).toHaveLength(1);
    expect(store.search('NEAR(fox dog)')).toHaveLength(0);
    expect(store.search('text:fox')).toHaveLength(0); // literal: the phrase "text fox"
    expect(store.counts().segments).toBe(6);
  });

  it('translates user syntax into quoted FTS5', () => {
    expect(toFtsQuery('fox dog')).toBe('("fox" AND "dog")');
    expect(toFtsQuery('"a b"* -c OR d')).toBe('(("a b"*) OR ("d")) NOT "c"');
    expect(toFtsQuery('say "hi""')).toBe('("say" AND "hi")');
    expect(toFtsQuery('q"x')).toBe('("q" AND "x")');
    expect(toFtsQuery('-only')).toBeNull();
    expect(toFtsQuery('  * - " ')).toBeNull();
  });
});

describe('watches', () => {
  it('adds, lists, updates and removes watched folders', () => {
    const dir = path.join(home, 'Recordings');
    const w = store.addWatch({ dir, recursive: true, include: ['*.m4a'], exclude: ['Archive/**'], formats: ['srt', 'txt'], outputDir: path.join(home, 'out') });
    expect(w).toMatchObject({ dir, recursive: true, include: ['*.m4a'], exclude: ['Archive/**'], formats: ['srt', 'txt'], available: true, lastError: null, backfill: true });
    expectCode(() => store.addWatch({ dir: dir + '/' }), 'watch.exists');
    expectCode(() => store.addWatch({ dir: path.join(home, 'b'), formats: ['doc' as 'txt'] }), 'watch.bad_input');
    store.setWatchState(w.id, { available: false, lastError: 'folder is gone (unmounted?)' });
    expect(store.listWatches()).toEqual([{ ...w, available: false, lastError: 'folder is gone (unmounted?)' }]);
    const rec = store.upsertRecording({ path: path.join(dir, 'a.m4a'), sha256: sha(5), size: 1, mtimeMs: 1 });
    const job = store.enqueueJob({ recordingId: rec.id, priority: 2, source: 'watch', watchId: w.id });
    expect(job.watchId).toBe(w.id);
    expect(store.removeWatch(dir)).toBe(true);
    expect(store.removeWatch(w.id)).toBe(false);
    expect(store.listWatches()).toEqual([]);
    expect(store.job(job.id)?.watchId).toBeNull();
  });
});
