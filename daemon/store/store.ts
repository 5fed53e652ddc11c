// TranscriptStore: the one owner of wx.db. Synchronous (better-sqlite3): every call is a few
// indexed statements, and every multi-step write is one transaction, so a crash or kill at any
// point leaves the database as it was before the call or after it, never in between.
//
// Job state machine (anything else throws `job.illegal_transition`):
//   queued  → running (claimNextJob) | cancelled (cancelJob)
//   running → done (completeJob) | queued (failJob with retry left, releaseJob, requeueRunningJobs)
//           | failed (failJob without retry left) | cancelled (cancelJob)
//   failed, cancelled → queued (retryJob: attempts start over)
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { WxError, describeError } from '../errors.js';
import { OUTPUT_FORMATS, type OutputFormat, type Transcript } from '../pipeline/types.js';
import { toFtsQuery } from './fts-query.js';
import { MIGRATIONS, SCHEMA_VERSION } from './schema.js';
import type {
  EnqueuedJob,
  Job,
  JobInput,
  JobQuery,
  JobSource,
  JobState,
  QueueStats,
  Recording,
  RecordingInput,
  RecordingUpsert,
  SearchHit,
  SearchOptions,
  StoredSegment,
  StoredTranscript,
  TranscriptInput,
  Watch,
  WatchInput,
} from './types.js';
import { JOB_STATES } from './types.js';

export interface StoreOptions {
  /** Clock (ms since epoch); tests move it to exercise retry back-off. */
  now?: () => number;
  /** First retry waits this long, doubling per attempt. Default 5 s. */
  retryBaseMs?: number;
  /** Longest retry wait. Default 10 min. */
  retryMaxMs?: number;
  /** How long a write waits for another connection's lock. Default 5 s. */
  busyTimeoutMs?: number;
  /** Attempts per job unless the job says otherwise. Default 3. */
  defaultMaxAttempts?: number;
}

const JOB_SOURCES: readonly JobSource[] = ['cli', 'watch', 'dictation'];
const DEFAULT_DEDUPE_STATES: readonly JobState[] = ['queued', 'running', 'done'];
const SHA256_HEX = /^[0-9a-f]{64}$/;

type Row = Record<string, unknown>;

/** JSON with object keys sorted, so equal options are equal strings (the dedupe key). */
export function canonicalJson(value: unknown): string {
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort);
    if (v !== null && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(v as object).sort()) {
        const x = (v as Record<string, unknown>)[k];
        if (x !== undefined) out[k] = sort(x);
      }
      return out;
    }
    return v;
  };
  return JSON.stringify(sort(value ?? {})) ?? '{}';
}

const bool = (v: unknown): boolean => v === 1 || v === 1n || v === true;
const num = (v: unknown): number => Number(v);
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
const strOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));

function toRecording(r: Row): Recording {
  return {
    id: num(r.id),
    path: String(r.path),
    sha256: String(r.sha256),
    size: num(r.size),
    mtimeMs: num(r.mtime_ms),
    durationS: numOrNull(r.duration_s),
    createdAt: num(r.created_at),
    updatedAt: num(r.updated_at),
    missing: bool(r.missing),
  };
}

function toJob(r: Row): Job {
  return {
    id: num(r.id),
    recordingId: num(r.recording_id),
    path: String(r.path),
    contentSha256: String(r.content_sha256),
    state: r.state as JobState,
    priority: num(r.priority),
    source: r.source as JobSource,
    options: JSON.parse(String(r.options)) as unknown,
    attempts: num(r.attempts),
    maxAttempts: num(r.max_attempts),
    error: strOrNull(r.error),
    notBefore: num(r.not_before),
    createdAt: num(r.created_at),
    startedAt: numOrNull(r.started_at),
    finishedAt: numOrNull(r.finished_at),
    watchId: numOrNull(r.watch_id),
  };
}

function toTranscript(r: Row): StoredTranscript {
  return {
    id: num(r.id),
    recordingId: num(r.recording_id),
    jobId: numOrNull(r.job_id),
    model: String(r.model),
    precision: String(r.precision),
    language: String(r.language),
    durationS: num(r.duration_s),
    text: String(r.text),
    createdAt: num(r.created_at),
  };
}

function toSegment(r: Row): StoredSegment {
  return {
    id: num(r.id),
    transcriptId: num(r.transcript_id),
    idx: num(r.idx),
    start: num(r.start_s),
    end: num(r.end_s),
    text: String(r.text),
    avgLogprob: numOrNull(r.avg_logprob),
    noSpeechProb: numOrNull(r.no_speech_prob),
    compressionRatio: numOrNull(r.compression_ratio),
    temperature: numOrNull(r.temperature),
    seek: numOrNull(r.seek),
    tokens: r.tokens === null || r.tokens === undefined ? null : (JSON.parse(String(r.tokens)) as number[]),
  };
}

