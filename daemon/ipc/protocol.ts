// The client–daemon protocol: the ONE file both sides import (cli/, the menu-bar client, the
// daemon). Every method crossing $WX_HOME/run/wx.sock is declared here with its params and
// result; nothing else is part of the wire contract.
//
// Wire format: JSON-RPC 2.0, one JSON message per line ("\n"-terminated, UTF-8), so a session
// can be read and typed with `socat - UNIX-CONNECT:$WX_HOME/run/wx.sock`. The first request
// on a connection must be `initialize` (protocol version check); anything else before it gets
// `notInitialized`.
import type { Segment, Transcript, OutputFormat } from '../pipeline/types.js';

/** Bumped on any incompatible change to the methods below. Checked by `initialize`. */
export const PROTOCOL_VERSION = 1;

/** Largest accepted message (one line), in bytes. A longer line gets an error and the
 *  connection is closed; the daemon and its other clients are unaffected. */
export const MAX_MESSAGE_BYTES = 8 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Errors

/** JSON-RPC error codes. The standard ones (-32700…-32603) plus wx's own in the
 *  implementation-defined server range. Clients switch on these numbers, never on messages. */
export const ErrorCode = {
  parseError: -32700,
  invalidRequest: -32600,
  methodNotFound: -32601,
  invalidParams: -32602,
  internalError: -32603,
  /** Client and daemon speak different protocol versions (e.g. after an upgrade). */
  protocolMismatch: -32000,
  /** A method other than `initialize` was called first. */
  notInitialized: -32001,
  /** A transcription job failed; `data.context` names the job and file. */
  jobFailed: -32002,
  /** The job, recording, transcript or watch does not exist. */
  notFound: -32003,
  /** Params are well-formed JSON-RPC but unusable (missing file, bad query, bad option). */
  badParams: -32004,
  /** The daemon cannot take this now (shutting down, queue full). */
  busy: -32005,
  /** The request was cancelled by `$/cancelRequest` or by the daemon shutting down. */
  cancelled: -32006,
  /** The message exceeded MAX_MESSAGE_BYTES; the connection is closed after this reply. */
  messageTooLarge: -32007,
  /** The peer belongs to another user; the connection is closed after this reply. */
  unauthorized: -32008,
} as const;
export type ErrorCodeName = keyof typeof ErrorCode;

/** `error.data` on every wx error: the WxError code (e.g. `audio.truncated`) and its context
 *  (file, job, step), so a client can print the same clear message the daemon would. */
export interface ErrorData {
  code: string;
  context: Record<string, string | number | boolean | null | undefined>;
}

export interface RpcError {
  code: number;
  message: string;
  data?: ErrorData;
}

// ---------------------------------------------------------------------------------------------
// Envelopes

export type RequestId = number | string;

export interface RpcRequest {
  jsonrpc: '2.0';
  id: RequestId;
  method: string;
  params?: unknown;
}
export interface RpcNotification {
  jsonrpc: '2.0';
  method: string;
  params?: unknown;
}
export interface RpcSuccess {
  jsonrpc: '2.0';
  id: RequestId;
  result: unknown;
}
export interface RpcFailure {
  jsonrpc: '2.0';
  id: RequestId | null;
  error: RpcError;
}
export type RpcResponse = RpcSuccess | RpcFailure;
export type RpcMessage = RpcRequest | RpcNotification | RpcResponse;

// ---------------------------------------------------------------------------------------------
// Shapes (these are also the `--json` outputs of the CLI, documented in the README)

export type Precision = 'int8' | 'fp32';

export interface TranscribeOptions {
  model?: string;
  precision?: Precision;
  language?: string;
  task?: 'transcribe' | 'translate';
  strategy?: 'vad' | 'sequential';
  initialPrompt?: string;
  /** Beam search width for each window's temperature-0 decode, 1–8 (1: greedy; default: the
   *  daemon's config, 1). */
  beamSize?: number;
}

