// The daemon process: one per user. It takes the instance lock, listens on the socket,
// answers the protocol, and (as the store and pipeline land) owns the database, the warm
// model and the job loop. Readiness = answering `initialize`.
import fs from 'node:fs';
import path from 'node:path';
import { MAX_BEAM, isBeamSize, loadConfig, pipelineDefaults, type WxConfig } from './config.js';
import { WxError, describeError } from './errors.js';
import { InstanceLock } from './instance.js';
import { RpcServer } from './ipc/server.js';
import {
  ErrorCode,
  PLANNED_METHODS,
  type ErrorCodeName,
  PROTOCOL_VERSION,
  type JobInfo,
  type MethodName,
  type ModelStatus,
  type ParamsOf,
  type ResultOf,
  type SearchHit,
  type StatusResult,
  type StoredTranscript as WireTranscript,
  type WatchInfo,
} from './ipc/protocol.js';
import { RpcMethodError, type RequestContext } from './ipc/transport.js';
import { JobRunner, type JobOptions } from './jobs/runner.js';
import { WatchManager } from './jobs/watches.js';
import { DictationManager } from './dictation/index.js';
import { WorkerTranscriber, type TranscribeEngine } from './jobs/transcriber-host.js';
import { getDefaultModel, modelsOverview, pullModel, repoFor, resolveModel, setDefaultModel, type PullProgress } from './models/registry.js';
import { PRIORITY, TranscriptStore, toPipelineTranscript, type Job, type StoredSegment, type StoredTranscript, type Watch } from './store/index.js';
import { hashFile } from './watch/index.js';
import { Logger } from './log.js';
import { wxPaths, type WxPaths } from './paths.js';
import { VERSION } from './version.js';

export interface DaemonOptions {
  home: string;
  /** Echo log lines to stderr (`wx daemon start --foreground`). */
  echoLog?: boolean;
}

/** Exit codes of the daemon process. */
export const DAEMON_EXIT = { ok: 0, config: 78, fatal: 70 } as const;

export class Daemon {
  readonly paths: WxPaths;
  readonly startedAt = Date.now();
  config!: WxConfig;
  log!: Logger;
  private server!: RpcServer;
  private lock: InstanceLock | null = null;
  private stopping: Promise<void> | null = null;
  /** Set first thing in shutdown: aborted requests then leave their jobs queued, not cancelled. */
  private shuttingDown = false;
  private model: ModelStatus | null = null;
  private modelLoading: string | null = null;
  private lastError: StatusResult['last_error'] = null;
  store!: TranscriptStore;
  runner!: JobRunner;
  watches!: WatchManager;
  dictation!: DictationManager;
  /** Open engines by `model|precision`; the default one is loaded at start and kept warm. */
  private readonly engines = new Map<string, Promise<TranscribeEngine>>();
  private defaultKey: string | null = null;
  /** Engines replaced by a model switch, closing once their running calls finish. */
  private readonly retiring = new Set<Promise<TranscribeEngine>>();
  /** `models.default` sets run one after another (load, then config, then swap). */
  private defaultSwitch: Promise<unknown> = Promise.resolve();
  private loadSeq = 0;
  /** Repos being pulled now: a second pull of one would write the same download files. */
  private readonly pulling = new Set<string>();
  /** Resolves when the daemon has shut down. */
  readonly done: Promise<void>;
  private resolveDone!: () => void;

  constructor(private readonly opts: DaemonOptions) {
    this.paths = wxPaths(opts.home);
    this.done = new Promise((r) => (this.resolveDone = r));
  }

