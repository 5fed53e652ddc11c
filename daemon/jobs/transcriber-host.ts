// The daemon's handle on a Transcriber living in a worker thread (transcriber-worker.ts): same
// calls as Transcriber (open, transcribeFile with progress and an AbortSignal, close), but the
// main thread stays free to serve the socket while the model runs.
import { Worker } from 'node:worker_threads';
import { WxError } from '../errors.js';
import type { TranscribeOptions, TranscribeProgress, TranscriberOptions, Transcript } from '../pipeline/index.js';
import type { PipelineOptions } from '../pipeline/transcribe.js';
import type { UtteranceHypothesis, UtteranceRequest } from '../dictation/window.js';

type Precision = 'int8' | 'fp32';
type ErrorShape = { code: string; message: string; context: WxError['context'] };

export type WorkerRequest =
  | { type: 'open'; opts: Omit<TranscriberOptions, 'onImportProgress'>; idleReleaseMs?: number }
  | { type: 'transcribe'; id: number; file: string; opts: TranscribeOptions & PipelineOptions }
  | { type: 'cancel'; id: number }
  | { type: 'utterance'; id: number; request: UtteranceRequest }
  | { type: 'close' };

export type WorkerReply =
  | { type: 'opened'; modelName: string; precision: Precision }
  | { type: 'progress'; id: number; progress: TranscribeProgress }
  | { type: 'result'; id: number; transcript: Transcript }
  | { type: 'utterance'; id: number; hypothesis: UtteranceHypothesis }
  | { type: 'error'; id: number; error: ErrorShape; aborted?: boolean }
  | { type: 'released'; rssBeforeMb: number; rssAfterMb: number }
  | { type: 'closed' };

/** What the job runner needs from a transcriber (the worker host, or an in-process Transcriber). */
export interface TranscribeEngine {
  readonly modelName: string;
  readonly precision: Precision;
  transcribeFile(file: string, opts: TranscribeOptions & PipelineOptions, hooks?: { onProgress?: (p: TranscribeProgress) => void; signal?: AbortSignal }): Promise<Transcript>;
  /** One dictation decode of an utterance's audio (daemon/dictation), where the model runs. */
  decodeUtterance?(request: UtteranceRequest): Promise<UtteranceHypothesis>;
  close(): Promise<void>;
  /** Closes once the calls in flight have finished (a model switch: running jobs keep it). */
  retire?(): Promise<void>;
}

/** An idle engine gave memory back (the process's RSS before and after). */
export interface MemoryRelease {
  at: string;
  rssBeforeMb: number;
  rssAfterMb: number;
}

export interface WorkerOptions {
  /** Milliseconds without a call after which the engine releases its caches (0: never). */
  idleReleaseMs?: number;
  onRelease?: (r: MemoryRelease) => void;
}

interface Call {
  resolve: (t: Transcript) => void;
  resolveUtterance?: (h: UtteranceHypothesis) => void;
  reject: (e: Error) => void;
  onProgress?: (p: TranscribeProgress) => void;
}

export class WorkerTranscriber implements TranscribeEngine {
  private nextId = 1;
  private readonly calls = new Map<number, Call>();
  private dead: Error | null = null;
  private closing: Promise<void> | null = null;
  private retiring: { resolve: () => void; done: Promise<void> } | null = null;

  private constructor(
    private readonly worker: Worker,
    readonly modelName: string,
    readonly precision: Precision,
    private readonly onRelease?: (r: MemoryRelease) => void,
  ) {
    worker.on('message', (msg: WorkerReply) => this.onMessage(msg));
    const die = (err: Error) => {
      this.dead = err;
      for (const c of this.calls.values()) c.reject(err);
      this.calls.clear();
      this.retiring?.resolve();
    };
    worker.on('error', (err) => die(new WxError('engine.worker_crashed', `the transcription worker crashed: ${err.message}`)));
    worker.on('exit', (code) => {
      if (!this.closing) die(new WxError('engine.worker_exited', `the transcription worker exited (code ${code})`));
    });
  }