export interface ModelStatus {
  name: string;
  precision: Precision;
  /** e.g. `onnxruntime-cpu`. */
  backend: string;
  /** Wall time to load the model at daemon start. */
  load_ms: number;
}

export interface QueueStats {
  queued: number;
  running: number;
  done: number;
  failed: number;
  cancelled: number;
  /** Seconds of audio waiting in queued jobs. */
  queued_audio_s: number;
  /** Queued jobs whose length is not known yet (not in queued_audio_s). */
  queued_unknown_duration: number;
  /** Recent jobs' speed, audio seconds per second (null before the first job). */
  speed_x: number | null;
  /** Estimated seconds until the queued and running audio is done (null when unknown or idle). */
  eta_s: number | null;
}

export type JobState = 'queued' | 'running' | 'done' | 'failed' | 'cancelled';

/** `wx jobs --json` is an array of these. */
export interface JobInfo {
  id: number;
  path: string;
  state: JobState;
  error: string | null;
  attempts: number;
  /** ISO 8601 timestamps. */
  created_at?: string;
  updated_at?: string;
  recording_id?: number;
}

export interface WatchInfo {
  dir: string;
  recursive: boolean;
  include: string[];
  exclude: string[];
  output_dir: string | null;
  formats: OutputFormat[];
  /** `ok`, or why it is not being watched right now (e.g. the drive is unmounted). */
  state: 'ok' | 'missing' | 'error';
  error?: string | null;
}

/** `wx status --json`. */
export interface StatusResult {
  pid: number;
  version: string;
  protocol_version: number;
  uptime_s: number;
  /** null while no model is loaded (e.g. none installed yet, or still loading). */
  model: ModelStatus | null;
  /** The default model being loaded right now (the first seconds after start), else null. */
  model_loading: string | null;
  rss_mb: number;
  queue: QueueStats;
  watch: WatchInfo[];
  /** The most recent job failure or daemon error, if any. */
  last_error: { at: string; message: string; job?: number; path?: string } | null;
  /** Dictation sessions open now. */
  dictation?: { sessions: number };
  /** Idle memory releases (config `idleReleaseS`): how many, and the last one's process RSS before
   *  and after. */
  memory_releases?: { count: number; last: { at: string; rss_before_mb: number; rss_after_mb: number } | null };
  home: string;
  socket: string;
}

/** `wx search --json` is an array of these, best first. */
export interface SearchHit {
  path: string;
  recording_id: number;
  /** Seconds from the start of the recording. */
  start: number;
  end: number;
  text: string;
  /** Text with matches wrapped in `[` `]`. */
  snippet: string;
  /** Relevance from bm25, negated so that higher is better. */
  score: number;
}

export interface StoredTranscript {
  recording_id: number;
  path: string;
  model: string;
  precision: Precision;
  transcript: Transcript;
}

export interface ModelInfo {
  name: string;
  dir: string;
  precisions: Precision[];
  isDefault: boolean;
  /** Hub repo id (or local directory) it was imported from. */
  source?: string;
  /** Hub commit it was pulled at (null for local imports). */
  revision?: string | null;
  sizeBytes?: number;
  /** ISO 8601. */
  importedAt?: string;
}

/** Where the default model comes from: `WX_MODEL` in the daemon's environment, config.json,
 *  or the only installed model. */
export interface DefaultModelInfo {
  model: string;
  from: 'WX_MODEL' | 'config' | 'only installed model';
}

/** `models.ls`, and `wx models ls --json`. */
export interface ModelsList {
  installed: ModelInfo[];
  default: DefaultModelInfo | null;
  /** Downloads left by interrupted pulls (the same pull resumes them). */
  downloads: { key: string; dir: string; bytes: number }[];
  /** Short names → Hub repo ids. */
  aliases: Record<string, string>;
}

/** `models.progress`: one step of a pull, as `wx models pull` draws it. */
export type PullProgressInfo =
  | { phase: 'download'; file: string; bytesDone: number; bytesTotal: number; bytesFetched: number; speedBps: number; etaSeconds: number | null }
  | { phase: 'import'; step: string; fraction: number }
  | { phase: 'done' };