  /** Starts serving. Returns false (after logging) when another daemon is already running. */
  async start(): Promise<boolean> {
    fs.mkdirSync(this.paths.home, { recursive: true, mode: 0o700 });
    this.config = loadConfig(this.paths.config);
    this.log = new Logger(`${this.paths.logs}/daemon.log`, {
      level: this.config.logLevel,
      maxBytes: this.config.log.maxBytes,
      keep: this.config.log.keep,
      echo: this.opts.echoLog,
    });
    const got = await InstanceLock.acquire(this.paths.lock, this.paths.socket, {
      onStale: (owner, why) => this.log.warn('replacing a stale daemon lock', { owner: owner?.pid ?? null, why }),
    });
    if (!got.acquired) {
      this.log.info('another daemon is already running', { pid: got.owner.pid });
      this.log.close();
      return false;
    }
    this.lock = got.lock;
    try {
      this.store = TranscriptStore.open(this.paths.db, { retryBaseMs: this.config.jobs.retryBaseMs, defaultMaxAttempts: this.config.jobs.maxAttempts });
    } catch (err) {
      this.lock.release();
      throw err;
    }
    const requeued = this.store.requeueRunningJobs();
    if (requeued > 0) this.log.warn('re-queued jobs interrupted by a previous daemon', { jobs: requeued });
    this.runner = new JobRunner(this.store, (o) => this.engineFor(o), this.log, this.config.jobs.concurrency, pipelineDefaults(this.config));
    this.runner.on('started', (job) => this.jobStarts.set(job.id, performance.now()));
    this.runner.on('finished', (job, stored) => {
      if (job.state === 'failed') this.recordError(job.error ?? 'failed', { job: job.id, path: job.path });
      const t0 = this.jobStarts.get(job.id);
      this.jobStarts.delete(job.id);
      if (t0 !== undefined && stored && job.state === 'done') this.throughput.record(stored.durationS, (performance.now() - t0) / 1000);
    });
    this.watches = new WatchManager(this.store, this.runner, this.log, {
      maxAttempts: this.config.jobs.maxAttempts,
      stabilityMs: this.config.watch.stabilityMs,
      presencePollMs: this.config.watch.presencePollMs,
      onError: (message, extra) => this.recordError(message, extra),
    });
    this.server = new RpcServer({
      socketPath: this.paths.socket,
      daemonVersion: VERSION,
      modelName: () => this.model?.name,
      log: (level, message, context) => this.log.write(level, message, context),
    });
    this.dictation = new DictationManager({
      paths: this.paths,
      store: this.store,
      log: this.log,
      config: () => this.config.dictation,
      engine: () => this.engineFor({}),
      wakeRunner: () => this.runner.wake(PRIORITY.dictation),
    });
    this.registerMethods();
    try {
      await this.server.listen();
    } catch (err) {
      this.store.close();
      this.lock.release();
      throw err;
    }
    this.loadDefaultModel();
    this.runner.start();
    // Watches re-arm in the background: a large back-fill must not delay readiness.
    this.watches.startAll().catch((err) => this.log.error('cannot re-arm watched folders', { error: describeError(err) }));
    this.dictation.recover().catch((err) => this.log.error('cannot recover interrupted dictations', { error: describeError(err) }));
    this.log.info('daemon listening', { socket: this.paths.socket, version: VERSION, protocol: PROTOCOL_VERSION, home: this.paths.home });
    return true;
  }

  /** Registers a handler whose WxErrors become typed protocol errors (not found, bad params). */
  private method<M extends MethodName>(name: M, fn: (params: ParamsOf<M>, ctx: RequestContext) => Promise<ResultOf<M>> | ResultOf<M>): void {
    this.server.handle(name, async (params, ctx) => {
      try {
        return await fn(params, ctx);
      } catch (err) {
        throw asRpcError(err);
      }
    });
  }