function toWatch(r: Row): Watch {
  return {
    id: num(r.id),
    dir: String(r.dir),
    recursive: bool(r.recursive),
    include: JSON.parse(String(r.include)) as string[],
    exclude: JSON.parse(String(r.exclude)) as string[],
    outputDir: strOrNull(r.output_dir),
    formats: JSON.parse(String(r.formats)) as OutputFormat[],
    backfill: bool(r.backfill),
    createdAt: num(r.created_at),
    available: bool(r.available),
    lastError: strOrNull(r.last_error),
  };
}

/** A stored transcript in the pipeline's shape, for the writers (`wx show --format srt`,
 *  sidecar files). Fields the store did not get come back as 0 / []. */
export function toPipelineTranscript(t: StoredTranscript & { segments: readonly StoredSegment[] }): Transcript {
  return {
    text: t.text,
    language: t.language,
    duration: t.durationS,
    segments: t.segments.map((s) => ({
      id: s.idx,
      seek: s.seek ?? 0,
      start: s.start,
      end: s.end,
      text: s.text,
      tokens: s.tokens ?? [],
      temperature: s.temperature ?? 0,
      avg_logprob: s.avgLogprob ?? 0,
      compression_ratio: s.compressionRatio ?? 0,
      no_speech_prob: s.noSpeechProb ?? 0,
    })),
  };
}

const JOB_SELECT = `SELECT j.*, r.path AS path FROM jobs j JOIN recordings r ON r.id = j.recording_id`;

function migrate(db: Database.Database, file: string): void {
  const found = db.pragma('user_version', { simple: true }) as number;
  if (found > SCHEMA_VERSION) {
    throw new WxError(
      'store.too_new',
      `${file} has schema version ${found}, newer than this wx understands (${SCHEMA_VERSION}); upgrade wx or use another WX_HOME`,
      { file, found, supported: SCHEMA_VERSION },
    );
  }
  for (let v = found; v < SCHEMA_VERSION; v++) {
    // IMMEDIATE takes the write lock first, so two processes opening a fresh file at once do
    // not both apply a migration: the second re-reads the version once it gets the lock.
    db.transaction(() => {
      const now = db.pragma('user_version', { simple: true }) as number;
      if (now > v) return;
      try {
        db.exec(MIGRATIONS[v]!);
      } catch (err) {
        throw new WxError('store.migration_failed', `migrating ${file} to schema version ${v + 1} failed: ${describeError(err)}`, { file, version: v + 1 }, { cause: err });
      }
      db.pragma(`user_version = ${v + 1}`);
    }).immediate();
  }
}

export class TranscriptStore {
  private readonly now: () => number;
  private readonly retryBaseMs: number;
  private readonly retryMaxMs: number;
  private readonly defaultMaxAttempts: number;
  private readonly stmt;
  private readonly searchStatements = new Map<string, Database.Statement>();

