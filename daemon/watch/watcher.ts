// FolderWatcher: turns a watched folder into "this recording is complete" events.
//
// chokidar reports raw add/change/unlink events. On top of that:
// - only media files pass (extension list, include/exclude globs); hidden and partial-download
//   names (`.part`, `.crdownload`, Safari's `.download` bundles…) never do, at any depth;
// - a file is reported only once its size and mtime have stayed the same for `stabilityMs`
//   (our own check rather than chokidar's awaitWriteFinish, which skips files found by the
//   initial scan and compares sizes only);
// - the same file state (path, size, mtime) is reported once per watcher, so a remount or a
//   spurious change event does not re-report it;
// - the folder's existence is polled: chokidar does not notice a folder (or drive) that goes
//   away and comes back. When it is gone the watcher reports unavailable and stops chokidar;
//   when it returns (or is replaced by a new folder) it re-arms and re-scans.
import fs from 'node:fs';
import path from 'node:path';
import { watch as chokidarWatch, type FSWatcher } from 'chokidar';
import { describeError } from '../errors.js';
import { compileFilter, type PathMatcher } from './glob.js';
import { isIgnoredName, isMediaName } from './media.js';

export interface WatchSpec {
  dir: string;
  recursive?: boolean;
  include?: readonly string[];
  exclude?: readonly string[];
}

export interface FolderWatcherHandlers {
  /** A complete media file appeared or changed. May be async; a rejection goes to onError. */
  onFile(file: string, stat: fs.Stats): void | Promise<void>;
  /** The folder is gone (deleted, renamed, drive unmounted) or unreadable. */
  onUnavailable?(reason: string): void;
  /** The folder is back (also called at start when it was missing at first and then appears). */
  onAvailable?(): void;
  /** A media file went away (deleted, or moved: a matching onFile for the new path follows). */
  onRemoved?(file: string): void;
  onError?(err: Error): void;
}

export interface FolderWatcherOptions {
  /** Report files already in the folder at start. Default true. */
  backfill?: boolean;
  /** When scanning (start, return after an outage), skip files last modified before this time.
   *  For a `--no-backfill` watch re-armed at daemon start, pass the watch's creation time. */
  backfillSinceMs?: number;
  /** How long size and mtime must stay unchanged before a file counts as complete. Default 2000 ms. */
  stabilityMs?: number;
  /** How often a pending file is re-checked. Default 250 ms. */
  pollMs?: number;
  /** How often the folder's existence is checked. Default 2000 ms. */
  presencePollMs?: number;
  /** Poll instead of native events (network volumes). Default false. */
  usePolling?: boolean;
  /** onFile calls in flight at once (each usually hashes a whole file). A back-fill of
   *  thousands of files is reported a few at a time, in the order they became complete. Default 2. */
  maxConcurrentReports?: number;
}

interface Pending {
  timer: NodeJS.Timeout;
  size: number;
  mtimeMs: number;
  /** When size or mtime last changed (or an event said the file was touched). */
  lastChange: number;
}

const signature = (st: fs.Stats) => `${st.size}:${st.mtimeMs}`;

export class FolderWatcher {
  readonly dir: string;
  private readonly recursive: boolean;
  private readonly accepts: PathMatcher;
  private readonly stabilityMs: number;
  private readonly pollMs: number;
  private readonly presencePollMs: number;
  private watcher: FSWatcher | undefined;
  private presenceTimer: NodeJS.Timeout | undefined;
  private readonly pending = new Map<string, Pending>();
  /** path → signature of the state last reported (or deliberately skipped). */
  private readonly seen = new Map<string, string>();
  private available: boolean | undefined;
  private identity: string | undefined;
  private firstScan = true;
  private closed = false;
  private arming: Promise<void> | undefined;
  private readonly reportQueue: [string, fs.Stats][] = [];
  private reportsInFlight = 0;
  private presenceChain: Promise<void> = Promise.resolve();
  /** Ends the wait for chokidar's `ready` when the watcher is closed before the scan finishes. */
  private endScan: (() => void) | undefined;

  constructor(
    spec: WatchSpec,
    private readonly handlers: FolderWatcherHandlers,
    private readonly opts: FolderWatcherOptions = {},
  ) {
    this.dir = path.resolve(spec.dir);
    this.recursive = spec.recursive ?? false;
    this.accepts = compileFilter(spec.include ?? [], spec.exclude ?? []);
    this.stabilityMs = opts.stabilityMs ?? 2_000;
    this.pollMs = opts.pollMs ?? 250;
    this.presencePollMs = opts.presencePollMs ?? 2_000;
  }

