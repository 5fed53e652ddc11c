// Row shapes of wx.db as the rest of wx sees them (camelCase, parsed JSON, booleans).
import type { OutputFormat, Segment } from '../pipeline/types.js';

export type JobState = 'queued' | 'running' | 'done' | 'failed' | 'cancelled';
export type JobSource = 'cli' | 'watch' | 'dictation';
export const JOB_STATES: readonly JobState[] = ['queued', 'running', 'done', 'failed', 'cancelled'];

/** Lower runs first: dictation before an interactive `wx transcribe` before watched-folder backlog. */
export const PRIORITY = { dictation: 0, interactive: 1, watch: 2 } as const;

export interface Recording {
  id: number;
  path: string;
  sha256: string;
  size: number;
  mtimeMs: number;
  durationS: number | null;
  createdAt: number;
  updatedAt: number;
  /** The file was last seen gone (deleted, or on an unmounted drive). */
  missing: boolean;
}

/** What `upsertRecording` did: `moved` = same content found at a new path (old path gone);
 *  `copied` = same content as an existing recording whose file still exists; `edited` = the
 *  path's content changed (a new hash, so a new job is not deduplicated). */
export type RecordingChange = 'created' | 'unchanged' | 'moved' | 'copied' | 'edited';

export interface RecordingUpsert extends Recording {
  change: RecordingChange;
}

export interface RecordingInput {
  path: string;
  sha256: string;
  size: number;
  mtimeMs: number;
  durationS?: number | null;
}

export interface Job {
  id: number;
  recordingId: number;
  /** Path of the recording now (it follows renames). */
  path: string;
  contentSha256: string;
  state: JobState;
  priority: number;
  source: JobSource;
  options: unknown;
  attempts: number;
  maxAttempts: number;
  error: string | null;
  notBefore: number;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  watchId: number | null;
}

export interface EnqueuedJob extends Job {
  /** True when an equal job (same content, same options) already existed and is returned instead. */
  reused: boolean;
}

export interface JobInput {
  recordingId: number;
  priority: number;
  source: JobSource;
  options?: unknown;
  maxAttempts?: number;
  watchId?: number | null;
  /** Return an existing queued/running/done job for the same content and options instead of adding one. */
  dedupe?: boolean;
  /** Which existing jobs count for `dedupe`. Default queued, running, done. A watched-folder
   *  re-scan should also pass `failed` and `cancelled`, so a file that failed (or that the user
   *  cancelled) is not queued again at every daemon start; `wx retry` is the way back. */
  dedupeStates?: readonly JobState[];
}

export interface JobQuery {
  state?: JobState | readonly JobState[];
  source?: JobSource;
  recordingId?: number;
  limit?: number;
}

export interface QueueStats {
  queued: number;
  running: number;
  done: number;
  failed: number;
  cancelled: number;
  /** Seconds of audio in queued jobs whose recording's duration is known. */
  queuedAudioS: number;
  /** Seconds of audio in running jobs. */
  runningAudioS: number;
  /** Queued jobs whose recording's duration is not known yet (not counted in queuedAudioS). */
  queuedUnknownDuration: number;
}

/** A segment as the pipeline produces it; only start, end and text are required. */
export type SegmentInput = Pick<Segment, 'start' | 'end' | 'text'> & Partial<Omit<Segment, 'start' | 'end' | 'text' | 'id'>>;

/** The pipeline's `Transcript` plus which model made it: `{ ...transcript, model, precision }`. */
export interface TranscriptInput {
  model: string;
  precision: string;
  language: string;
  /** Seconds of audio. */
  duration: number;
  text: string;
  segments: readonly SegmentInput[];
}

export interface StoredTranscript {
  id: number;
  recordingId: number;
  jobId: number | null;
  model: string;
  precision: string;
  language: string;
  durationS: number;
  text: string;
  createdAt: number;
}

export interface StoredSegment {
  id: number;
  transcriptId: number;
  idx: number;
  start: number;
  end: number;
  text: string;
  avgLogprob: number | null;
  noSpeechProb: number | null;
  compressionRatio: number | null;
  temperature: number | null;
  seek: number | null;
  tokens: number[] | null;
}

export interface SearchOptions {
  limit?: number;
  offset?: number;
  /** Only recordings whose file changed at or after this time (ms since epoch). */
  sinceMs?: number;
  /** Only recordings whose path matches this glob (SQLite GLOB: `*`, `?`, `[...]`, case-sensitive). */
  pathGlob?: string;
  /** Markers around matched words in `snippet`. Default `[` and `]`. */
  highlight?: { open: string; close: string };
  /** Words of context in `snippet`. Default 12. */
  snippetTokens?: number;
}

export interface SearchHit {
  recordingId: number;
  transcriptId: number;
  segmentId: number;
  path: string;
  /** Seconds from the start of the recording. */
  start: number;
  end: number;
  text: string;
  snippet: string;
  /** Relevance: higher is better (negated bm25). */
  score: number;
}

export interface WatchInput {
  dir: string;
  recursive?: boolean;
  include?: readonly string[];
  exclude?: readonly string[];
  outputDir?: string | null;
  formats?: readonly OutputFormat[];
  backfill?: boolean;
}

export interface Watch {
  id: number;
  dir: string;
  recursive: boolean;
  include: string[];
  exclude: string[];
  outputDir: string | null;
  formats: OutputFormat[];
  backfill: boolean;
  createdAt: number;
  available: boolean;
  lastError: string | null;
}