  private registerMethods(): void {
    this.method('status', () => this.status());
    this.method('daemon.shutdown', () => {
      // Reply first, then stop: the caller waits for the socket to go away.
      setImmediate(() => void this.shutdown('daemon.shutdown request'));
      return { pid: process.pid };
    });
    this.method('transcribe', (p, ctx) => this.transcribe(p, ctx));
    this.method('jobs.list', (p) => {
      const q: { state?: Job['state']; limit: number } = { limit: p?.limit ?? 100 };
      if (p?.state) q.state = p.state;
      return this.store.listJobs(q).map(jobInfo);
    });
    this.method('jobs.retry', (p) => {
      const job = this.store.retryJob(requireId(p?.id));
      this.runner.wake(job.priority);
      return jobInfo(job);
    });
    this.method('jobs.cancel', (p) => {
      const job = this.store.cancelJob(requireId(p?.id));
      this.runner.cancel(job.id);
      return jobInfo(job);
    });
    this.method('transcripts.get', (p) => {
      let recordingId = p?.recordingId;
      if (p?.jobId !== undefined) recordingId = this.store.job(p.jobId)?.recordingId;
      else if (p?.path !== undefined) recordingId = this.store.recordingByPath(p.path)?.id;
      const t = recordingId === undefined ? undefined : this.store.transcriptForRecording(recordingId);
      if (!t) throw RpcMethodError.of('notFound', 'transcript.not_found', `no stored transcript for ${JSON.stringify(p)}`, {});
      return wireTranscript(t, this.store.recording(t.recordingId)?.path ?? '');
    });
    this.method('recordings.forget', (p) => {
      const rec = p?.recordingId !== undefined ? this.store.recording(p.recordingId) : p?.path !== undefined ? this.store.recordingByPath(p.path) : undefined;
      if (!rec) throw RpcMethodError.of('notFound', 'recording.not_found', `no recording ${p?.path ?? p?.recordingId ?? ''} in the database`, { path: p?.path ?? null });
      for (const job of this.store.listJobs({ recordingId: rec.id, state: 'running' })) {
        this.store.cancelJob(job.id);
        this.runner.cancel(job.id);
      }
      this.store.deleteRecording(rec.id);
      this.log.info('recording forgotten', { recording: rec.id, path: rec.path });
      return { recording_id: rec.id, path: rec.path };
    });
    this.method('models.ls', () => this.listModels());
    this.method('models.pull', (p, ctx) => this.pull(p, ctx));
    this.method('models.default', (p) => {
      if (p?.name === undefined) {
        const def = getDefaultModel(this.paths.home);
        if (!def) throw RpcMethodError.of('notFound', 'model.no_default', 'no default model: set one with `wx models default <name>` (see wx models ls)');
        return { name: def.model, from: def.from, precision: this.config.precision, ...(this.model?.name === def.model ? { load_ms: this.model.load_ms } : {}) };
      }
      if (typeof p.name !== 'string' || !p.name) throw RpcMethodError.of('invalidParams', 'models.bad_params', 'models.default needs {name?: string}');
      const name = p.name;
      const next = this.defaultSwitch.then(() => this.setDefault(name));
      this.defaultSwitch = next.catch(() => {});
      return next;
    });
    this.method('search', (p) => {
      if (!p || typeof p.query !== 'string') throw RpcMethodError.of('invalidParams', 'search.bad_params', 'search needs {query: string}');
      const opts: { limit: number; sinceMs?: number; pathGlob?: string } = { limit: p.limit ?? 20 };
      if (p.since !== undefined) {
        const since = Date.parse(p.since);
        if (Number.isNaN(since)) throw RpcMethodError.of('badParams', 'search.bad_since', `--since: cannot read ${JSON.stringify(p.since)} as a date (use YYYY-MM-DD or an ISO time)`, { since: p.since });
        opts.sinceMs = since;
      }
      if (p.path !== undefined) opts.pathGlob = p.path;
      return this.store.search(p.query, opts).map(
        (h): SearchHit => ({ path: h.path, recording_id: h.recordingId, start: h.start, end: h.end, text: h.text, snippet: h.snippet, score: h.score }),
      );
    });
    this.method('watch.ls', () => this.store.listWatches().map(watchInfo));
    this.method('watch.add', async (p) => {
      if (!p || typeof p.dir !== 'string' || !path.isAbsolute(p.dir)) throw RpcMethodError.of('invalidParams', 'watch.bad_params', 'watch.add needs {dir: absolute path}');
      const input: Parameters<WatchManager['add']>[0] = { dir: p.dir, recursive: p.recursive ?? false, include: p.include ?? [], exclude: p.exclude ?? [], backfill: p.backfill ?? true };
      if (p.outputDir) input.outputDir = p.outputDir;
      if (p.formats) input.formats = p.formats;
      return watchInfo(await this.watches.add(input));
    });
    this.method('watch.rm', async (p) => {
      if (!p || typeof p.dir !== 'string') throw RpcMethodError.of('invalidParams', 'watch.bad_params', 'watch.rm needs {dir}');
      const removed = await this.watches.remove(p.dir);
      if (!removed) throw RpcMethodError.of('notFound', 'watch.not_found', `${path.resolve(p.dir)} is not watched`, { dir: p.dir });
      return { removed };
    });
    this.method('dictation.start', (p, ctx) => this.dictation.start(p, ctx));
    this.method('dictation.audio', (p, ctx) => this.dictation.audio(p, ctx));
    this.method('dictation.stop', (p, ctx) => this.dictation.stop(p, ctx));
    this.method('dictation.cancel', (p, ctx) => this.dictation.cancel(p, ctx));
    this.method('dictation.history', (p) => this.dictation.history(p));
    for (const method of PLANNED_METHODS) {
      this.server.handle(method, () => {
        throw RpcMethodError.of('methodNotFound', 'ipc.not_implemented', `${method} is not available in this daemon yet`, { method });
      });
    }
  }

