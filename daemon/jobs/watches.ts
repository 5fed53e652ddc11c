// Watched folders inside the daemon: one FolderWatcher per watch in the store, re-armed at
// start. A complete file becomes a recording (content hash = identity) and a deduplicated
// backlog job; a finished job of a watch writes its sidecar outputs (e.g. meeting.srt).
import fs from 'node:fs';
import path from 'node:path';
import { WxError, describeError } from '../errors.js';
import type { Logger } from '../log.js';
import { writeOutputs } from '../pipeline/writers.js';
import { JOB_STATES, PRIORITY, toPipelineTranscript, type Job, type TranscriptStore, type Watch, type WatchInput } from '../store/index.js';
import { FolderWatcher, hashFile } from '../watch/index.js';
import type { JobRunner } from './runner.js';

export interface WatchManagerOptions {
  maxAttempts: number;
  stabilityMs?: number;
  presencePollMs?: number;
  onError?: (message: string, extra: { path?: string; job?: number }) => void;
}

export class WatchManager {
  private readonly watchers = new Map<number, FolderWatcher>();

  constructor(
    private readonly store: TranscriptStore,
    private readonly runner: JobRunner,
    private readonly log: Logger,
    private readonly opts: WatchManagerOptions,
  ) {
    runner.on('finished', (job) => this.onFinished(job));
  }

  /** Re-arms every stored watch (daemon start). */
  async startAll(): Promise<void> {
    await Promise.all(this.store.listWatches().map((w) => this.arm(w, { rearm: true })));
  }

  async add(input: WatchInput): Promise<Watch> {
    const dir = path.resolve(input.dir);
    const st = fs.statSync(dir, { throwIfNoEntry: false });
    if (!st) throw new WxError('watch.bad_dir', `${dir}: no such folder`, { dir });
    if (!st.isDirectory()) throw new WxError('watch.bad_dir', `${dir} is not a folder`, { dir });
    const watch = this.store.addWatch({ ...input, dir });
    this.log.info('watch added', { dir, id: watch.id, recursive: watch.recursive, backfill: watch.backfill });
    await this.arm(watch, { rearm: false });
    return this.store.watch(watch.id) ?? watch;
  }

  async remove(dir: string): Promise<boolean> {
    const watch = this.store.watch(path.resolve(dir));
    if (!watch) return false;
    await this.watchers.get(watch.id)?.close();
    this.watchers.delete(watch.id);
    this.log.info('watch removed', { dir: watch.dir, id: watch.id });
    return this.store.removeWatch(watch.id);
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.watchers.values()].map((w) => w.close()));
    this.watchers.clear();
  }

  private async arm(w: Watch, { rearm }: { rearm: boolean }): Promise<void> {
    const watcher = new FolderWatcher(
      { dir: w.dir, recursive: w.recursive, include: w.include, exclude: w.exclude },
      {
        onFile: (file, stat) => this.ingest(w, file, stat),
        onUnavailable: (reason) => {
          this.store.setWatchState(w.id, { available: false, lastError: reason });
          this.log.warn('watched folder unavailable', { dir: w.dir, reason });
        },
        onAvailable: () => {
          this.store.setWatchState(w.id, { available: true, lastError: null });
          this.log.info('watched folder available', { dir: w.dir });
        },
        onRemoved: (file) => {
          this.store.setRecordingMissing(file, true);
        },
        onError: (err) => {
          this.log.error('watch error', { dir: w.dir, error: describeError(err) });
          this.opts.onError?.(describeError(err), { path: w.dir });
        },
      },
      {
        // A --no-backfill watch re-armed at start still picks up what arrived since it was added.
        backfill: w.backfill || rearm,
        ...(!w.backfill && rearm ? { backfillSinceMs: w.createdAt } : {}),
        ...(this.opts.stabilityMs !== undefined ? { stabilityMs: this.opts.stabilityMs } : {}),
        ...(this.opts.presencePollMs !== undefined ? { presencePollMs: this.opts.presencePollMs } : {}),
      },
    );
    this.watchers.set(w.id, watcher);
    await watcher.start();
  }

  private async ingest(w: Watch, file: string, stat: fs.Stats): Promise<void> {
    let rec = this.store.unchangedRecording(file, stat.size, stat.mtimeMs);
    if (!rec) {
      const sha256 = await hashFile(file);
      rec = this.store.upsertRecording({ path: file, sha256, size: stat.size, mtimeMs: stat.mtimeMs });
    }
    // A file whose content already failed or was cancelled stays so (`wx retry` runs it again):
    // the back-fill at every start must not queue it once more.
    const job = this.store.enqueueJob({ recordingId: rec.id, priority: PRIORITY.watch, source: 'watch', watchId: w.id, dedupe: true, dedupeStates: JOB_STATES, maxAttempts: this.opts.maxAttempts });
    if (!job.reused) {
      this.log.info('watched file queued', { file, job: job.id, watch: w.dir });
      this.runner.wake();
    }
  }

  private onFinished(job: Job): void {
    if (job.state !== 'done' || job.watchId === null) return;
    const w = this.store.watch(job.watchId);
    if (!w || w.formats.length === 0) return;
    const t = this.store.transcriptForRecording(job.recordingId);
    if (!t) return;
    const transcript = toPipelineTranscript(t);
    try {
      const written = writeOutputs(transcript, { outputDir: w.outputDir ?? path.dirname(job.path), basename: path.basename(job.path, path.extname(job.path)), formats: w.formats });
      this.log.info('sidecar outputs written', { job: job.id, files: written.join(', ') });
    } catch (err) {
      this.log.error('cannot write sidecar outputs', { job: job.id, path: job.path, error: describeError(err) });
      this.opts.onError?.(`cannot write outputs for ${job.path}: ${describeError(err)}`, { path: job.path, job: job.id });
    }
  }
}
