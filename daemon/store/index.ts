// The transcript store (wx.db): recordings, the job queue, transcripts, full-text search, watches.
export { TranscriptStore, canonicalJson, toPipelineTranscript, type StoreOptions } from './store.js';
export { toFtsQuery } from './fts-query.js';
export { SCHEMA_VERSION } from './schema.js';
export * from './types.js';