  /** Whether the folder was there at the last check (undefined before start). */
  get isAvailable(): boolean | undefined {
    return this.available;
  }

  /** Starts watching; resolves once the initial scan is done (or the folder was found missing). */
  async start(): Promise<void> {
    this.presenceTimer = setInterval(() => void this.checkPresence(), this.presencePollMs);
    this.presenceTimer.unref?.();
    await this.checkPresence();
    await this.arming;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.reportQueue.length = 0;
    clearInterval(this.presenceTimer);
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
    await this.disarm();
    await this.presenceChain.catch(() => undefined);
  }

  /** Path relative to the folder with `/`, or undefined when outside it. */
  private relative(file: string): string | undefined {
    const rel = path.relative(this.dir, file);
    if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) return undefined;
    return rel.split(path.sep).join('/');
  }

  private hiddenOrPartial(rel: string): boolean {
    return rel.split('/').some(isIgnoredName);
  }

  /** Whether a file at `file` is one to report (by name; completeness is checked separately). */
  wants(file: string): boolean {
    const rel = this.relative(file);
    if (rel === undefined || this.hiddenOrPartial(rel)) return false;
    if (!this.recursive && rel.includes('/')) return false;
    return isMediaName(path.basename(rel)) && this.accepts(rel);
  }

  private ignored = (file: string, stats?: fs.Stats): boolean => {
    const rel = this.relative(file);
    if (rel === undefined) return false; // the folder itself
    if (this.hiddenOrPartial(rel)) return true;
    if (stats?.isFile()) return !this.wants(file);
    return false; // folders, and paths chokidar has not stat'ed yet: decided on the event
  };

  /** Presence checks run one at a time (timer, start, chokidar's unlinkDir can overlap). */
  private checkPresence(): Promise<void> {
    this.presenceChain = this.presenceChain.then(
      () => this.checkPresenceNow(),
      () => this.checkPresenceNow(),
    );
    return this.presenceChain;
  }

  private async checkPresenceNow(): Promise<void> {
    if (this.closed) return;
    let reason: string | undefined;
    let identity: string | undefined;
    try {
      const st = await fs.promises.stat(this.dir);
      if (!st.isDirectory()) reason = `${this.dir} is not a folder`;
      else {
        // Opening it, not just access(): macOS privacy controls (TCC) let stat and access
        // succeed on ~/Documents or ~/Desktop and refuse the listing.
        const handle = await fs.promises.opendir(this.dir);
        await handle.close();
        identity = `${st.dev}:${st.ino}`;
      }
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      reason =
        code === 'ENOENT' || code === 'ENOTDIR' ? `${this.dir} is gone (deleted, renamed, or its drive is unmounted)`
        : code === 'EACCES' || code === 'EPERM'
          ? `${this.dir} is not readable (permission denied${process.platform === 'darwin' ? '; on macOS, allow wx access to this folder in System Settings › Privacy & Security' : ''})`
        : `${this.dir} cannot be read: ${describeError(err)}`;
    }
    if (this.closed) return;
    if (reason !== undefined) {
      if (this.available !== false) {
        this.available = false;
        this.identity = undefined;
        await this.disarm();
        this.handlers.onUnavailable?.(reason);
      }
      return;
    }
    if (this.available === true && identity === this.identity) return;
    const replaced = this.available === true;
    if (replaced) {
      // Same path, different folder: the old one was removed and a new one made between checks.
      await this.disarm();
      this.handlers.onUnavailable?.(`${this.dir} was replaced by a new folder`);
    }
    const returning = this.available === false;
    this.available = true;
    this.identity = identity;
    this.arming = this.arm();
    await this.arming;
    if (returning || replaced) this.handlers.onAvailable?.();
  }

  private arm(): Promise<void> {
    const scanReports = this.firstScan ? this.opts.backfill !== false : true;
    this.firstScan = false;
    let ready = false;
    const watcher = chokidarWatch(this.dir, {
      persistent: true,
      ignoreInitial: false, // the scan also records what exists, so no-backfill can skip it
      ignored: this.ignored,
      depth: this.recursive ? undefined : 0,
      usePolling: this.opts.usePolling ?? false,
      interval: this.pollMs,
      awaitWriteFinish: false,
      ignorePermissionErrors: true,
    });
    this.watcher = watcher;
    const scans: Promise<void>[] = [];
    watcher.on('add', (file, stats) => {
      if (!this.wants(file)) return;
      if (!ready) scans.push(this.scanned(file, stats, scanReports));
      else this.touch(file);
    });
    watcher.on('change', (file) => {
      if (this.wants(file)) this.touch(file);
    });
    watcher.on('unlink', (file) => {
      const p = this.pending.get(file);
      if (p) clearTimeout(p.timer);
      this.pending.delete(file);
      if (this.seen.delete(file)) this.handlers.onRemoved?.(file);
    });
    watcher.on('unlinkDir', (dir) => {
      if (path.resolve(dir) === this.dir) void this.checkPresence();
    });
    watcher.on('error', (err) => this.handlers.onError?.(err instanceof Error ? err : new Error(String(err))));
    return new Promise<void>((resolve) => {
      this.endScan = resolve;
      watcher.on('ready', () => {
        ready = true;
        // chokidar lists a folder before it watches it, so a file created in between has no
        // event (paulmillr/chokidar#1112, #1471): list the folder once more now that it is watched.
        void Promise.allSettled(scans)
          .then(() => this.reconcile())
          .catch((err: unknown) => this.handlers.onError?.(err instanceof Error ? err : new Error(String(err))))
          .finally(resolve);
      });
    });
  }

  /** Files in the folder that neither the scan nor an event has brought up: taken as new. */
  private async reconcile(): Promise<void> {
    if (this.closed) return;
    let entries: fs.Dirent[];
    try {
      entries = await fs.promises.readdir(this.dir, { withFileTypes: true, recursive: this.recursive });
    } catch {
      return; // the folder went away: the presence check reports it
    }
    for (const e of entries) {
      if (!e.isFile()) continue;
      // Node 20 names the entry's folder `path` (newer releases `parentPath`).
      const where = e as fs.Dirent & { parentPath?: string; path?: string };
      const parent = where.parentPath ?? where.path ?? this.dir;
      const file = path.join(parent, e.name);
      if (this.wants(file) && !this.seen.has(file) && !this.pending.has(file)) this.touch(file);
    }
  }

  /** A file found by a scan: taken (after the stability wait) or recorded as already there. */
  private async scanned(file: string, stats: fs.Stats | undefined, report: boolean): Promise<void> {
    let st = stats;
    try {
      st ??= await fs.promises.stat(file);
    } catch {
      return; // gone again
    }
    const since = this.opts.backfillSinceMs;
    if (!report || (since !== undefined && st.mtimeMs < since)) {
      if (!this.pending.has(file)) this.seen.set(file, signature(st));
      return;
    }
    this.touch(file);
  }

  private async disarm(): Promise<void> {
    const w = this.watcher;
    this.watcher = undefined;
    this.endScan?.();
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
    await w?.close();
  }

  /** Something happened to `file`: (re)start its wait for a stable size and mtime. */
  private touch(file: string): void {
    if (this.closed) return;
    const p = this.pending.get(file);
    if (p) {
      p.lastChange = Date.now();
      return;
    }
    const entry: Pending = { timer: setTimeout(() => void this.check(file), this.pollMs), size: -1, mtimeMs: -1, lastChange: Date.now() };
    this.pending.set(file, entry);
  }

  private async check(file: string): Promise<void> {
    const p = this.pending.get(file);
    if (!p || this.closed) return;
    let st: fs.Stats;
    try {
      st = await fs.promises.stat(file);
    } catch {
      this.pending.delete(file); // renamed or deleted while being written; the new name has its own event
      return;
    }
    if (this.pending.get(file) !== p) return;
    if (!st.isFile()) {
      this.pending.delete(file);
      return;
    }
    const now = Date.now();
    if (st.size !== p.size || st.mtimeMs !== p.mtimeMs) {
      p.size = st.size;
      p.mtimeMs = st.mtimeMs;
      p.lastChange = now;
    }
    if (now - p.lastChange < this.stabilityMs) {
      p.timer = setTimeout(() => void this.check(file), this.pollMs);
      return;
    }
    this.pending.delete(file);
    const sig = signature(st);
    if (this.seen.get(file) === sig) return;
    this.seen.set(file, sig);
    this.reportQueue.push([file, st]);
    this.pumpReports();
  }

  private pumpReports(): void {
    const limit = Math.max(1, this.opts.maxConcurrentReports ?? 2);
    while (!this.closed && this.reportsInFlight < limit && this.reportQueue.length > 0) {
      const [file, st] = this.reportQueue.shift()!;
      this.reportsInFlight++;
      void (async () => {
        try {
          await this.handlers.onFile(file, st);
        } catch (err) {
          this.handlers.onError?.(err instanceof Error ? err : new Error(String(err)));
        } finally {
          this.reportsInFlight--;
          this.pumpReports();
        }
      })();
    }
  }
}