  /** Loads the default model in the background: the socket answers meanwhile (status shows no
   *  model until it is loaded; jobs wait for it). */
  private loadDefaultModel(): void {
    let model: string | undefined;
    try {
      model = getDefaultModel(this.paths.home)?.model;
    } catch (err) {
      this.log.error('cannot read the default model setting', { error: describeError(err) });
    }
    if (!model) {
      this.log.warn('no default model: set one with `wx models pull tiny` or WX_MODEL');
      return;
    }
    this.useDefault(model).catch(() => {});
  }

  /** Loads `model` and makes it the warm default. Until it is loaded, jobs keep using the
   *  previous default (if any); then the previous engine is retired: jobs running on it finish
   *  there, and it closes once idle. A failed load changes nothing. */
  private async useDefault(model: string): Promise<{ engine: TranscribeEngine; loadMs: number }> {
    const precision = this.config.precision;
    const key = `${model}|${precision}`;
    // At start there is no previous default: jobs arriving during the load wait for this one.
    this.defaultKey ??= key;
    const seq = ++this.loadSeq;
    const t0 = performance.now();
    this.modelLoading = model;
    let engine: TranscribeEngine;
    try {
      engine = await this.openEngine(model, precision);
    } catch (err) {
      if (seq === this.loadSeq) this.modelLoading = null;
      this.recordError(`cannot load the model ${model}: ${describeError(err)}`);
      this.log.error('cannot load the default model', { model, error: describeError(err) });
      throw err;
    }
    if (seq === this.loadSeq) this.modelLoading = null;
    const loadMs = Math.round(performance.now() - t0);
    const previous = this.defaultKey;
    this.defaultKey = key;
    this.model = { name: engine.modelName, precision: engine.precision, backend: 'onnxruntime-cpu', load_ms: loadMs };
    this.log.info('model loaded', { ...this.model });
    if (previous && previous !== key) this.retireEngine(previous, 'default model changed');
    return { engine, loadMs };
  }

  private async setDefault(name: string): Promise<ResultOf<'models.default'>> {
    // Resolve first (a clear error for a name that is not installed), load, and only then
    // write config.json: a model that cannot load never becomes the default.
    const m = await resolveModel(name, { home: this.paths.home });
    const { engine, loadMs } = await this.useDefault(m.name);
    await setDefaultModel(this.paths.home, m.name);
    const from = getDefaultModel(this.paths.home)?.from ?? 'config';
    this.log.info('default model set', { model: m.name, from });
    return { name: m.name, from, precision: engine.precision, dir: m.dir, load_ms: loadMs };
  }

  /** Takes an engine out of use: calls in flight finish on it, then it closes. */
  private retireEngine(key: string, why: string): void {
    const engine = this.engines.get(key);
    if (!engine) return;
    this.engines.delete(key);
    this.retiring.add(engine);
    void engine
      .then((e) => (e.retire ? e.retire() : e.close()))
      .then(
        () => this.log.info('engine closed', { model: key, why }),
        (err) => this.log.warn('closing a retired engine failed', { model: key, error: describeError(err) }),
      )
      .finally(() => this.retiring.delete(engine));
  }

  private listModels(): ResultOf<'models.ls'> {
    return modelsOverview(this.paths.home);
  }