  private constructor(
    readonly db: Database.Database,
    readonly file: string,
    opts: StoreOptions,
  ) {
    this.now = opts.now ?? Date.now;
    this.retryBaseMs = opts.retryBaseMs ?? 5_000;
    this.retryMaxMs = opts.retryMaxMs ?? 600_000;
    this.defaultMaxAttempts = opts.defaultMaxAttempts ?? 3;
    const p = (sql: string) => db.prepare(sql);
    this.stmt = {
      recordingById: p(`SELECT * FROM recordings WHERE id = ?`),
      recordingByPath: p(`SELECT * FROM recordings WHERE path = ?`),
      recordingsBySha: p(`SELECT * FROM recordings WHERE sha256 = ? ORDER BY missing DESC, id`),
      insertRecording: p(
        `INSERT INTO recordings (path, sha256, size, mtime_ms, duration_s, created_at, updated_at, missing)
         VALUES (@path, @sha256, @size, @mtimeMs, @durationS, @now, @now, 0)`,
      ),
      updateRecording: p(
        `UPDATE recordings SET path = @path, sha256 = @sha256, size = @size, mtime_ms = @mtimeMs,
           duration_s = @durationS, updated_at = @now, missing = 0 WHERE id = @id`,
      ),
      setRecordingMissing: p(`UPDATE recordings SET missing = ?, updated_at = ? WHERE path = ?`),
      setRecordingDuration: p(`UPDATE recordings SET duration_s = ? WHERE id = ? AND duration_s IS NULL`),
      deleteRecording: p(`DELETE FROM recordings WHERE id = ?`),
      job: p(`${JOB_SELECT} WHERE j.id = ?`),
      dedupeJob: p(
        `${JOB_SELECT} WHERE j.content_sha256 = @sha AND j.options = @options AND j.state IN (SELECT value FROM json_each(@states))
         ORDER BY CASE j.state WHEN 'running' THEN 0 WHEN 'queued' THEN 1 WHEN 'done' THEN 2 ELSE 3 END, j.id DESC LIMIT 1`,
      ),
      insertJob: p(
        `INSERT INTO jobs (recording_id, content_sha256, state, priority, source, options, max_attempts, created_at, watch_id)
         VALUES (@recordingId, @sha, 'queued', @priority, @source, @options, @maxAttempts, @now, @watchId)`,
      ),
      raisePriority: p(`UPDATE jobs SET priority = ? WHERE id = ? AND state = 'queued' AND priority > ?`),
      claim: p(
        `UPDATE jobs SET state = 'running', attempts = attempts + 1, started_at = @now, finished_at = NULL
         WHERE id = (SELECT id FROM jobs WHERE state = 'queued' AND not_before <= @now ORDER BY priority, id LIMIT 1)
         RETURNING id`,
      ),
      setJobState: p(
        `UPDATE jobs SET state = @state, error = @error, not_before = @notBefore, attempts = @attempts,
           started_at = @startedAt, finished_at = @finishedAt WHERE id = @id`,
      ),
      runningJobs: p(`SELECT id, attempts, max_attempts FROM jobs WHERE state = 'running'`),
      queueCounts: p(
        `SELECT j.state AS state, count(*) AS n, coalesce(sum(r.duration_s), 0) AS audio, count(*) - count(r.duration_s) AS unknown
         FROM jobs j JOIN recordings r ON r.id = j.recording_id GROUP BY j.state`,
      ),
      deleteTranscriptsOf: p(`DELETE FROM transcripts WHERE recording_id = ?`),
      insertTranscript: p(
        `INSERT INTO transcripts (recording_id, job_id, model, precision, language, duration_s, text, created_at)
         VALUES (@recordingId, @jobId, @model, @precision, @language, @durationS, @text, @now)`,
      ),
      insertSegment: p(
        `INSERT INTO segments (transcript_id, idx, start_s, end_s, text, avg_logprob, no_speech_prob, compression_ratio, temperature, seek, tokens)
         VALUES (@transcriptId, @idx, @start, @end, @text, @avgLogprob, @noSpeechProb, @compressionRatio, @temperature, @seek, @tokens)`,
      ),
      transcriptById: p(`SELECT * FROM transcripts WHERE id = ?`),
      latestTranscriptOf: p(`SELECT * FROM transcripts WHERE recording_id = ? ORDER BY id DESC LIMIT 1`),
      latestTranscriptOfSha: p(
        `SELECT t.* FROM transcripts t JOIN recordings r ON r.id = t.recording_id WHERE r.sha256 = ? ORDER BY t.id DESC LIMIT 1`,
      ),
      segmentsOf: p(`SELECT * FROM segments WHERE transcript_id = ? ORDER BY idx`),
      deleteTranscript: p(`DELETE FROM transcripts WHERE id = ?`),
      updateSegmentText: p(`UPDATE segments SET text = ? WHERE id = ?`),
      insertWatch: p(
        `INSERT INTO watches (dir, recursive, include, exclude, output_dir, formats, backfill, created_at)
         VALUES (@dir, @recursive, @include, @exclude, @outputDir, @formats, @backfill, @now)`,
      ),
      watchById: p(`SELECT * FROM watches WHERE id = ?`),
      watchByDir: p(`SELECT * FROM watches WHERE dir = ?`),
      listWatches: p(`SELECT * FROM watches ORDER BY id`),
      deleteWatch: p(`DELETE FROM watches WHERE id = ?`),
      setWatchState: p(`UPDATE watches SET available = ?, last_error = ? WHERE id = ?`),
      counts: p(
        `SELECT (SELECT count(*) FROM recordings) AS recordings, (SELECT count(*) FROM transcripts) AS transcripts,
                (SELECT count(*) FROM segments) AS segments, (SELECT count(*) FROM jobs) AS jobs`,
      ),
    };
  }

