// Runs a Transcriber on a worker thread: model inference and audio work block their thread for
// up to seconds at a time, and the daemon's main thread must keep answering the socket.
import { parentPort } from 'node:worker_threads';
import { WxError, describeError } from '../errors.js';
import { Transcriber } from '../pipeline/index.js';
import type { WorkerReply, WorkerRequest } from './transcriber-host.js';
import { decodeUtterance, type WindowModel } from '../dictation/window.js';

if (!parentPort) throw new Error('transcriber-worker must run in a worker thread');
const port = parentPort;
let transcriber: Transcriber | null = null;
const running = new Map<number, AbortController>();

const post = (msg: WorkerReply) => port.postMessage(msg);

// Idle memory release: once no call has been in flight for `idleReleaseMs`, the transcriber
// drops its caches and scratch (made again on the next call) and the process trims its heap.
let idleReleaseMs = 0;
let busy = 0;
let idleTimer: NodeJS.Timeout | null = null;
const rssMb = () => Math.round((process.memoryUsage().rss / 2 ** 20) * 10) / 10;
function callStarted(): void {
  busy++;
  if (idleTimer) clearTimeout(idleTimer);
  idleTimer = null;
}
function callEnded(): void {
  busy--;
  if (busy > 0 || idleReleaseMs <= 0 || !transcriber) return;
  idleTimer = setTimeout(() => {
    idleTimer = null;
    if (busy > 0 || !transcriber) return;
    const before = rssMb();
    if (transcriber.releaseMemory()) post({ type: 'released', rssBeforeMb: before, rssAfterMb: rssMb() });
  }, idleReleaseMs);
  idleTimer.unref();
}
const errorOf = (err: unknown) =>
  err instanceof WxError ? { code: err.code, message: err.message, context: err.context } : { code: 'engine.failed', message: describeError(err), context: {} };

port.on('message', async (msg: WorkerRequest) => {
  switch (msg.type) {
    case 'open':
      try {
        idleReleaseMs = msg.idleReleaseMs ?? 0;
        transcriber = await Transcriber.open(msg.opts);
        post({ type: 'opened', modelName: transcriber.modelName, precision: transcriber.precision });
      } catch (err) {
        post({ type: 'error', id: 0, error: errorOf(err) });
      }
      return;
    case 'transcribe': {
      const controller = new AbortController();
      running.set(msg.id, controller);
      callStarted();
      try {
        if (!transcriber) throw new WxError('engine.not_open', 'the transcriber is not open');
        const transcript = await transcriber.transcribeFile(msg.file, msg.opts, {
          signal: controller.signal,
          onProgress: (p) => post({ type: 'progress', id: msg.id, progress: p }),
        });
        post({ type: 'result', id: msg.id, transcript });
      } catch (err) {
        post({ type: 'error', id: msg.id, error: errorOf(err), aborted: controller.signal.aborted });
      } finally {
        running.delete(msg.id);
        callEnded();
      }
      return;
    }
    case 'utterance':
      callStarted();
      try {
        if (!transcriber) throw new WxError('engine.not_open', 'the transcriber is not open');
        const engine = transcriber.engine;
        // Through the engine scheduler, where dictation work goes before everything else.
        const model: WindowModel = transcriber.scheduler;
        const hypothesis = await decodeUtterance(model, engine, msg.request);
        post({ type: 'utterance', id: msg.id, hypothesis });
      } catch (err) {
        post({ type: 'error', id: msg.id, error: errorOf(err) });
      } finally {
        callEnded();
      }
      return;
    case 'cancel':
      running.get(msg.id)?.abort();
      return;
    case 'close':
      if (idleTimer) clearTimeout(idleTimer);
      for (const c of running.values()) c.abort();
      await transcriber?.close();
      post({ type: 'closed' });
      port.close();
      return;
  }
});