  /** Starts a worker thread and loads the model in it; rejects with the load error. */
  static open(opts: Omit<TranscriberOptions, 'onImportProgress'>, options: WorkerOptions = {}): Promise<WorkerTranscriber> {
    const worker = new Worker(new URL('./transcriber-worker.js', import.meta.url));
    return new Promise((resolve, reject) => {
      const onMessage = (msg: WorkerReply) => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        if (msg.type === 'opened') resolve(new WorkerTranscriber(worker, msg.modelName, msg.precision, options.onRelease));
        else {
          void worker.terminate();
          const e = msg.type === 'error' ? msg.error : { code: 'engine.open_failed', message: 'unexpected reply from the worker', context: {} };
          reject(new WxError(e.code, e.message, e.context));
        }
      };
      const onError = (err: Error) => {
        worker.off('message', onMessage);
        reject(new WxError('engine.worker_crashed', `the transcription worker failed while loading ${opts.model}: ${err.message}`, { model: opts.model }));
      };
      worker.on('message', onMessage);
      worker.once('error', onError);
      worker.postMessage({ type: 'open', opts, ...(options.idleReleaseMs ? { idleReleaseMs: options.idleReleaseMs } : {}) } satisfies WorkerRequest);
    });
  }

  transcribeFile(file: string, opts: TranscribeOptions & PipelineOptions, hooks: { onProgress?: (p: TranscribeProgress) => void; signal?: AbortSignal } = {}): Promise<Transcript> {
    if (this.dead) return Promise.reject(this.dead);
    if (this.closing) return Promise.reject(this.closedError(file));
    if (hooks.signal?.aborted) return Promise.reject(abortError(file));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const call: Call = { resolve, reject };
      if (hooks.onProgress) call.onProgress = hooks.onProgress;
      this.calls.set(id, call);
      hooks.signal?.addEventListener('abort', () => this.worker.postMessage({ type: 'cancel', id } satisfies WorkerRequest), { once: true });
      this.worker.postMessage({ type: 'transcribe', id, file, opts } satisfies WorkerRequest);
    });
  }

  decodeUtterance(request: UtteranceRequest): Promise<UtteranceHypothesis> {
    if (this.dead) return Promise.reject(this.dead);
    if (this.closing) return Promise.reject(this.closedError('dictation'));
    const id = this.nextId++;
    return new Promise((resolveUtterance, reject) => {
      this.calls.set(id, { resolve: () => {}, resolveUtterance, reject });
      this.worker.postMessage({ type: 'utterance', id, request } satisfies WorkerRequest);
    });
  }

  private onMessage(msg: WorkerReply): void {
    if (msg.type === 'opened' || msg.type === 'closed') return;
    if (msg.type === 'released') return this.onRelease?.({ at: new Date().toISOString(), rssBeforeMb: msg.rssBeforeMb, rssAfterMb: msg.rssAfterMb });
    const call = this.calls.get(msg.id);
    if (!call) return;
    if (msg.type === 'progress') return call.onProgress?.(msg.progress);
    this.calls.delete(msg.id);
    if (this.retiring && this.calls.size === 0) queueMicrotask(() => this.finishRetiring());
    if (msg.type === 'result') call.resolve(msg.transcript);
    else if (msg.type === 'utterance') call.resolveUtterance?.(msg.hypothesis);
    else if (msg.aborted) call.reject(abortError(String(msg.error.context.file ?? '')));
    else call.reject(new WxError(msg.error.code, msg.error.message, msg.error.context));
  }

  retire(): Promise<void> {
    if (!this.retiring) {
      let resolve!: () => void;
      const done = new Promise<void>((r) => (resolve = r));
      this.retiring = { resolve, done };
      if (this.calls.size === 0) this.finishRetiring();
    }
    return this.retiring.done;
  }

  private finishRetiring(): void {
    // A call that arrived after retire() was asked keeps the engine open until it is done too.
    if (!this.retiring || this.calls.size > 0) return;
    void this.close().then(this.retiring.resolve);
  }

  private closedError(what: string): WxError {
    return new WxError('engine.closed', `the ${this.modelName} engine was closed (the default model changed); retry the request`, { model: this.modelName, file: what });
  }

  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      if (this.dead) return resolve();
      this.worker.once('exit', () => resolve());
      this.worker.postMessage({ type: 'close' } satisfies WorkerRequest);
    });
    return this.closing;
  }
}

/** A cancelled transcription (name `AbortError`, like the platform's abort errors). */
export class CancelledError extends WxError {
  override readonly name = 'AbortError';
}

function abortError(file: string): Error {
  return new CancelledError('job.cancelled', `transcription of ${file} was cancelled`, { file });
}