export interface PullResultInfo {
  name: string;
  dir: string;
  repo: string;
  /** The commit installed. */
  revision: string | null;
  precisions: Precision[];
  /** True when nothing was downloaded because the same model is installed. */
  alreadyInstalled: boolean;
  bytesTotal: number;
  bytesFetched: number;
}

// ---------------------------------------------------------------------------------------------
// Methods: name → params, result. Both sides are typed by this map.

export interface Methods {
  initialize: {
    params: { protocolVersion: number; client: { name: string; version: string; pid?: number } };
    result: { protocolVersion: number; daemonVersion: string; pid: number; model?: string };
  };
  status: { params: Record<string, never> | undefined; result: StatusResult };
  /** Queues the files (absolute paths). With `wait`, replies once all are done, sending
   *  `progress` notifications meanwhile; cancelling the request cancels its jobs. */
  transcribe: {
    params: { files: string[]; options?: TranscribeOptions; wait?: boolean; priority?: 'interactive' | 'backlog' };
    result: { jobs: JobInfo[]; transcripts: (StoredTranscript | null)[] };
  };
  'jobs.list': { params: { state?: JobState; limit?: number } | undefined; result: JobInfo[] };
  'jobs.retry': { params: { id: number }; result: JobInfo };
  'jobs.cancel': { params: { id: number }; result: JobInfo };
  'transcripts.get': { params: { recordingId?: number; jobId?: number; path?: string }; result: StoredTranscript };
  /** Forgets a recording: its jobs, transcripts and search entries (the file is not touched). */
  'recordings.forget': { params: { path?: string; recordingId?: number }; result: { recording_id: number; path: string } };
  search: { params: { query: string; limit?: number; since?: string; path?: string }; result: SearchHit[] };
  'watch.add': {
    params: {
      dir: string;
      recursive?: boolean;
      include?: string[];
      exclude?: string[];
      outputDir?: string;
      formats?: OutputFormat[];
      backfill?: boolean;
    };
    result: WatchInfo;
  };
  'watch.ls': { params: Record<string, never> | undefined; result: WatchInfo[] };
  'watch.rm': { params: { dir: string }; result: { removed: boolean } };
  /** Installed models (default marked), interrupted downloads, known aliases. */
  'models.ls': { params: Record<string, never> | undefined; result: ModelsList };
  /** Downloads (Hub at the daemon's HF_ENDPOINT unless `endpoint` is given), verifies, converts
   *  and installs, sending `models.progress` notifications to the caller. Cancelling the request
   *  (`$/cancelRequest`) stops it with `cancelled`; the downloaded part is kept and the same pull
   *  resumes it. One pull per repo at a time (`busy` otherwise). */
  'models.pull': {
    params: {
      /** Alias (`tiny`, `turbo`, …) or Hub repo id. */
      source: string;
      revision?: string;
      precision?: Precision | 'both';
      name?: string;
      force?: boolean;
      /** The client's HF_ENDPOINT / HF_TOKEN, so a pull honours the caller's environment. */
      endpoint?: string;
      token?: string;
    };
    result: PullResultInfo;
  };
  /** Without `name`: the default model. With `name`: loads it, makes it the warm model (new jobs
   *  use it; running jobs finish on the old one, which is then closed), writes config.json, and
   *  replies once it is loaded. `from: 'WX_MODEL'` means the daemon's environment overrides config. */
  'models.default': {
    params: { name?: string } | undefined;
    result: { name: string; from: DefaultModelInfo['from']; precision: Precision; dir?: string; load_ms?: number };
  };
  /** Replies, then the daemon shuts down cleanly (running job re-queued or finished). */
  'daemon.shutdown': { params: Record<string, never> | undefined; result: { pid: number } };
  // Dictation (issue 8; daemon/dictation/). A session belongs to the connection that started it;
  // if that connection closes before `dictation.stop`, the audio (already on disk) is queued as a
  // normal job. Audio framing over the JSON-lines socket: each `dictation.audio` request carries
  // one frame as base64 of s16le mono samples at the session's `sampleRate`, `seq` counting
  // 0, 1, 2, … (a gap or a repeat is an error); a frame holds 1 to 2 s of samples (100 ms
  // frames are typical). Requests may be pipelined: send frames without waiting for replies.
  'dictation.start': {
    params: {
      /** Default: config `dictation.mode`. */
      mode?: 'low' | 'balanced' | 'high';
      source: 'client' | 'mic';
      /** Of the client's frames (default 16000; 8000–192000 accepted, resampled to 16 kHz). */
      sampleRate?: number;
      /** Remove filler words (um, uh, …) from the final text. */
      noFillers?: boolean;
      /** End the final text with a space (default: config `dictation.trailingSpace`). */
      trailingSpace?: boolean;
      language?: string;
    };
    result: { sessionId: string; recording: string };
  };
  /** Audio frames as base64 of s16le mono samples at the session's sample rate. */
  'dictation.audio': { params: { sessionId: string; seq: number; pcm: string }; result: { accepted: number } };
  /** Ends the audio; replies with the final text (also sent as a `dictation.final` notification). */
  'dictation.stop': { params: { sessionId: string }; result: DictationFinal };
  /** Drops the session without a transcript (its audio stays on disk, as every dictation's). */
  'dictation.cancel': { params: { sessionId: string }; result: { cancelled: boolean } };
  /** Recent dictations, newest first (`wx dictate --history`). */
  'dictation.history': { params: { limit?: number } | undefined; result: DictationHistoryItem[] };
}
export type MethodName = keyof Methods;
export type ParamsOf<M extends MethodName> = Methods[M]['params'];
export type ResultOf<M extends MethodName> = Methods[M]['result'];

