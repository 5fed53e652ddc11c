// The daemon's dictation service: the `dictation.*` methods, one DictationSession per dictation,
// and the guarantee that nothing said is lost — every frame goes to $WX_HOME/recordings/<id>.wav
// (with a recording row) before it reaches the model; a dictation whose transcription fails,
// whose client vanishes or that the daemon could not finish becomes a queued job.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { StreamResampler } from '../audio/index.js';
import { SileroVad } from '../audio/vad.js';
import type { WxConfig } from '../config.js';
import { WxError, describeError } from '../errors.js';
import { ErrorCode, type DictationFinal, type DictationHistoryItem, type ParamsOf, type ResultOf } from '../ipc/protocol.js';
import { RpcMethodError, type RequestContext, type RpcConnection } from '../ipc/transport.js';
import type { TranscribeEngine } from '../jobs/transcriber-host.js';
import type { Logger } from '../log.js';
import type { WxPaths } from '../paths.js';
import type { Segment } from '../pipeline/types.js';
import { PRIORITY, type TranscriptStore } from '../store/index.js';
import { hashFile } from '../watch/index.js';
import { MIC_LINUX_HINT, openMicCapture } from './capture.js';
import { postprocess, type PostprocessOptions } from './postprocess.js';
import { DICTATION_MODES, DictationSession, SAMPLE_RATE, type DictationMode } from './session.js';
import { WavWriter, s16ToFloat } from './wav-writer.js';

export interface DictationManagerDeps {
  paths: WxPaths;
  store: TranscriptStore;
  log: Logger;
  config: () => WxConfig['dictation'];
  /** The warm default engine. */
  engine: () => Promise<TranscribeEngine>;
  /** A job was queued: the job loop should look. */
  wakeRunner: () => void;
}

interface Live {
  id: string;
  session: DictationSession;
  writer: WavWriter;
  resampler: StreamResampler;
  recordingId: number;
  connection: RpcConnection;
  nextSeq: number;
  sampleRate: number;
  post: PostprocessOptions;
  stopping: boolean;
  detach: () => void;
}

/** Largest frame: 2 s of audio. */
const MAX_FRAME_SECONDS = 2;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

export class DictationManager {
  private readonly live = new Map<string, Live>();
  private vad: Promise<SileroVad> | null = null;
  /** Recordings being closed (hash, row, job): shutdown waits for them before the store closes. */
  private readonly closing = new Set<Promise<unknown>>();

  constructor(private readonly deps: DictationManagerDeps) {}

  get sessionCount(): number {
    return this.live.size;
  }

  private vadModel(): Promise<SileroVad> {
    if (!this.vad) {
      this.vad = SileroVad.load({ threads: 1 });
      this.vad.catch(() => (this.vad = null));
    }
    return this.vad;
  }

  private own(sessionId: unknown, ctx: RequestContext): Live {
    if (typeof sessionId !== 'string') throw RpcMethodError.of('invalidParams', 'dictation.bad_params', 'a dictation call needs {sessionId: string}');
    const live = this.live.get(sessionId);
    if (!live || live.connection !== ctx.connection) {
      throw RpcMethodError.of('notFound', 'dictation.no_session', `no dictation session ${sessionId} on this connection (never started, already stopped, or cancelled)`, { sessionId });
    }
    return live;
  }