  private async pull(p: ParamsOf<'models.pull'>, ctx: RequestContext): Promise<ResultOf<'models.pull'>> {
    if (!p || typeof p.source !== 'string' || !p.source) throw RpcMethodError.of('invalidParams', 'models.bad_params', 'models.pull needs {source: alias or Hub repo id}');
    if (p.precision !== undefined && !['int8', 'fp32', 'both'].includes(p.precision)) {
      throw RpcMethodError.of('badParams', 'models.bad_precision', `precision must be int8, fp32 or both (got ${JSON.stringify(p.precision)})`, { precision: String(p.precision) });
    }
    const repo = repoFor(p.source) ?? p.source;
    if (this.pulling.has(repo)) throw RpcMethodError.of('busy', 'models.pull_running', `${repo} is being pulled already (by another client); wait for it or cancel it`, { repo });
    this.pulling.add(repo);
    // Download progress comes per chunk: a few notifications a second are enough for a bar.
    let lastSent = 0;
    let lastPhase = '';
    const onProgress = (pr: PullProgress) => {
      const now = performance.now();
      const final = pr.phase === 'done' || (pr.phase === 'download' && pr.bytesDone === pr.bytesTotal);
      if (!final && pr.phase === lastPhase && now - lastSent < 100) return;
      lastSent = now;
      lastPhase = pr.phase;
      ctx.connection.notify('models.progress', { requestId: ctx.id, source: p.source, ...pr }, { droppable: !final });
    };
    this.log.info('model pull', { source: p.source, revision: p.revision ?? 'main', precision: p.precision ?? 'int8' });
    try {
      const r = await pullModel(p.source, {
        home: this.paths.home,
        ...(p.revision ? { revision: p.revision } : {}),
        ...(p.precision ? { precision: p.precision } : {}),
        ...(p.name ? { name: p.name } : {}),
        ...(p.endpoint ? { endpoint: p.endpoint } : {}),
        ...(p.token ? { token: p.token } : {}),
        force: !!p.force,
        signal: ctx.signal,
        onProgress,
      });
      this.log.info('model pulled', { name: r.name, repo: r.repo, revision: r.manifest.revision ?? null, fetched: r.bytesFetched, alreadyInstalled: r.alreadyInstalled });
      // The first model installed becomes the default (the only installed model): load it.
      if (!this.defaultKey) this.loadDefaultModel();
      return {
        name: r.name,
        dir: r.dir,
        repo: r.repo,
        revision: r.manifest.revision ?? null,
        precisions: r.manifest.precisions,
        alreadyInstalled: r.alreadyInstalled,
        bytesTotal: r.bytesTotal,
        bytesFetched: r.bytesFetched,
      };
    } catch (err) {
      if (ctx.signal.aborted || (err instanceof WxError && err.code === 'hub.aborted')) {
        this.log.info('model pull cancelled', { source: p.source });
        throw RpcMethodError.of(
          this.shuttingDown ? 'busy' : 'cancelled',
          'models.pull_cancelled',
          `pull of ${p.source} ${this.shuttingDown ? 'stopped: the daemon is shutting down' : 'cancelled'}; the downloaded part is kept: the same pull resumes it`,
          { source: p.source, repo },
        );
      }
      if (err instanceof WxError && !(err instanceof RpcMethodError) && err.code.startsWith('model.')) {
        throw new RpcMethodError(ErrorCode.badParams, err.code, err.message, err.context);
      }
      throw err;
    } finally {
      this.pulling.delete(repo);
    }
  }

  private openEngine(model: string, precision: 'int8' | 'fp32'): Promise<TranscribeEngine> {
    const key = `${model}|${precision}`;
    let engine = this.engines.get(key);
    if (!engine) {
      engine = WorkerTranscriber.open(
        { model, precision, home: this.paths.home, threads: this.config.threads },
        {
          idleReleaseMs: this.config.idleReleaseS * 1000,
          onRelease: (r) => {
            this.memoryReleases.count++;
            this.memoryReleases.last = { at: r.at, rss_before_mb: r.rssBeforeMb, rss_after_mb: r.rssAfterMb };
            this.log.info('idle: released engine memory', { model, rss_before_mb: r.rssBeforeMb, rss_after_mb: r.rssAfterMb });
          },
        },
      );
      // A failed load is not cached: the next job tries again (e.g. after `wx models pull`).
      engine.catch(() => this.engines.delete(key));
      this.engines.set(key, engine);
      // Keep the default and at most one other model warm.
      for (const k of [...this.engines.keys()]) {
        if (this.engines.size <= 2) break;
        if (k === key || k === this.defaultKey) continue;
        this.retireEngine(k, 'more than two models warm');
      }
    }
    return engine;
  }

