// FolderWatcher on real temporary folders, and its hand-off to the real store (dedupe by hash).
// Synchronisation is by events with timeouts; the only timers are the pace of a slow writer.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WxError } from '../daemon/errors.js';
import { PRIORITY, TranscriptStore } from '../daemon/store/index.js';
import { FolderWatcher, compileFilter, compileGlob, hashFile, isMediaName, type FolderWatcherOptions, type WatchSpec } from '../daemon/watch/index.js';

interface WatchEvent {
  kind: 'file' | 'unavailable' | 'available' | 'removed' | 'error' | 'processed';
  file?: string;
  size?: number;
  reason?: string;
  at: number;
}

/** Collects watcher events and lets a test wait for one (with a timeout, never a fixed sleep). */
class Recorder {
  readonly events: WatchEvent[] = [];
  private waiters: { pred: (e: WatchEvent) => boolean; resolve: (e: WatchEvent) => void }[] = [];

  push(e: Omit<WatchEvent, 'at'>): void {
    const ev = { ...e, at: Date.now() };
    this.events.push(ev);
    this.waiters = this.waiters.filter((w) => {
      if (!w.pred(ev)) return true;
      w.resolve(ev);
      return false;
    });
  }

  /** The first event (from index `from`) matching `pred`, waiting up to `timeoutMs` for it. */
  waitFor(what: string, pred: (e: WatchEvent) => boolean, from = 0, timeoutMs = 15_000): Promise<WatchEvent> {
    const found = this.events.slice(from).find(pred);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}; events: ${JSON.stringify(this.events)}`)), timeoutMs);
      this.waiters.push({
        pred,
        resolve: (e) => {
          clearTimeout(timer);
          resolve(e);
        },
      });
    });
  }

  files(): string[] {
    return this.events.filter((e) => e.kind === 'file').map((e) => path.basename(e.file!));
  }
}

let root: string;
let dir: string;
let rec: Recorder;
const watchers: FolderWatcher[] = [];
const FAST: FolderWatcherOptions = { stabilityMs: 700, pollMs: 50, presencePollMs: 50 };

function startWatcher(spec: Partial<WatchSpec> = {}, opts: FolderWatcherOptions = {}, onFile?: (file: string, st: fs.Stats) => Promise<void>) {
  const w = new FolderWatcher(
    { dir, ...spec },
    {
      onFile: async (file, st) => {
        rec.push({ kind: 'file', file, size: st.size });
        await onFile?.(file, st);
      },
      onUnavailable: (reason) => rec.push({ kind: 'unavailable', reason }),
      onAvailable: () => rec.push({ kind: 'available' }),
      onRemoved: (file) => rec.push({ kind: 'removed', file }),
      onError: (err) => rec.push({ kind: 'error', reason: err.message }),
    },
    { ...FAST, ...opts },
  );
  watchers.push(w);
  return w;
}

const isFile = (name: string) => (e: WatchEvent) => e.kind === 'file' && path.basename(e.file!) === name;

/** Writes a small complete file and waits until the watcher reports it: everything written
 *  before it has had the same time to be reported. */
async function barrier(name = `barrier-${rec.events.length}.wav`): Promise<void> {
  fs.writeFileSync(path.join(dir, name), 'marker');
  await rec.waitFor(name, isFile(name));
}

beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'wx-watch-'));
  dir = path.join(root, 'Recordings');
  fs.mkdirSync(dir);
  rec = new Recorder();
});

afterEach(async () => {
  await Promise.all(watchers.splice(0).map((w) => w.close()));
  fs.rmSync(root, { recursive: true, force: true });
});

describe('FolderWatcher', () => {
  it('takes a file created after chokidar listed the folder but before it watched it (chokidar#1112)', async () => {
    // Widen the gap deterministically: the first fs.watch on the folder creates a recording first.
    const realWatch = fs.watch;
    let injected = false;
    (fs as { watch: typeof fs.watch }).watch = ((target: fs.PathLike, ...rest: unknown[]) => {
      if (!injected && path.resolve(String(target)) === dir) {
        injected = true;
        fs.writeFileSync(path.join(dir, 'in-the-gap.wav'), 'RIFF-ish');
      }
      return (realWatch as (...a: unknown[]) => fs.FSWatcher)(target, ...rest);
    }) as typeof fs.watch;
    syncBuiltinESMExports();
    try {
      await startWatcher().start();
    } finally {
      (fs as { watch: typeof fs.watch }).watch = realWatch;
      syncBuiltinESMExports();
    }
    expect(injected).toBe(true);
    await rec.waitFor('the file created in the gap', isFile('in-the-gap.wav'));
    expect(rec.files()).toEqual(['in-the-gap.wav']);
  });

  it('reports a file written slowly in chunks once, after it is complete', async () => {
    await startWatcher().start();
    const file = path.join(dir, 'slow.wav');
    const fd = fs.openSync(file, 'w');
    const chunk = Buffer.alloc(64 * 1024, 7);
    for (let i = 0; i < 8; i++) {
      fs.writeSync(fd, chunk);
      // The pace of a slow copy: well under the 700-ms stability window.
      await new Promise((r) => setTimeout(r, 60));
    }
    fs.closeSync(fd);
    const finished = Date.now();
    const ev = await rec.waitFor('slow.wav', isFile('slow.wav'));
    expect(ev.size).toBe(8 * chunk.length);
    expect(ev.at).toBeGreaterThanOrEqual(finished);
    await barrier();
    expect(rec.files().filter((f) => f === 'slow.wav')).toHaveLength(1);
  });

  it('ignores partial downloads, hidden files and non-media until renamed to a media name', async () => {
    await startWatcher({ recursive: true }).start();
    fs.writeFileSync(path.join(dir, 'talk.m4a.part'), 'partial');
    fs.writeFileSync(path.join(dir, 'talk2.m4a.crdownload'), 'partial');
    fs.writeFileSync(path.join(dir, 'talk3.mp3.download'), 'partial');
    fs.writeFileSync(path.join(dir, 'talk4.wav.tmp'), 'partial');
    fs.writeFileSync(path.join(dir, '.hidden.wav'), 'hidden');
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'text');
    fs.mkdirSync(path.join(dir, 'Safari.m4a.download'));
    fs.writeFileSync(path.join(dir, 'Safari.m4a.download', 'Safari.m4a'), 'bundle');
    await barrier('first.wav');
    expect(rec.files()).toEqual(['first.wav']);
    fs.renameSync(path.join(dir, 'talk.m4a.part'), path.join(dir, 'talk.m4a'));
    const ev = await rec.waitFor('talk.m4a', isFile('talk.m4a'));
    expect(ev.size).toBe('partial'.length);
    await barrier('second.wav');
    expect(rec.files()).toEqual(['first.wav', 'talk.m4a', 'second.wav']);
  });

  it('backfills existing files on start, and skips them with backfill false', async () => {
    fs.writeFileSync(path.join(dir, 'old1.wav'), 'a');
    fs.writeFileSync(path.join(dir, 'old2.MP4'), 'b');
    fs.writeFileSync(path.join(dir, 'old.txt'), 'c');
    await startWatcher().start();
    await rec.waitFor('old1.wav', isFile('old1.wav'));
    await rec.waitFor('old2.MP4', isFile('old2.MP4'));
    await Promise.all(watchers.splice(0).map((w) => w.close()));

    rec = new Recorder();
    await startWatcher({}, { backfill: false }).start();
    fs.writeFileSync(path.join(dir, 'new.wav'), 'new');
    await rec.waitFor('new.wav', isFile('new.wav'));
    await barrier();
    expect(rec.files()).not.toContain('old1.wav');
    expect(rec.files()).not.toContain('old2.MP4');
  });

  it('reports a large back-fill a few files at a time', async () => {
    const names = Array.from({ length: 12 }, (_, i) => `batch-${i}.wav`);
    for (const n of names) fs.writeFileSync(path.join(dir, n), Buffer.alloc(2 * 1024 * 1024, n.length));
    let inFlight = 0;
    let most = 0;
    await startWatcher({}, { maxConcurrentReports: 2 }, async (file) => {
      inFlight++;
      most = Math.max(most, inFlight);
      await hashFile(file);
      inFlight--;
    }).start();
    for (const n of names) await rec.waitFor(n, isFile(n));
    expect(most).toBe(2);
  });

  it('applies recursion and include/exclude globs', async () => {
    fs.mkdirSync(path.join(dir, 'Meetings', 'Archive'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'Meetings', 'standup.m4a'), 'x');
    fs.writeFileSync(path.join(dir, 'Meetings', 'Archive', 'old.m4a'), 'x');
    fs.writeFileSync(path.join(dir, 'top.m4a'), 'x');
    fs.writeFileSync(path.join(dir, 'top.wav'), 'x');
    await startWatcher({ recursive: true, include: ['*.m4a'], exclude: ['Archive'] }).start();
    await rec.waitFor('standup.m4a', isFile('standup.m4a'));
    await rec.waitFor('top.m4a', isFile('top.m4a'));
    await barrier('z.m4a');
    expect(rec.files().sort()).toEqual(['standup.m4a', 'top.m4a', 'z.m4a']);

    rec = new Recorder();
    await startWatcher({ recursive: false }).start();
    await rec.waitFor('top.wav', isFile('top.wav'));
    await barrier('y.wav');
    expect(rec.files().sort()).toEqual(['top.m4a', 'top.wav', 'y.wav', 'z.m4a']);
  });

  it('reports an edited file again and a removed one as removed', async () => {
    await startWatcher().start();
    const file = path.join(dir, 'memo.wav');
    fs.writeFileSync(file, 'first take');
    await rec.waitFor('memo.wav', isFile('memo.wav'));
    const mark = rec.events.length;
    fs.appendFileSync(file, ' and a second');
    const ev = await rec.waitFor('memo.wav again', isFile('memo.wav'), mark);
    expect(ev.size).toBe('first take and a second'.length);
    fs.rmSync(file);
    await rec.waitFor('removal', (e) => e.kind === 'removed' && e.file === file);
  });

  it('reports a removed folder as unavailable and resumes when it is re-created', async () => {
    fs.writeFileSync(path.join(dir, 'before.wav'), 'x');
    const w = startWatcher();
    await w.start();
    await rec.waitFor('before.wav', isFile('before.wav'));
    fs.rmSync(dir, { recursive: true });
    const gone = await rec.waitFor('unavailable', (e) => e.kind === 'unavailable');
    expect(gone.reason).toContain(dir);
    expect(w.isAvailable).toBe(false);
    const mark = rec.events.length;
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'after.wav'), 'y');
    await rec.waitFor('available', (e) => e.kind === 'available', mark);
    await rec.waitFor('after.wav', isFile('after.wav'), mark);
    expect(w.isAvailable).toBe(true);
    fs.writeFileSync(path.join(dir, 'later.wav'), 'z');
    await rec.waitFor('later.wav (watching again)', isFile('later.wav'), mark);
  });

  it('reports a path that is not a readable folder as unavailable, and resumes when it is one', async () => {
    if (process.getuid?.() === 0) {
      // root reads any folder regardless of mode: drop to another uid is not possible in-process,
      // so use a path whose parent is a file (ENOTDIR) for the unreadable case instead.
      fs.rmSync(dir, { recursive: true });
      fs.writeFileSync(dir, 'a file where the folder should be');
      const w = startWatcher();
      await w.start();
      expect(rec.events[0]).toMatchObject({ kind: 'unavailable' });
      expect(rec.events[0]!.reason).toContain(dir);
      fs.rmSync(dir);
      fs.mkdirSync(dir);
    } else {
      fs.chmodSync(dir, 0o000);
      const w = startWatcher();
      await w.start();
      expect(rec.events[0]).toMatchObject({ kind: 'unavailable' });
      expect(rec.events[0]!.reason).toMatch(/permission denied/);
      fs.chmodSync(dir, 0o755);
    }
    await rec.waitFor('available', (e) => e.kind === 'available');
    fs.writeFileSync(path.join(dir, 'readable.wav'), 'x');
    await rec.waitFor('readable.wav', isFile('readable.wav'));
  });

  it('starts on a missing folder as unavailable and picks it up when it appears', async () => {
    fs.rmSync(dir, { recursive: true });
    const w = startWatcher();
    await w.start();
    expect(rec.events.map((e) => e.kind)).toEqual(['unavailable']);
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'card.wav'), 'sd card');
    await rec.waitFor('available', (e) => e.kind === 'available');
    await rec.waitFor('card.wav', isFile('card.wav'));
  });

  it('hands a renamed copy to the store, which keeps one recording and one job', async () => {
    const store = TranscriptStore.open(path.join(root, 'home', 'wx.db'));
    try {
      await startWatcher({}, {}, async (file, st) => {
        const sha256 = await hashFile(file);
        const r = store.upsertRecording({ path: file, sha256, size: st.size, mtimeMs: st.mtimeMs });
        const job = store.enqueueJob({ recordingId: r.id, priority: PRIORITY.watch, source: 'watch', options: { formats: ['srt'] }, dedupe: true });
        rec.push({ kind: 'processed', file, reason: `${r.change} job ${job.id} reused=${job.reused}` });
      }).start();
      const first = path.join(dir, 'copy.wav');
      fs.writeFileSync(first, Buffer.alloc(100_000, 3));
      const e1 = await rec.waitFor('copy.wav processed', (e) => e.kind === 'processed' && e.file === first);
      expect(e1.reason).toMatch(/^created job \d+ reused=false$/);
      const second = path.join(dir, 'Team meeting.wav');
      fs.renameSync(first, second);
      const e2 = await rec.waitFor('renamed file processed', (e) => e.kind === 'processed' && e.file === second);
      expect(e2.reason).toMatch(/^moved job \d+ reused=true$/);
      expect(store.counts()).toMatchObject({ recordings: 1, jobs: 1 });
      expect(store.listJobs()[0]!.path).toBe(second);
      // Its job runs and fails on the old name (renamed meanwhile); after the next rename the
      // same job is queued again at the new path, and no second job appears.
      const claimed = store.claimNextJob(Date.now() + 1e9)!;
      expect(claimed.path).toBe(second);
      store.failJob(claimed.id, `${second}: no such file`, { retry: false });
      const third = path.join(dir, 'Team meeting (final).wav');
      fs.renameSync(second, third);
      const e3 = await rec.waitFor('renamed again', (e) => e.kind === 'processed' && e.file === third);
      expect(e3.reason).toBe(`moved job ${claimed.id} reused=true`);
      expect(store.counts()).toMatchObject({ recordings: 1, jobs: 1 });
      expect(store.job(claimed.id)).toMatchObject({ state: 'queued', attempts: 0, error: null, path: third });
    } finally {
      store.close();
    }
  });
});

describe('hashFile', () => {
  it('streams sha256 over the file and names the file when it cannot', async () => {
    const file = path.join(root, 'big.bin');
    const data = Buffer.alloc(3 * 1024 * 1024 + 17);
    for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
    fs.writeFileSync(file, data);
    expect(await hashFile(file)).toBe(createHash('sha256').update(data).digest('hex'));
    const missing = path.join(root, 'nope.wav');
    await expect(hashFile(missing)).rejects.toSatisfy((e: unknown) => e instanceof WxError && e.code === 'watch.hash_failed' && e.message.includes(missing));
  });
});

describe('globs and media names', () => {
  it('matches like gitignore: names at any depth, anchored paths, folders take their contents', () => {
    const g = (p: string) => compileGlob(p);
    expect(g('*.m4a')('a/b/c.M4A')).toBe(true);
    expect(g('*.m4a')('c.m4a.part')).toBe(false);
    expect(g('Meetings/*.m4a')('Meetings/x.m4a')).toBe(true);
    expect(g('Meetings/*.m4a')('Other/Meetings/x.m4a')).toBe(false);
    expect(g('Meetings/*.m4a')('Meetings/sub/x.m4a')).toBe(false);
    expect(g('Meetings/**/*.m4a')('Meetings/sub/deep/x.m4a')).toBe(true);
    expect(g('Meetings/**/*.m4a')('Meetings/x.m4a')).toBe(true);
    expect(g('**/zoom_*.mp4')('2024/03/zoom_1.mp4')).toBe(true);
    expect(g('Archive')('Archive/2023/x.wav')).toBe(true);
    expect(g('Archive/**')('Archive/2023/x.wav')).toBe(true);
    expect(g('Archive')('NotArchive/x.wav')).toBe(false);
    expect(g('rec-??.wav')('rec-01.wav')).toBe(true);
    expect(g('rec-??.wav')('rec-001.wav')).toBe(false);
    expect(g('rec-[0-9].wav')('rec-5.wav')).toBe(true);
    expect(g('rec-[!0-9].wav')('rec-x.wav')).toBe(true);
    expect(g('rec-[!0-9].wav')('rec-5.wav')).toBe(false);
    expect(g('*.{m4a,mp3}')('a.mp3')).toBe(true);
    expect(g('*.{m4a,mp3}')('a.wav')).toBe(false);
    expect(g('{a,b{c,d}}.wav')('bd.wav')).toBe(true);
    expect(g('a+b (1).wav')('a+b (1).wav')).toBe(true);
    expect(g('\\*.wav')('*.wav')).toBe(true);
    expect(g('\\*.wav')('x.wav')).toBe(false);
    expect(g('[unclosed')('[unclosed')).toBe(true);
    expect(g('{unclosed')('{unclosed')).toBe(true);
    expect(compileGlob('*.M4A', { nocase: false })('a.m4a')).toBe(false);
    const f = compileFilter(['*.m4a', '*.wav'], ['Archive', '*draft*']);
    expect(['x.m4a', 'Archive/x.m4a', 'my draft.wav', 'y.wav', 'z.mp3'].filter(f)).toEqual(['x.m4a', 'y.wav']);
  });

  it('knows media extensions and partial names', () => {
    expect(['a.wav', 'b.M4A', 'c.mp4', 'd.mov', 'e.opus', 'f.qta'].every(isMediaName)).toBe(true);
    expect(['a.txt', 'b.m4a.part', 'c.crdownload', '.d.wav', 'e.ts', 'f', 'g.wav.tmp'].some(isMediaName)).toBe(false);
  });
});