  /** Opens (creating if needed) the database at `file` and brings its schema up to date. */
  static open(file: string, opts: StoreOptions = {}): TranscriptStore {
    const abs = path.resolve(file);
    let db: Database.Database | undefined;
    try {
      fs.mkdirSync(path.dirname(abs), { recursive: true, mode: 0o700 });
      db = new Database(abs);
      // Transcripts are private: owner-only. Set before WAL mode so SQLite creates -wal and
      // -shm with the same mode.
      try {
        fs.chmodSync(abs, 0o600);
      } catch {
        // a file system without Unix modes (some network/FAT mounts): nothing to tighten
      }
      const mode = db.pragma('journal_mode = WAL', { simple: true });
      if (String(mode).toLowerCase() !== 'wal') throw new Error(`journal_mode is ${String(mode)}, WAL refused`);
      db.pragma('foreign_keys = ON');
      db.pragma(`busy_timeout = ${Math.max(0, Math.floor(opts.busyTimeoutMs ?? 5_000))}`);
      db.pragma('synchronous = NORMAL');
      migrate(db, abs);
      return new TranscriptStore(db, abs, opts);
    } catch (err) {
      db?.close();
      if (err instanceof WxError) throw err;
      throw new WxError('store.open_failed', `cannot open the database ${abs}: ${describeError(err)}`, { file: abs }, { cause: err });
    }
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  get schemaVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  // ---------------------------------------------------------------- recordings

  recording(id: number): Recording | undefined {
    const r = this.stmt.recordingById.get(id) as Row | undefined;
    return r && toRecording(r);
  }

  recordingByPath(p: string): Recording | undefined {
    const r = this.stmt.recordingByPath.get(path.resolve(p)) as Row | undefined;
    return r && toRecording(r);
  }

  /** The oldest recording with this content (there can be several: copies). */
  recordingBySha(sha256: string): Recording | undefined {
    const rows = this.stmt.recordingsBySha.all(sha256.toLowerCase()) as Row[];
    const live = rows.find((r) => !bool(r.missing)) ?? rows[0];
    return live && toRecording(live);
  }

  /**
   * Records a file seen at `path` with content `sha256`. The content hash is the identity:
   * - known path, same hash → `unchanged` (size/mtime refreshed, un-marked missing);
   * - known path, new hash → `edited` (same recording, new content: jobs for it are not deduplicated);
   * - new path, hash known at a path that is gone (missing, or no longer on disk) → `moved`: the
   *   recording's path is updated, its transcripts and jobs follow it; its failed watch jobs go
   *   back to the queue (a job running while its file was renamed fails with "no such file"
   *   on the old path: the recording itself was never tried);
   * - new path, hash known at a path that still exists → `copied`: a second recording with the
   *   same content (deduplicated jobs return the original's job; its transcript is shared);
   * - otherwise `created`.
   */
  upsertRecording(input: RecordingInput): RecordingUpsert {
    const p = path.resolve(input.path);
    const sha256 = input.sha256.toLowerCase();
    if (!SHA256_HEX.test(sha256)) throw new WxError('store.bad_recording', `not a sha256 hex digest for ${p}: ${input.sha256}`, { path: p });
    if (!Number.isFinite(input.size) || input.size < 0 || !Number.isFinite(input.mtimeMs)) {
      throw new WxError('store.bad_recording', `bad size or mtime for ${p}`, { path: p, size: input.size, mtimeMs: input.mtimeMs });
    }
    const now = this.now();
    const values = { path: p, sha256, size: Math.floor(input.size), mtimeMs: Math.floor(input.mtimeMs), now };
    return this.db.transaction((): RecordingUpsert => {
      const atPath = this.stmt.recordingByPath.get(p) as Row | undefined;
      if (atPath) {
        const same = atPath.sha256 === sha256;
        // A duration measured for the old content says nothing about new content.
        const durationS = input.durationS ?? (same ? numOrNull(atPath.duration_s) : null);
        this.stmt.updateRecording.run({ ...values, durationS, id: atPath.id });
        return { ...this.recording(num(atPath.id))!, change: same ? 'unchanged' : 'edited' };
      }
      const sameContent = this.stmt.recordingsBySha.all(sha256) as Row[];
      const gone = sameContent.find((r) => bool(r.missing) || !fs.existsSync(String(r.path)));
      if (gone) {
        this.stmt.updateRecording.run({ ...values, durationS: input.durationS ?? numOrNull(gone.duration_s), id: gone.id });
        for (const j of this.listJobs({ recordingId: num(gone.id), state: 'failed', source: 'watch' })) this.retryJob(j.id);
        return { ...this.recording(num(gone.id))!, change: 'moved' };
      }
      const info = this.stmt.insertRecording.run({ ...values, durationS: input.durationS ?? null });
      return { ...this.recording(Number(info.lastInsertRowid))!, change: sameContent.length > 0 ? 'copied' : 'created' };
    }).immediate();
  }

  /** The recording at `path` when its size and mtime are what was last stored: a re-scan
   *  (daemon start, a drive coming back) can skip hashing it again. */
  unchangedRecording(p: string, size: number, mtimeMs: number): Recording | undefined {
    const r = this.recordingByPath(p);
    // A recording marked missing needs upsertRecording to clear the mark.
    return r && !r.missing && r.size === size && r.mtimeMs === Math.floor(mtimeMs) ? r : undefined;
  }

  /** Marks the recording at `path` as gone (or back). Returns whether one was known there. */
  setRecordingMissing(p: string, missing = true): boolean {
    return this.stmt.setRecordingMissing.run(missing ? 1 : 0, this.now(), path.resolve(p)).changes > 0;
  }

  /** Forgets a recording with its jobs and transcripts (segments and index entries follow). */
  deleteRecording(id: number): boolean {
    return this.stmt.deleteRecording.run(id).changes > 0;
  }

  // ---------------------------------------------------------------- jobs

  job(id: number): Job | undefined {
    const r = this.stmt.job.get(id) as Row | undefined;
    return r && toJob(r);
  }

  private mustJob(id: number): Job {
    const job = this.job(id);
    if (!job) throw new WxError('job.not_found', `no job ${id}`, { jobId: id });
    return job;
  }

  private illegal(job: Job, action: string): WxError {
    return new WxError('job.illegal_transition', `job ${job.id} (${job.path}) is ${job.state}; cannot ${action} it`, {
      jobId: job.id,
      state: job.state,
      action,
    });
  }

  private setState(
    job: Job,
    change: Partial<Pick<Job, 'state' | 'error' | 'notBefore' | 'attempts' | 'startedAt' | 'finishedAt'>>,
  ): Job {
    const next = { ...job, ...change };
    this.stmt.setJobState.run({
      id: job.id,
      state: next.state,
      error: next.error,
      notBefore: next.notBefore,
      attempts: next.attempts,
      startedAt: next.startedAt,
      finishedAt: next.finishedAt,
    });
    return this.mustJob(job.id);
  }

  /** Adds a queued job. With `dedupe`, an existing queued/running/done job for the same content
   *  and options is returned instead (`reused: true`; a queued one takes the more urgent priority). */
  enqueueJob(input: JobInput): EnqueuedJob {
    if (!JOB_SOURCES.includes(input.source)) throw new WxError('job.bad_input', `unknown job source ${String(input.source)}`, { source: String(input.source) });
    if (!Number.isInteger(input.priority)) throw new WxError('job.bad_input', `job priority must be an integer, got ${input.priority}`, { priority: input.priority });
    const maxAttempts = input.maxAttempts ?? this.defaultMaxAttempts;
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1) throw new WxError('job.bad_input', `maxAttempts must be a positive integer, got ${maxAttempts}`, { maxAttempts });
    const options = canonicalJson(input.options);
    return this.db.transaction((): EnqueuedJob => {
      const rec = this.recording(input.recordingId);
      if (!rec) throw new WxError('store.no_recording', `cannot queue a job: no recording ${input.recordingId}`, { recordingId: input.recordingId });
      if (input.dedupe) {
        const states = input.dedupeStates ?? DEFAULT_DEDUPE_STATES;
        const existing = this.stmt.dedupeJob.get({ sha: rec.sha256, options, states: JSON.stringify(states) }) as Row | undefined;
        if (existing) {
          this.stmt.raisePriority.run(input.priority, existing.id, input.priority);
          return { ...this.mustJob(num(existing.id)), reused: true };
        }
      }
      const info = this.stmt.insertJob.run({
        recordingId: rec.id,
        sha: rec.sha256,
        priority: input.priority,
        source: input.source,
        options,
        maxAttempts,
        now: this.now(),
        watchId: input.watchId ?? null,
      });
      return { ...this.mustJob(Number(info.lastInsertRowid)), reused: false };
    }).immediate();
  }