  /** The warm engine for these options (the default model unless they name another): for the
   *  job loop, and for other daemon parts that run the model (dictation). */
  engineFor(o: JobOptions = {}): Promise<TranscribeEngine> {
    const precision = o.precision ?? this.config.precision;
    const model = o.model ?? (this.defaultKey ? this.defaultKey.split('|')[0] : undefined);
    if (!model) {
      return Promise.reject(new WxError('model.none', 'no model to transcribe with: install one with `wx models pull tiny`, or set WX_MODEL'));
    }
    return this.openEngine(model, precision);
  }

  private async transcribe(p: ParamsOf<'transcribe'>, ctx: RequestContext): Promise<ResultOf<'transcribe'>> {
    if (!p || !Array.isArray(p.files) || p.files.length === 0) throw RpcMethodError.of('invalidParams', 'transcribe.bad_params', 'transcribe needs {files: [absolute paths]}');
    const beam = p.options?.beamSize;
    if (beam !== undefined && !isBeamSize(beam)) throw RpcMethodError.of('badParams', 'transcribe.bad_beam', `beamSize must be an integer from 1 to ${MAX_BEAM} (got ${JSON.stringify(beam)})`);
    for (const f of p.files) {
      if (typeof f !== 'string' || !path.isAbsolute(f)) throw RpcMethodError.of('badParams', 'transcribe.relative_path', `files must be absolute paths (got ${JSON.stringify(f)})`, { file: String(f) });
      const st = fs.statSync(f, { throwIfNoEntry: false });
      if (!st) throw RpcMethodError.of('badParams', 'transcribe.no_file', `${f}: no such file`, { file: f });
      if (!st.isFile()) throw RpcMethodError.of('badParams', 'transcribe.not_a_file', `${f}: not a regular file`, { file: f });
    }
    // Listen before queueing anything: a short job can finish while the next file is hashed.
    const mine = new Set<number>();
    const finished = new Map<number, Job>();
    let notifyFinished: (() => void) | null = null;
    const onFinished = (job: Job) => {
      if (!mine.has(job.id)) return;
      finished.set(job.id, job);
      notifyFinished?.();
    };
    const onProgress = (job: Job, pr: { processedS: number; durationS: number }) => {
      if (mine.has(job.id)) ctx.connection.notify('progress', { requestId: ctx.id, jobId: job.id, file: job.path, processedS: pr.processedS, durationS: pr.durationS }, { droppable: true });
    };
    this.runner.on('finished', onFinished);
    this.runner.on('progress', onProgress);
    const jobs: Job[] = [];
    try {
      const options: JobOptions = { ...(p.options ?? {}) };
      const priority = p.priority === 'backlog' ? PRIORITY.watch : PRIORITY.interactive;
      for (const file of p.files) {
        const st = fs.statSync(file);
        const sha256 = await hashFile(file);
        const rec = this.store.upsertRecording({ path: file, sha256, size: st.size, mtimeMs: st.mtimeMs });
        // Asked for by a person who is waiting: one attempt, and the error goes straight back.
        const job = this.store.enqueueJob({ recordingId: rec.id, priority, source: 'cli', options, maxAttempts: p.wait ? 1 : this.config.jobs.maxAttempts });
        mine.add(job.id);
        jobs.push(job);
        this.runner.wake(priority);
      }
      if (!p.wait) return { jobs: jobs.map(jobInfo), transcripts: jobs.map(() => null) };
      while (finished.size < jobs.length) {
        if (ctx.signal.aborted) break;
        await new Promise<void>((resolve) => {
          notifyFinished = resolve;
          ctx.signal.addEventListener('abort', () => resolve(), { once: true });
        });
        notifyFinished = null;
      }
      if (ctx.signal.aborted && this.shuttingDown) {
        throw RpcMethodError.of('busy', 'daemon.shutting_down', 'the daemon is shutting down; the files stay queued and are transcribed at its next start', { jobs: jobs.map((j) => j.id).join(',') });
      }
      if (ctx.signal.aborted) {
        for (const job of jobs) {
          if (finished.has(job.id)) continue;
          try {
            this.store.cancelJob(job.id);
          } catch {
            // finished in the meantime
          }
          this.runner.cancel(job.id);
        }
        throw RpcMethodError.of('cancelled', 'request.cancelled', `transcription of ${jobs.length} file(s) cancelled`, { jobs: jobs.map((j) => j.id).join(',') });
      }
      const final = jobs.map((j) => finished.get(j.id) ?? this.store.job(j.id)!);
      return {
        jobs: final.map(jobInfo),
        transcripts: final.map((j) => {
          if (j.state !== 'done') return null;
          const t = this.store.transcriptForRecording(j.recordingId);
          return t ? wireTranscript(t, j.path) : null;
        }),
      };
    } finally {
      this.runner.off('finished', onFinished);
      this.runner.off('progress', onProgress);
    }
  }