  async start(p: ParamsOf<'dictation.start'>, ctx: RequestContext): Promise<ResultOf<'dictation.start'>> {
    if (!p || typeof p !== 'object') throw RpcMethodError.of('invalidParams', 'dictation.bad_params', 'dictation.start needs {mode, source}');
    const cfg = this.deps.config();
    const mode: DictationMode = p.mode ?? cfg.mode;
    if (!DICTATION_MODES.includes(mode)) throw RpcMethodError.of('badParams', 'dictation.bad_mode', `unknown dictation mode ${JSON.stringify(p.mode)} (use ${DICTATION_MODES.join(', ')})`, { mode: String(p.mode) });
    if (p.source === 'mic') {
      try {
        openMicCapture();
      } catch (err) {
        throw RpcMethodError.of('badParams', 'dictation.no_mic', describeError(err), { hint: MIC_LINUX_HINT });
      }
    } else if (p.source !== 'client') {
      throw RpcMethodError.of('badParams', 'dictation.bad_source', `unknown audio source ${JSON.stringify(p.source)} (use client or mic)`, { source: String(p.source) });
    }
    const sampleRate = p.sampleRate ?? SAMPLE_RATE;
    if (!Number.isInteger(sampleRate) || sampleRate < 8000 || sampleRate > 192_000) {
      throw RpcMethodError.of('badParams', 'dictation.bad_rate', `sample rate ${JSON.stringify(p.sampleRate)} is not supported (an integer from 8000 to 192000 Hz)`, { sampleRate: String(p.sampleRate) });
    }
    // The model must be loaded before audio is accepted: a dictation that cannot be transcribed
    // now is still recorded, but the client should know at once.
    const [engine, vad] = await Promise.all([this.deps.engine(), this.vadModel()]);
    if (!engine.decodeUtterance) throw new WxError('dictation.unsupported_engine', 'the engine cannot stream (no decodeUtterance)');
    const decoder = { decodeUtterance: engine.decodeUtterance.bind(engine) };

    const id = `${new Date().toISOString().replace(/[:.]/g, '-')}-${randomBytes(3).toString('hex')}`;
    fs.mkdirSync(this.deps.paths.recordings, { recursive: true, mode: 0o700 });
    const file = path.join(this.deps.paths.recordings, `${id}.wav`);
    const writer = WavWriter.create(file, SAMPLE_RATE);
    let recordingId: number;
    try {
      // The content hash is not known until the end: a unique stand-in marks it as in progress.
      const pending = createHash('sha256').update(`wx-dictation-in-progress:${id}`).digest('hex');
      recordingId = this.deps.store.upsertRecording({ path: file, sha256: pending, size: writer.bytes, mtimeMs: Date.now(), durationS: 0 }).id;
    } catch (err) {
      writer.close();
      throw err;
    }
    const language = p.language ?? undefined;
    const session = new DictationSession({
      mode,
      decoder,
      vad,
      audioContext: this.deps.config().audioContext,
      ...(language ? { language } : {}),
      onPartial: (partial) => ctx.connection.notify('dictation.partial', { sessionId: id, ...partial }, { droppable: true }),
    });
    const onClose = () => void this.abandon(id, 'the client disconnected');
    ctx.connection.once('close', onClose);
    const live: Live = {
      id,
      session,
      writer,
      resampler: new StreamResampler(sampleRate, SAMPLE_RATE),
      recordingId,
      connection: ctx.connection,
      nextSeq: 0,
      sampleRate,
      post: { removeFillers: p.noFillers ?? !cfg.fillers, replacements: cfg.replacements, trailingSpace: p.trailingSpace ?? cfg.trailingSpace },
      stopping: false,
      detach: () => ctx.connection.off('close', onClose),
    };
    this.live.set(id, live);
    this.deps.log.info('dictation started', { session: id, mode, sampleRate, recording: file });
    // The client may have gone while the model was loading: 'close' has fired already.
    if (ctx.connection.isClosed) void this.abandon(id, 'the client disconnected');
    return { sessionId: id, recording: file };
  }

  audio(p: ParamsOf<'dictation.audio'>, ctx: RequestContext): ResultOf<'dictation.audio'> {
    const live = this.own(p?.sessionId, ctx);
    if (live.stopping) throw RpcMethodError.of('badParams', 'dictation.stopping', `dictation ${live.id} is stopping: no more audio`, { sessionId: live.id });
    if (p.seq !== live.nextSeq) {
      throw RpcMethodError.of('badParams', 'dictation.bad_seq', `dictation ${live.id}: frame seq ${JSON.stringify(p.seq)} out of order (expected ${live.nextSeq})`, { sessionId: live.id, seq: String(p.seq), expected: live.nextSeq });
    }
    if (typeof p.pcm !== 'string' || !BASE64.test(p.pcm)) {
      throw RpcMethodError.of('badParams', 'dictation.bad_frame', `dictation ${live.id}: frame ${p.seq} is not base64 of s16le samples`, { sessionId: live.id, seq: p.seq });
    }
    const bytes = Buffer.from(p.pcm, 'base64');
    const maxBytes = live.sampleRate * 2 * MAX_FRAME_SECONDS;
    if (bytes.length === 0 || bytes.length % 2 !== 0 || bytes.length > maxBytes) {
      throw RpcMethodError.of(
        'badParams',
        'dictation.bad_frame',
        `dictation ${live.id}: frame ${p.seq} has ${bytes.length} bytes; a frame is 1 to ${live.sampleRate * MAX_FRAME_SECONDS} whole s16le samples (2 bytes each) at ${live.sampleRate} Hz`,
        { sessionId: live.id, seq: p.seq, bytes: bytes.length },
      );
    }
    live.nextSeq++;
    const samples = live.resampler.push(s16ToFloat(bytes));
    // Disk first: the audio is safe before the model sees it.
    live.writer.append(samples);
    live.session.push(samples);
    return { accepted: bytes.length / 2 };
  }