  /** Takes the next runnable job (queued, back-off over; most urgent priority, then oldest) and
   *  marks it running with one more attempt, atomically: two claimers never get the same job. */
  claimNextJob(now: number = this.now()): Job | undefined {
    return this.db.transaction(() => {
      const r = this.stmt.claim.get({ now }) as { id: number } | undefined;
      return r && this.mustJob(r.id);
    }).immediate();
  }

  /** Stores the job's transcript (replacing the recording's previous one) and marks the job
   *  done, in one transaction. */
  completeJob(jobId: number, t: TranscriptInput): StoredTranscript {
    return this.db.transaction(() => {
      const job = this.mustJob(jobId);
      if (job.state !== 'running') throw this.illegal(job, 'complete');
      const transcript = this.writeTranscript(job.recordingId, job.id, t);
      this.setState(job, { state: 'done', error: null, finishedAt: this.now() });
      return transcript;
    }).immediate();
  }

  /** Stores a transcript that no job produced (e.g. an in-process `wx transcribe --no-daemon`). */
  saveTranscript(recordingId: number, t: TranscriptInput): StoredTranscript {
    return this.db.transaction(() => {
      if (!this.recording(recordingId)) throw new WxError('store.no_recording', `no recording ${recordingId}`, { recordingId });
      return this.writeTranscript(recordingId, null, t);
    }).immediate();
  }

