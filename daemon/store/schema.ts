// The schema of wx.db as an ordered list of migrations. `PRAGMA user_version` holds how many
// have been applied; each runs in its own transaction, so a crash mid-upgrade leaves the
// previous version intact. Never edit a shipped migration: append a new one.
//
// Times are integers, milliseconds since the Unix epoch. Durations and offsets are seconds (REAL).

export const MIGRATIONS: readonly string[] = [
  // 1: recordings, jobs, transcripts, segments, FTS5 index, watches.
  `
  CREATE TABLE watches (
    id          INTEGER PRIMARY KEY,
    dir         TEXT    NOT NULL UNIQUE,
    recursive   INTEGER NOT NULL DEFAULT 0 CHECK (recursive IN (0, 1)),
    include     TEXT    NOT NULL DEFAULT '[]',
    exclude     TEXT    NOT NULL DEFAULT '[]',
    output_dir  TEXT,
    formats     TEXT    NOT NULL DEFAULT '[]',
    backfill    INTEGER NOT NULL DEFAULT 1 CHECK (backfill IN (0, 1)),
    created_at  INTEGER NOT NULL,
    available   INTEGER NOT NULL DEFAULT 1 CHECK (available IN (0, 1)),
    last_error  TEXT
  );

  CREATE TABLE recordings (
    id          INTEGER PRIMARY KEY,
    path        TEXT    NOT NULL UNIQUE,
    sha256      TEXT    NOT NULL CHECK (length(sha256) = 64),
    size        INTEGER NOT NULL CHECK (size >= 0),
    mtime_ms    INTEGER NOT NULL,
    duration_s  REAL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    missing     INTEGER NOT NULL DEFAULT 0 CHECK (missing IN (0, 1))
  );
  CREATE INDEX recordings_sha256 ON recordings (sha256);

  CREATE TABLE jobs (
    id            INTEGER PRIMARY KEY,
    recording_id  INTEGER NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    -- The content the job was asked for: an edited recording (new hash) is a new job.
    content_sha256 TEXT   NOT NULL,
    state         TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    priority      INTEGER NOT NULL,
    source        TEXT    NOT NULL CHECK (source IN ('cli', 'watch', 'dictation')),
    -- Canonical JSON (sorted keys), so equal options compare equal as text.
    options       TEXT    NOT NULL DEFAULT '{}',
    attempts      INTEGER NOT NULL DEFAULT 0,
    max_attempts  INTEGER NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    error         TEXT,
    not_before    INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL,
    started_at    INTEGER,
    finished_at   INTEGER,
    watch_id      INTEGER REFERENCES watches (id) ON DELETE SET NULL
  );
  CREATE INDEX jobs_claim ON jobs (state, priority, id);
  CREATE INDEX jobs_recording ON jobs (recording_id);
  CREATE INDEX jobs_content ON jobs (content_sha256, options);
  CREATE INDEX jobs_watch ON jobs (watch_id);

  CREATE TABLE transcripts (
    id            INTEGER PRIMARY KEY,
    recording_id  INTEGER NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    job_id        INTEGER REFERENCES jobs (id) ON DELETE SET NULL,
    model         TEXT    NOT NULL,
    precision     TEXT    NOT NULL,
    language      TEXT    NOT NULL,
    duration_s    REAL    NOT NULL CHECK (duration_s >= 0),
    text          TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
  );
  CREATE INDEX transcripts_recording ON transcripts (recording_id);
  CREATE INDEX transcripts_job ON transcripts (job_id);

  CREATE TABLE segments (
    id                INTEGER PRIMARY KEY,
    transcript_id     INTEGER NOT NULL REFERENCES transcripts (id) ON DELETE CASCADE,
    idx               INTEGER NOT NULL,
    start_s           REAL    NOT NULL CHECK (start_s >= 0),
    end_s             REAL    NOT NULL CHECK (end_s >= start_s),
    text              TEXT    NOT NULL,
    avg_logprob       REAL,
    no_speech_prob    REAL,
    compression_ratio REAL,
    temperature       REAL,
    seek              INTEGER,
    tokens            TEXT,
    UNIQUE (transcript_id, idx)
  );

  -- External-content index: the text lives once, in segments; the triggers keep the index
  -- in step with every insert, update and delete (including cascaded deletes).
  CREATE VIRTUAL TABLE segments_fts USING fts5 (
    text,
    content = 'segments',
    content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
  );
  CREATE TRIGGER segments_ai AFTER INSERT ON segments BEGIN
    INSERT INTO segments_fts (rowid, text) VALUES (new.id, new.text);
  END;
  CREATE TRIGGER segments_ad AFTER DELETE ON segments BEGIN
    INSERT INTO segments_fts (segments_fts, rowid, text) VALUES ('delete', old.id, old.text);
  END;
  CREATE TRIGGER segments_au AFTER UPDATE OF text ON segments BEGIN
    INSERT INTO segments_fts (segments_fts, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO segments_fts (rowid, text) VALUES (new.id, new.text);
  END;
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;