  async stop(p: ParamsOf<'dictation.stop'>, ctx: RequestContext): Promise<DictationFinal> {
    const live = this.own(p?.sessionId, ctx);
    if (live.stopping) throw RpcMethodError.of('badParams', 'dictation.stopping', `dictation ${live.id} is already stopping`, { sessionId: live.id });
    live.stopping = true;
    const tail = live.resampler.flush();
    if (tail.length > 0) {
      live.writer.append(tail);
      live.session.push(tail);
    }
    let result;
    try {
      result = await live.session.stop();
    } catch (err) {
      const job = await this.keepAsJob(live, `transcription failed: ${describeError(err)}`);
      throw new RpcMethodError(ErrorCode.jobFailed, 'dictation.failed', `dictation ${live.id}: transcription failed (${describeError(err)}); the audio is kept in ${live.writer.file}${job ? ` and queued as job ${job}` : ''}`, {
        sessionId: live.id,
        file: live.writer.file,
        job: job ?? null,
      });
    }
    const engine = await this.deps.engine();
    const segments: Segment[] = result.utterances.map((u, i) => ({
      id: i,
      seek: Math.round(u.start * 100),
      start: u.start,
      end: u.end,
      text: ' ' + postprocess(u.text, { ...live.post, trailingSpace: false }),
      tokens: u.tokens,
      temperature: 0,
      avg_logprob: u.avgLogprob,
      compression_ratio: 0,
      no_speech_prob: u.noSpeechProb,
    }));
    const text = postprocess(result.text, live.post);
    const final: DictationFinal = {
      sessionId: live.id,
      text,
      segments,
      latency_ms: Math.round(result.latencyMs * 10) / 10,
      recording: live.writer.file,
      stats: {
        partials: result.stats.partials,
        decodes: result.stats.decodes,
        decode_ms_mean: Math.round(result.stats.decodeMsMean * 10) / 10,
        first_text_audio_s: result.stats.firstTextAudioS,
        audio_s: result.stats.audioS,
      },
    };
    ctx.connection.notify('dictation.final', final);
    // The client has its text; storing it must not hold the reply up.
    void this.finish(live, async (durationS) => {
      this.deps.store.saveTranscript(live.recordingId, {
        model: engine.modelName,
        precision: engine.precision,
        language: 'en',
        duration: durationS,
        text,
        segments: segments.filter((s) => s.text.trim().length > 0),
      });
    }).catch((err) => this.deps.log.error('cannot store a dictation transcript', { session: live.id, error: describeError(err) }));
    this.deps.log.info('dictation finished', { session: live.id, latencyMs: final.latency_ms, audioS: result.stats.audioS, decodes: result.stats.decodes });
    return final;
  }

  cancel(p: ParamsOf<'dictation.cancel'>, ctx: RequestContext): ResultOf<'dictation.cancel'> {
    const live = this.own(p?.sessionId, ctx);
    live.session.cancel();
    void this.finish(live, async () => {}).catch((err) => this.deps.log.error('cannot close a cancelled dictation', { session: live.id, error: describeError(err) }));
    this.deps.log.info('dictation cancelled (audio kept)', { session: live.id, file: live.writer.file });
    return { cancelled: true };
  }

  /** The client vanished (or the daemon stops) mid-dictation: the audio becomes a queued job. */
  private async abandon(id: string, why: string): Promise<void> {
    const live = this.live.get(id);
    if (!live || live.stopping) return;
    live.stopping = true;
    live.session.cancel();
    try {
      const job = await this.keepAsJob(live, why);
      this.deps.log.warn('dictation abandoned: audio queued as a job', { session: id, why, job: job ?? null, file: live.writer.file });
    } catch (err) {
      this.deps.log.error('cannot queue an abandoned dictation', { session: id, error: describeError(err) });
    }
  }

  /** Closes the recording (hash, size, duration into its row) and forgets the session. */
  private finish(live: Live, after: (durationS: number) => Promise<void>): Promise<void> {
    // The session is over for its client now; closing the recording goes on in the background
    // (shutdown waits for it through `closing`).
    this.live.delete(live.id);
    const p = this.closeRecording(live, after);
    this.closing.add(p);
    void p.catch(() => {}).finally(() => this.closing.delete(p));
    return p;
  }