export interface DictationFinal {
  sessionId: string;
  /** After post-processing (fillers, replacements, trailing space). */
  text: string;
  /** One per utterance; times are seconds from the start of the dictation. */
  segments: Segment[];
  /** From `dictation.stop` arriving to the final text being ready. */
  latency_ms: number;
  /** The dictation's audio file ($WX_HOME/recordings/<id>.wav). */
  recording: string;
  stats: DictationStats;
}

export interface DictationStats {
  /** Partial notifications sent. */
  partials: number;
  /** Model decodes run (partial and final). */
  decodes: number;
  decode_ms_mean: number;
  /** Seconds of audio received when the first partial with text went out (null: none did). */
  first_text_audio_s: number | null;
  audio_s: number;
}

/** `wx dictate --history --json` is an array of these, newest first. */
export interface DictationHistoryItem {
  id: string;
  path: string;
  /** ISO 8601. */
  created_at: string;
  duration_s: number | null;
  /** `done`: transcript stored; `queued`/`running`/`failed`: as a job; `live`: still dictating;
   *  `kept`: audio only (cancelled). */
  state: 'done' | 'queued' | 'running' | 'failed' | 'cancelled' | 'live' | 'kept';
  text: string | null;
}

// ---------------------------------------------------------------------------------------------
// Notifications (no reply). Daemon → client unless marked otherwise.

export interface Notifications {
  /** Progress of a transcription: tied to the request that asked for it and/or its job. */
  progress: { requestId?: RequestId; jobId?: number; file: string; processedS: number; durationS: number };
  /** Client → daemon: abort the request with this id; it then fails with `cancelled`. */
  '$/cancelRequest': { id: RequestId };
  /** A log line the client may show (e.g. a warning about one file of many). */
  log: { level: 'debug' | 'info' | 'warn' | 'error'; message: string; context?: Record<string, unknown> };
  'dictation.partial': { sessionId: string; committed: string; tentative: string };
  'dictation.final': DictationFinal;
  /** Progress of a `models.pull` request. */
  'models.progress': { requestId: RequestId; source: string } & PullProgressInfo;
}
export type NotificationName = keyof Notifications;

/** Methods the daemon answers with methodNotFound for now (declared for typed clients). */
export const PLANNED_METHODS: readonly MethodName[] = [];
