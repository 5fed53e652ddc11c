// JobRunner: the daemon's job loop. Claims the most urgent runnable job from the store, runs it
// on a transcription engine (a worker thread), stores the transcript or the failure, repeats.
// It sleeps when the queue is empty and wakes on `wake()` (a job was queued) or when the
// earliest retry back-off ends; there is no polling of the database.
import { PRIORITY } from '../store/types.js';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import { describeError } from '../errors.js';
import type { Logger } from '../log.js';
import type { PipelineOptions, TranscribeOptions, TranscribeProgress } from '../pipeline/index.js';
import type { Job, StoredTranscript, TranscriptStore } from '../store/index.js';
import type { TranscribeEngine } from './transcriber-host.js';

export interface JobOptions extends TranscribeOptions {
  beamSize?: number;
  model?: string;
  precision?: 'int8' | 'fp32';
}

export interface JobRunnerEvents {
  /** A job started running. */
  started: [job: Job];
  progress: [job: Job, progress: TranscribeProgress];
  /** A job reached done, failed or cancelled (not a retry: that goes back to `queued`). */
  finished: [job: Job, transcript: StoredTranscript | null];
  /** A job failed and was queued again for a retry after a back-off. */
  retrying: [job: Job];
}

type StopReason = 'cancel' | 'shutdown';

interface Running {
  job: Job;
  controller: AbortController;
  reason: StopReason | null;
  done: Promise<void>;
}

export class JobRunner extends EventEmitter<JobRunnerEvents> {
  private readonly running = new Map<number, Running>();
  private stopping = false;
  private wakeUp: (() => void) | null = null;
  private loopDone: Promise<void> | null = null;
  /** Most urgent priority queued since the loop last looked (see wake). */
  private urgentHint: number | null = null;

  constructor(
    private readonly store: TranscriptStore,
    /** The engine for a job (the warm default, or another model the job asks for). */
    private readonly engineFor: (options: JobOptions) => Promise<TranscribeEngine>,
    private readonly log: Logger,
    /** Jobs run at once. More than 1 pays only when the engine batches across recordings
     *  (its scheduler interleaves their windows by priority); 1 runs them one after another. */
    private readonly concurrency = 1,
    /** Pipeline options every job starts from (config.json); a job's own options override them. */
    private readonly pipelineDefaults: PipelineOptions & TranscribeOptions = {},
  ) {
    super();
  }

  /** Jobs running now. */
  get current(): Job[] {
    return [...this.running.values()].map((r) => r.job);
  }

  start(): void {
    this.loopDone ??= this.loop();
  }

  /** Something was queued (or retried), or a slot came free: look at the queue now. Passing
   *  the queued job's priority lets a more urgent job start in one extra lane while all slots
   *  run less urgent work, so an interactive request never waits for a long backlog job. */
  wake(priority?: number): void {
    if (priority !== undefined) this.urgentHint = Math.min(this.urgentHint ?? priority, priority);
    const w = this.wakeUp;
    this.wakeUp = null;
    w?.();
  }

  /** Stops the job if it is running (the caller marks it cancelled in the store). */
  cancel(jobId: number): boolean {
    const r = this.running.get(jobId);
    if (!r) return false;
    r.reason = 'cancel';
    r.controller.abort();
    return true;
  }

  /** Stops the loop; running jobs are interrupted and put back in the queue (their attempt is
   *  not counted), so the next daemon start runs them again. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const r of this.running.values()) {
      // A job already being cancelled stays cancelled.
      r.reason ??= 'shutdown';
      r.controller.abort();
    }
    this.wake();
    await this.loopDone;
    await Promise.all([...this.running.values()].map((r) => r.done));
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      if (this.running.size >= this.concurrency && !this.urgentLaneFree()) {
        await this.sleep(undefined);
        continue;
      }
      this.urgentHint = null;
      let job: Job | undefined;
      try {
        job = this.store.claimNextJob();
      } catch (err) {
        this.log.error('cannot claim a job', { error: describeError(err) });
        await this.sleep(1000);
        continue;
      }
      if (!job) {
        await this.sleep(this.nextRetryInMs());
        continue;
      }
      const state: Running = { job, controller: new AbortController(), reason: null, done: Promise.resolve() };
      this.running.set(job.id, state);
      state.done = this.run(state)
        .catch((err) => {
          // run() records every outcome itself; reaching here is a bug, but the loop goes on.
          this.log.error('job loop error', { job: state.job.id, error: describeError(err) });
        })
        .finally(() => {
          this.running.delete(state.job.id);
          this.wake();
        });
    }
  }

  /** One job beyond `concurrency` may run when something more urgent than all running jobs
   *  was queued. */
  private urgentLaneFree(): boolean {
    if (this.urgentHint === null || this.running.size > this.concurrency) return false;
    const mostUrgentRunning = Math.min(...[...this.running.values()].map((r) => r.job.priority));
    return this.urgentHint < mostUrgentRunning;
  }