  private writeTranscript(recordingId: number, jobId: number | null, t: TranscriptInput): StoredTranscript {
    const where = jobId === null ? `recording ${recordingId}` : `job ${jobId}`;
    if (!Number.isFinite(t.duration) || t.duration < 0) {
      throw new WxError('store.bad_transcript', `transcript for ${where} has a bad duration ${t.duration}`, { jobId, recordingId });
    }
    t.segments.forEach((s, i) => {
      if (!Number.isFinite(s.start) || !Number.isFinite(s.end) || s.start < 0 || s.end < s.start || typeof s.text !== 'string') {
        throw new WxError('store.bad_segment', `segment ${i} of the transcript for ${where} is malformed (start ${s.start}, end ${s.end})`, {
          jobId,
          recordingId,
          segment: i,
        });
      }
    });
    const now = this.now();
    // One current transcript per recording: re-transcribing replaces the old one (its segments
    // and index entries go with it), so search never returns stale duplicates.
    this.stmt.deleteTranscriptsOf.run(recordingId);
    const info = this.stmt.insertTranscript.run({
      recordingId,
      jobId,
      model: t.model,
      precision: t.precision,
      language: t.language,
      durationS: t.duration,
      text: t.text,
      now,
    });
    const transcriptId = Number(info.lastInsertRowid);
    t.segments.forEach((s, idx) => {
      this.stmt.insertSegment.run({
        transcriptId,
        idx,
        start: s.start,
        end: s.end,
        text: s.text,
        avgLogprob: s.avg_logprob ?? null,
        noSpeechProb: s.no_speech_prob ?? null,
        compressionRatio: s.compression_ratio ?? null,
        temperature: s.temperature ?? null,
        seek: s.seek ?? null,
        tokens: s.tokens ? JSON.stringify(s.tokens) : null,
      });
    });
    this.stmt.setRecordingDuration.run(t.duration, recordingId);
    return toTranscript(this.stmt.transcriptById.get(transcriptId) as Row);
  }

  /** Records a failure of a running job. With retry (the default) and attempts left, the job
   *  goes back to the queue after an exponential back-off; otherwise it stays failed. */
  failJob(jobId: number, error: string, opts: { retry?: boolean } = {}): Job {
    return this.db.transaction(() => {
      const job = this.mustJob(jobId);
      if (job.state !== 'running') throw this.illegal(job, 'fail');
      const now = this.now();
      if ((opts.retry ?? true) && job.attempts < job.maxAttempts) {
        return this.setState(job, { state: 'queued', error, notBefore: now + this.backoffMs(job.attempts), finishedAt: null });
      }
      return this.setState(job, { state: 'failed', error, finishedAt: now });
    }).immediate();
  }

  /** Wait before the next try after `attempts` tries. */
  backoffMs(attempts: number): number {
    return Math.min(this.retryMaxMs, this.retryBaseMs * 2 ** Math.max(0, attempts - 1));
  }

  /** Puts a running job back in the queue without counting the attempt (clean shutdown). */
  releaseJob(jobId: number): Job {
    return this.db.transaction(() => {
      const job = this.mustJob(jobId);
      if (job.state !== 'running') throw this.illegal(job, 'release');
      return this.setState(job, { state: 'queued', attempts: Math.max(0, job.attempts - 1), startedAt: null, notBefore: 0 });
    }).immediate();
  }

  /** Crash recovery, at daemon start: jobs left running by a dead daemon go back to the queue.
   *  A job whose attempts are used up fails instead, so a file that kills the daemon every
   *  time cannot crash it forever. Returns how many were re-queued. */
  requeueRunningJobs(): number {
    return this.db.transaction(() => {
      let requeued = 0;
      const now = this.now();
      for (const r of this.stmt.runningJobs.all() as Row[]) {
        const job = this.mustJob(num(r.id));
        // An earlier attempt's own failure is what the user needs to see (a corrupt file whose
        // retry was cut off by a crash): it is kept after the interruption.
        const earlier = job.error?.replace(/^interrupted: [^;]*(; an earlier attempt failed: )?/, '') ?? '';
        const reason = `interrupted: the daemon stopped while this job ran (attempt ${job.attempts} of ${job.maxAttempts})${earlier ? `; an earlier attempt failed: ${earlier}` : ''}`;
        if (job.attempts < job.maxAttempts) {
          this.setState(job, { state: 'queued', error: reason, notBefore: 0, startedAt: null });
          requeued++;
        } else {
          this.setState(job, { state: 'failed', error: reason, finishedAt: now });
        }
      }
      return requeued;
    }).immediate();
  }

  /** `wx retry`: a failed or cancelled job goes back to the queue with its attempts reset. */
  retryJob(jobId: number): Job {
    return this.db.transaction(() => {
      const job = this.mustJob(jobId);
      if (job.state !== 'failed' && job.state !== 'cancelled') throw this.illegal(job, 'retry');
      return this.setState(job, { state: 'queued', attempts: 0, error: null, notBefore: 0, startedAt: null, finishedAt: null });
    }).immediate();
  }