  private readonly memoryReleases: NonNullable<StatusResult['memory_releases']> = { count: 0, last: null };
  private readonly jobStarts = new Map<number, number>();
  private readonly throughput = new ThroughputMeter();

  status(): StatusResult {
    const q = this.store.queueStats();
    const speed = this.throughput.speed();
    const remainingS = q.queuedAudioS + q.runningAudioS;
    return {
      pid: process.pid,
      version: VERSION,
      protocol_version: PROTOCOL_VERSION,
      uptime_s: Math.round((Date.now() - this.startedAt) / 100) / 10,
      model: this.model,
      model_loading: this.modelLoading,
      rss_mb: Math.round((process.memoryUsage().rss / 2 ** 20) * 10) / 10,
      queue: {
        queued: q.queued,
        running: q.running,
        done: q.done,
        failed: q.failed,
        cancelled: q.cancelled,
        queued_audio_s: q.queuedAudioS,
        queued_unknown_duration: q.queuedUnknownDuration,
        speed_x: speed === undefined ? null : Math.round(speed * 10) / 10,
        eta_s: speed === undefined || remainingS === 0 ? null : Math.round(remainingS / speed),
      },
      watch: this.store.listWatches().map(watchInfo),
      last_error: this.lastError,
      dictation: { sessions: this.dictation.sessionCount },
      memory_releases: { count: this.memoryReleases.count, last: this.memoryReleases.last && { ...this.memoryReleases.last } },
      home: this.paths.home,
      socket: this.paths.socket,
    };
  }

  /** Stops accepting, cancels requests, closes everything, removes socket and lock. Idempotent. */
  shutdown(reason: string): Promise<void> {
    this.shuttingDown = true;
    this.stopping ??= (async () => {
      this.log.info('daemon shutting down', { reason });
      // Every step is attempted even if an earlier one fails: the lock and socket must go.
      const step = async (what: string, fn: () => unknown) => {
        try {
          await fn();
        } catch (err) {
          this.log.error(`shutdown: ${what} failed`, { error: describeError(err) });
        }
      };
      await step('closing the socket', () => this.server.close());
      await step('closing watchers', () => this.watches.closeAll());
      await step('keeping open dictations', () => this.dictation.closeAll());
      await step('stopping the job loop', () => this.runner.stop());
      for (const engine of [...this.engines.values(), ...this.retiring]) await step('closing an engine', () => engine.then((e) => e.close()));
      await step('closing the database', () => this.store.close());
      this.lock?.release();
      this.log.info('daemon stopped');
      this.log.close();
      this.resolveDone();
    })();
    return this.stopping;
  }

  recordError(message: string, extra: { job?: number; path?: string } = {}): void {
    this.lastError = { at: new Date().toISOString(), message, ...extra };
  }
}