  /** Milliseconds until the earliest queued job's back-off ends (undefined: none waiting). */
  private nextRetryInMs(): number | undefined {
    const waiting = this.store.listJobs({ state: 'queued' });
    if (waiting.length === 0) return undefined;
    const due = Math.min(...waiting.map((j) => j.notBefore));
    return Math.max(10, due - Date.now());
  }

  private sleep(ms: number | undefined): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = ms === undefined ? null : setTimeout(() => this.wake(), ms);
      this.wakeUp = () => {
        if (timer) clearTimeout(timer);
        resolve();
      };
    });
  }

  private async run(state: Running): Promise<void> {
    const { job, controller } = state;
    this.emit('started', job);
    const t0 = performance.now();
    this.log.info('job started', { job: job.id, path: job.path, attempt: job.attempts, source: job.source });
    const options = (job.options ?? {}) as JobOptions;
    try {
      if (!fs.existsSync(job.path)) {
        const failed = this.store.failJob(job.id, `${job.path}: the file no longer exists`, { retry: false });
        this.log.warn('job failed: file gone', { job: job.id, path: job.path });
        this.emit('finished', failed, null);
        return;
      }
      const engine = await this.engineFor(options);
      const { model: _m, precision: _p, ...pipelineOptions } = options;
      void _m;
      void _p;
      // The job's queue priority becomes its scheduler priority: a dictation's or an
      // interactive request's windows overtake watched-folder backlog at the next decoder step.
      const priority = job.priority <= PRIORITY.dictation ? 'dictation' : job.priority <= PRIORITY.interactive ? 'interactive' : 'backlog';
      const transcript = await engine.transcribeFile(job.path, { ...this.pipelineDefaults, ...pipelineOptions, priority }, {
        signal: controller.signal,
        onProgress: (p) => this.emit('progress', job, p),
      });
      if (state.reason) throw new Error('stopped');
      const stored = this.store.completeJob(job.id, { ...transcript, model: engine.modelName, precision: engine.precision });
      const done = this.store.job(job.id)!;
      this.log.info('job done', { job: job.id, path: job.path, ms: Math.round(performance.now() - t0), audio_s: transcript.duration, segments: transcript.segments.length });
      this.emit('finished', done, stored);
    } catch (err) {
      if (state.reason === 'shutdown') {
        if (this.store.job(job.id)?.state === 'running') {
          this.store.releaseJob(job.id);
          this.log.info('job re-queued at shutdown', { job: job.id, path: job.path });
        }
      } else if (state.reason === 'cancel') {
        const cancelled = this.store.job(job.id)!;
        this.log.info('job cancelled', { job: job.id, path: job.path });
        this.emit('finished', cancelled, null);
      } else {
        const message = describeError(err);
        let after: Job;
        try {
          after = this.store.failJob(job.id, message);
        } catch (storeErr) {
          // e.g. the job was cancelled by another client meanwhile
          this.log.warn('could not record a job failure', { job: job.id, error: describeError(storeErr), cause: message });
          after = this.store.job(job.id) ?? job;
        }
        if (after.state === 'queued') {
          this.log.warn('job failed, will retry', { job: job.id, path: job.path, error: message, attempt: after.attempts, of: after.maxAttempts });
          this.emit('retrying', after);
        } else {
          this.log.error('job failed', { job: job.id, path: job.path, error: message });
          this.emit('finished', after, null);
        }
      }
    }
  }
}