  /** Cancels a queued or running job (cancelling a cancelled job is a no-op). A running job's
   *  worker must stop: completing or failing a cancelled job throws. */
  cancelJob(jobId: number): Job {
    return this.db.transaction(() => {
      const job = this.mustJob(jobId);
      if (job.state === 'cancelled') return job;
      if (job.state !== 'queued' && job.state !== 'running') throw this.illegal(job, 'cancel');
      return this.setState(job, { state: 'cancelled', finishedAt: this.now() });
    }).immediate();
  }

  /** Jobs, newest first. */
  listJobs(q: JobQuery = {}): Job[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (q.state !== undefined) {
      const states = (Array.isArray(q.state) ? q.state : [q.state]) as JobState[];
      for (const s of states) if (!JOB_STATES.includes(s)) throw new WxError('job.bad_input', `unknown job state ${s}`, { state: s });
      if (states.length === 0) return [];
      where.push(`j.state IN (${states.map(() => '?').join(', ')})`);
      args.push(...states);
    }
    if (q.source !== undefined) {
      where.push('j.source = ?');
      args.push(q.source);
    }
    if (q.recordingId !== undefined) {
      where.push('j.recording_id = ?');
      args.push(q.recordingId);
    }
    let sql = JOB_SELECT + (where.length ? ` WHERE ${where.join(' AND ')}` : '') + ' ORDER BY j.id DESC';
    if (q.limit !== undefined) {
      sql += ' LIMIT ?';
      args.push(Math.max(0, Math.floor(q.limit)));
    }
    return (this.db.prepare(sql).all(...args) as Row[]).map(toJob);
  }

  queueStats(): QueueStats {
    const stats: QueueStats = { queued: 0, running: 0, done: 0, failed: 0, cancelled: 0, queuedAudioS: 0, runningAudioS: 0, queuedUnknownDuration: 0 };
    for (const r of this.stmt.queueCounts.all() as Row[]) {
      const state = r.state as JobState;
      stats[state] = num(r.n);
      if (state === 'queued') {
        stats.queuedAudioS = num(r.audio);
        stats.queuedUnknownDuration = num(r.unknown);
      }
      if (state === 'running') stats.runningAudioS = num(r.audio);
    }
    return stats;
  }

  // ---------------------------------------------------------------- transcripts

  transcript(id: number): (StoredTranscript & { segments: StoredSegment[] }) | undefined {
    const r = this.stmt.transcriptById.get(id) as Row | undefined;
    return r && this.withSegments(r);
  }

  /** The recording's current transcript; for a copy never transcribed itself, the transcript
   *  of the same content at another path. */
  transcriptForRecording(recordingId: number): (StoredTranscript & { segments: StoredSegment[] }) | undefined {
    let r = this.stmt.latestTranscriptOf.get(recordingId) as Row | undefined;
    if (!r) {
      const rec = this.recording(recordingId);
      if (rec) r = this.stmt.latestTranscriptOfSha.get(rec.sha256) as Row | undefined;
    }
    return r && this.withSegments(r);
  }

  private withSegments(r: Row): StoredTranscript & { segments: StoredSegment[] } {
    const t = toTranscript(r);
    return { ...t, segments: (this.stmt.segmentsOf.all(t.id) as Row[]).map(toSegment) };
  }

  deleteTranscript(id: number): boolean {
    return this.stmt.deleteTranscript.run(id).changes > 0;
  }

  /** Corrects one segment's text (the search index follows). */
  updateSegmentText(segmentId: number, text: string): boolean {
    return this.stmt.updateSegmentText.run(text, segmentId).changes > 0;
  }

  // ---------------------------------------------------------------- search

  /** Full-text search over segment text, best (bm25) first. The query is user text (see
   *  fts-query.ts for the accepted syntax); it never reaches FTS5 unescaped. */
  search(query: string, opts: SearchOptions = {}): SearchHit[] {
    const match = toFtsQuery(query);
    if (match === null) return [];
    const limit = Math.min(1000, Math.max(1, Math.floor(opts.limit ?? 20)));
    const offset = Math.max(0, Math.floor(opts.offset ?? 0));
    const key = `${opts.sinceMs !== undefined ? 's' : ''}${opts.pathGlob !== undefined ? 'g' : ''}`;
    let stmt = this.searchStatements.get(key);
    if (!stmt) {
      stmt = this.db.prepare(
        `SELECT s.id AS segment_id, s.transcript_id, t.recording_id, r.path, s.start_s, s.end_s, s.text,
                snippet(segments_fts, 0, @open, @close, '…', @tokens) AS snippet, bm25(segments_fts) AS rank
         FROM segments_fts
         JOIN segments s ON s.id = segments_fts.rowid
         JOIN transcripts t ON t.id = s.transcript_id
         JOIN recordings r ON r.id = t.recording_id
         WHERE segments_fts MATCH @match
         ${opts.sinceMs !== undefined ? 'AND r.mtime_ms >= @since' : ''}
         ${opts.pathGlob !== undefined ? 'AND r.path GLOB @glob' : ''}
         ORDER BY segments_fts.rank LIMIT @limit OFFSET @offset`,
      );
      this.searchStatements.set(key, stmt);
    }
    const params: Record<string, unknown> = {
      open: opts.highlight?.open ?? '[',
      close: opts.highlight?.close ?? ']',
      tokens: Math.min(64, Math.max(1, Math.floor(opts.snippetTokens ?? 12))),
      match,
      limit,
      offset,
    };
    if (opts.sinceMs !== undefined) params.since = opts.sinceMs;
    if (opts.pathGlob !== undefined) params.glob = opts.pathGlob;
    let rows: Row[];
    try {
      rows = stmt.all(params) as Row[];
    } catch (err) {
      throw new WxError('search.failed', `search for ${JSON.stringify(query)} failed: ${describeError(err)}`, { query, match }, { cause: err });
    }
    return rows.map((r) => ({
      recordingId: num(r.recording_id),
      transcriptId: num(r.transcript_id),
      segmentId: num(r.segment_id),
      path: String(r.path),
      start: num(r.start_s),
      end: num(r.end_s),
      text: String(r.text),
      snippet: String(r.snippet),
      score: -num(r.rank),
    }));
  }