/** Entry point of the daemon process: runs until SIGTERM/SIGINT or `daemon.shutdown`. */
export async function runDaemon(opts: DaemonOptions): Promise<number> {
  const daemon = new Daemon(opts);
  let started: boolean;
  try {
    started = await daemon.start();
  } catch (err) {
    process.stderr.write(`wx daemon: ${describeError(err)}\n`);
    return err instanceof WxError && err.code.startsWith('config.') ? DAEMON_EXIT.config : DAEMON_EXIT.fatal;
  }
  if (!started) {
    process.stderr.write(`wx daemon: already running (see ${daemon.paths.socket})\n`);
    return DAEMON_EXIT.ok;
  }
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    // A second signal while stopping means "now": exit without the remaining clean-up (the
    // queue is in SQLite; the next start recovers the stale lock and re-queues the job).
    if (++signals > 1) {
      daemon.log.warn('second signal during shutdown: exiting at once', { signal: sig });
      process.exit(DAEMON_EXIT.fatal);
    }
    void daemon.shutdown(sig);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // The terminal going away must not kill a background daemon started from it.
  process.on('SIGHUP', () => daemon.log.info('SIGHUP ignored'));
  let exitCode: number = DAEMON_EXIT.ok;
  // State after an unexpected exception is unknown: stop cleanly (the queue is in SQLite and
  // the service manager restarts us) rather than limp on.
  process.on('uncaughtException', (err) => {
    daemon.log.error('uncaught exception', { error: err.stack ?? String(err) });
    exitCode = DAEMON_EXIT.fatal;
    void daemon.shutdown('uncaught exception');
  });
  await daemon.done;
  return exitCode;
}

function requireId(id: unknown): number {
  if (typeof id !== 'number' || !Number.isInteger(id) || id <= 0) throw RpcMethodError.of('invalidParams', 'job.bad_id', `a job id must be a positive integer (got ${JSON.stringify(id)})`);
  return id;
}

/** Store errors → protocol error codes, keeping the WxError code and context. */
function asRpcError(err: unknown): unknown {
  if (!(err instanceof WxError) || err instanceof RpcMethodError) return err;
  const code = err.code;
  const name: ErrorCodeName = /not_found$/.test(code)
    ? 'notFound'
    : /(illegal_transition|bad_input|bad_|exists$|syntax)/.test(code)
      ? 'badParams'
      : 'internalError';
  return new RpcMethodError(ErrorCode[name], code, err.message, err.context);
}

function iso(ms: number | null): string | undefined {
  return ms === null ? undefined : new Date(ms).toISOString();
}

export function jobInfo(j: Job): JobInfo {
  const info: JobInfo = { id: j.id, path: j.path, state: j.state, error: j.error, attempts: j.attempts, recording_id: j.recordingId };
  const created = iso(j.createdAt);
  if (created) info.created_at = created;
  const updated = iso(j.finishedAt ?? j.startedAt ?? j.createdAt);
  if (updated) info.updated_at = updated;
  return info;
}

function wireTranscript(t: StoredTranscript & { segments: StoredSegment[] }, filePath: string): WireTranscript {
  return {
    recording_id: t.recordingId,
    path: filePath,
    model: t.model,
    precision: t.precision === 'fp32' ? 'fp32' : 'int8',
    transcript: toPipelineTranscript(t),
  };
}

function watchInfo(w: Watch): WatchInfo {
  return {
    dir: w.dir,
    recursive: w.recursive,
    include: w.include,
    exclude: w.exclude,
    output_dir: w.outputDir,
    formats: w.formats,
    state: w.available ? 'ok' : w.lastError ? 'error' : 'missing',
    error: w.lastError,
  };
}

/** Speed of recent jobs (audio seconds per wall second, over the last 20 done jobs), for the
 *  backlog ETA in `wx status`. Jobs run concurrently share the engine, so per-job speed times
 *  the jobs in flight is roughly the aggregate; the ETA uses per-job speed and is conservative. */
export class ThroughputMeter {
  private readonly recent: { audioS: number; wallS: number }[] = [];
  record(audioS: number, wallS: number): void {
    if (!(audioS > 0) || !(wallS > 0)) return;
    this.recent.push({ audioS, wallS });
    if (this.recent.length > 20) this.recent.shift();
  }
  speed(): number | undefined {
    if (this.recent.length === 0) return undefined;
    const audio = this.recent.reduce((s, r) => s + r.audioS, 0);
    const wall = this.recent.reduce((s, r) => s + r.wallS, 0);
    return audio / wall;
  }
}