  private async closeRecording(live: Live, after: (durationS: number) => Promise<void>): Promise<void> {
    live.detach();
    const tail = live.stopping ? new Float32Array(0) : live.resampler.flush();
    if (tail.length > 0) live.writer.append(tail);
    live.stopping = true;
    live.writer.close();
    const durationS = live.writer.samples / SAMPLE_RATE;
    const st = fs.statSync(live.writer.file);
    const sha256 = await hashFile(live.writer.file);
    this.deps.store.upsertRecording({ path: live.writer.file, sha256, size: st.size, mtimeMs: st.mtimeMs, durationS });
    await after(durationS);
  }

  /** Returns the queued job's id (undefined if the recording holds no audio). */
  private async keepAsJob(live: Live, why: string): Promise<number | undefined> {
    let jobId: number | undefined;
    await this.finish(live, async () => {
      if (live.writer.samples === 0) return;
      jobId = this.deps.store.enqueueJob({ recordingId: live.recordingId, priority: PRIORITY.dictation, source: 'dictation' }).id;
      this.deps.log.info('dictation queued as a job', { session: live.id, job: jobId, why });
      this.deps.wakeRunner();
    });
    return jobId;
  }

  /** At daemon start: a recording left by a daemon that died mid-dictation (no transcript, no
   *  job) is queued, so what was said up to the crash is transcribed. */
  async recover(): Promise<number> {
    const dir = this.deps.paths.recordings;
    let names: string[];
    try {
      names = fs.readdirSync(dir).filter((n) => n.endsWith('.wav'));
    } catch {
      return 0;
    }
    let queued = 0;
    for (const name of names) {
      const file = path.join(dir, name);
      const known = this.deps.store.recordingByPath(file);
      if (known && (this.deps.store.transcriptForRecording(known.id) || this.deps.store.listJobs({ recordingId: known.id, limit: 1 }).length > 0)) continue;
      const st = fs.statSync(file);
      if (st.size <= 44) continue;
      const rec = this.deps.store.upsertRecording({ path: file, sha256: await hashFile(file), size: st.size, mtimeMs: st.mtimeMs, durationS: (st.size - 44) / (2 * SAMPLE_RATE) });
      this.deps.store.enqueueJob({ recordingId: rec.id, priority: PRIORITY.dictation, source: 'dictation' });
      queued++;
    }
    if (queued > 0) {
      this.deps.log.warn('queued dictations interrupted by a previous daemon', { recordings: queued });
      this.deps.wakeRunner();
    }
    return queued;
  }

  history(p: ParamsOf<'dictation.history'>): DictationHistoryItem[] {
    const limit = p?.limit ?? 20;
    if (!Number.isInteger(limit) || limit <= 0) throw RpcMethodError.of('invalidParams', 'dictation.bad_params', `limit must be a positive integer (got ${JSON.stringify(p?.limit)})`);
    let names: string[];
    try {
      names = fs.readdirSync(this.deps.paths.recordings).filter((n) => n.endsWith('.wav'));
    } catch {
      return [];
    }
    // Ids start with an ISO time: name order is time order.
    return names
      .sort()
      .reverse()
      .slice(0, limit)
      .map((name) => {
        const id = name.slice(0, -4);
        const file = path.join(this.deps.paths.recordings, name);
        const rec = this.deps.store.recordingByPath(file);
        const t = rec ? this.deps.store.transcriptForRecording(rec.id) : undefined;
        const job = rec ? this.deps.store.listJobs({ recordingId: rec.id, limit: 1 })[0] : undefined;
        const state: DictationHistoryItem['state'] = this.live.has(id) ? 'live' : t ? 'done' : job ? job.state : 'kept';
        return {
          id,
          path: file,
          created_at: new Date(rec?.createdAt ?? fs.statSync(file).mtimeMs).toISOString(),
          duration_s: rec?.durationS ?? null,
          state,
          text: t ? t.text : null,
        };
      });
  }

  /** Daemon shutdown: open dictations keep their audio and are queued for the next start. */
  async closeAll(): Promise<void> {
    await Promise.all([...this.live.keys()].map((id) => this.abandon(id, 'the daemon stopped')));
    await Promise.allSettled([...this.closing]);
    const vad = this.vad;
    this.vad = null;
    if (vad) await vad.then((v) => v.close()).catch(() => {});
  }
}