  // ---------------------------------------------------------------- watches

  addWatch(w: WatchInput): Watch {
    const dir = path.resolve(w.dir);
    const formats = [...(w.formats ?? [])];
    for (const f of formats) {
      if (!OUTPUT_FORMATS.includes(f)) throw new WxError('watch.bad_input', `unknown output format ${f} for watched folder ${dir} (use ${OUTPUT_FORMATS.join(', ')})`, { dir, format: f });
    }
    for (const g of [...(w.include ?? []), ...(w.exclude ?? [])]) {
      if (typeof g !== 'string' || g.length === 0) throw new WxError('watch.bad_input', `empty include/exclude pattern for watched folder ${dir}`, { dir });
    }
    return this.db.transaction(() => {
      if (this.stmt.watchByDir.get(dir)) throw new WxError('watch.exists', `${dir} is already watched`, { dir });
      const info = this.stmt.insertWatch.run({
        dir,
        recursive: w.recursive ? 1 : 0,
        include: JSON.stringify(w.include ?? []),
        exclude: JSON.stringify(w.exclude ?? []),
        outputDir: w.outputDir ? path.resolve(w.outputDir) : null,
        formats: JSON.stringify(formats),
        backfill: w.backfill === false ? 0 : 1,
        now: this.now(),
      });
      return toWatch(this.stmt.watchById.get(Number(info.lastInsertRowid)) as Row);
    }).immediate();
  }

  watch(dirOrId: string | number): Watch | undefined {
    const r = (typeof dirOrId === 'number' ? this.stmt.watchById.get(dirOrId) : this.stmt.watchByDir.get(path.resolve(dirOrId))) as Row | undefined;
    return r && toWatch(r);
  }

  listWatches(): Watch[] {
    return (this.stmt.listWatches.all() as Row[]).map(toWatch);
  }

  /** Stops watching (by id or directory). Jobs from the watch stay, with no watch. */
  removeWatch(dirOrId: string | number): boolean {
    const w = this.watch(dirOrId);
    return w ? this.stmt.deleteWatch.run(w.id).changes > 0 : false;
  }

  setWatchState(id: number, state: { available: boolean; lastError?: string | null }): void {
    this.stmt.setWatchState.run(state.available ? 1 : 0, state.lastError ?? null, id);
  }

  // ---------------------------------------------------------------- health

  /** 'ok', or what SQLite's integrity check and the FTS5 index check found. */
  integrityCheck(): string {
    const rows = this.db.pragma('integrity_check') as { integrity_check: string }[];
    const problems = rows.map((r) => r.integrity_check).filter((m) => m !== 'ok');
    try {
      // rank = 1 also compares the index with the external content (segments).
      this.db.prepare(`INSERT INTO segments_fts (segments_fts, rank) VALUES ('integrity-check', 1)`).run();
    } catch (err) {
      problems.push(`search index: ${describeError(err)}`);
    }
    return problems.length === 0 ? 'ok' : problems.join('\n');
  }

  counts(): { recordings: number; transcripts: number; segments: number; jobs: number } {
    const r = this.stmt.counts.get() as Row;
    return { recordings: num(r.recordings), transcripts: num(r.transcripts), segments: num(r.segments), jobs: num(r.jobs) };
  }

  /** Bytes on disk: the database file plus its WAL. */
  sizeBytes(): number {
    let total = 0;
    for (const f of [this.file, `${this.file}-wal`]) {
      try {
        total += fs.statSync(f).size;
      } catch {
        // no WAL right after a checkpoint
      }
    }
    return total;
  }
}
