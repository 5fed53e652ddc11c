// Store benchmarks: how fast finished transcripts are written (the end of every job) and how
// fast `wx search` answers over a realistic corpus (target: p95 ≤ 10 ms over 100,000 segments).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { seededRandom } from '../daemon/engine/decoding/numerics.js';
import { TranscriptStore, toFtsQuery, type TranscriptInput } from '../daemon/store/index.js';
import { fmt, median, quantile, rssMb, table, type BenchSuite } from './util.js';

const COMMON = ['the', 'and', 'to', 'of', 'a', 'we', 'that', 'is', 'it', 'for', 'on', 'this', 'so', 'you', 'be'];

/** The i-th word of the synthetic vocabulary: low i are frequent (Zipf-like), high i rare. */
const vocabWord = (i: number): string => `w${i.toString(36)}${'aeiou'[i % 5]}`;

/** Speech-like text: common function words plus a Zipf-distributed vocabulary of 5,000 words. */
export function corpus(seed: number) {
  const rand = seededRandom(seed);
  const vocab = Array.from({ length: 5000 }, (_, i) => vocabWord(i));
  const word = () => (rand() < 0.4 ? COMMON[Math.floor(rand() * COMMON.length)]! : vocab[Math.floor(vocab.length * rand() ** 3)]!);
  return (segments: number, wordsPer = 12): TranscriptInput => {
    const segs = Array.from({ length: segments }, (_, i) => ({
      start: i * 4,
      end: i * 4 + 4,
      text: Array.from({ length: wordsPer }, word).join(' '),
      avg_logprob: -0.3,
      no_speech_prob: 0.02,
      tokens: Array.from({ length: 16 }, (_, k) => 50000 + k),
    }));
    return { model: 'bench', precision: 'int8', language: 'en', duration: segments * 4, text: segs.map((s) => s.text).join(' '), segments: segs };
  };
}

export function fill(store: TranscriptStore, count: number, segments: number, make: ReturnType<typeof corpus>, offset = 0): void {
  for (let i = 0; i < count; i++) {
    const n = offset + i;
    const rec = store.upsertRecording({ path: `/bench/rec-${n}.m4a`, sha256: n.toString(16).padStart(64, '0'), size: 1000, mtimeMs: n });
    const job = store.enqueueJob({ recordingId: rec.id, priority: 2, source: 'watch' });
    store.claimNextJob();
    store.completeJob(job.id, make(segments));
  }
}

export const suite: BenchSuite = {
  name: 'store',
  description: 'wx.db: transcript write throughput, search latency over 100k segments, size on disk',
  async run() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wx-bench-store-'));
    try {
      // Writes: enqueue + claim + complete of transcripts with 50 segments, fresh database per run.
      const perRun = 300;
      const rates: number[] = [];
      for (let run = 0; run < 3; run++) {
        const store = TranscriptStore.open(path.join(dir, `write-${run}.db`));
        const make = corpus(run + 1);
        // Texts are generated before the clock starts: only the store calls are timed.
        const pre = Array.from({ length: perRun }, () => make(50));
        const t0 = performance.now();
        pre.forEach((t, n) => {
          const rec = store.upsertRecording({ path: `/bench/w-${n}.m4a`, sha256: n.toString(16).padStart(64, '0'), size: 1, mtimeMs: n });
          const job = store.enqueueJob({ recordingId: rec.id, priority: 2, source: 'watch' });
          store.claimNextJob();
          store.completeJob(job.id, t);
        });
        rates.push(perRun / ((performance.now() - t0) / 1000));
        store.close();
      }

      // Search: 10,000 transcripts × 10 segments = 100,000 segments.
      const file = path.join(dir, 'search.db');
      const store = TranscriptStore.open(file);
      const tFill = performance.now();
      fill(store, 10_000, 10, corpus(42));
      const fillS = (performance.now() - tFill) / 1000;
      store.db.pragma('wal_checkpoint(TRUNCATE)');
      const queries: [string, string[]][] = [
        ['rare word', [4000, 4321, 4700, 4999, 3500].map(vocabWord)],
        ['mid-frequency word', [5, 9, 15, 20, 25].map(vocabWord)],
        ['common word (in ~28% of segments)', ['the', 'and', 'we']],
        ['two words (AND)', [`${vocabWord(5)} ${vocabWord(9)}`, `${vocabWord(15)} ${vocabWord(20)}`, `the ${vocabWord(5)}`]],
        ['phrase', [`"the ${vocabWord(5)}"`, '"we that"', `"${vocabWord(9)} and"`]],
        ['prefix, narrow', ['w1z*', 'w2g*', 'w3k*']],
        ['prefix, wide (70% of segments)', ['w2*', 'w1*']],
        ['with exclusion', [`${vocabWord(5)} -the`, `${vocabWord(15)} -and`]],
      ];
      const rows: (string | number)[][] = [];
      for (const [label, qs] of queries) {
        for (const q of qs) store.search(q, { limit: 20 }); // warm the page cache
        const ms: number[] = [];
        for (let r = 0; r < 40; r++) {
          for (const q of qs) {
            const t0 = performance.now();
            store.search(q, { limit: 20 });
            ms.push(performance.now() - t0);
          }
        }
        const matches = store.db.prepare(`SELECT count(*) FROM segments_fts WHERE segments_fts MATCH ?`).pluck().get(toFtsQuery(qs[0]!)) as number;
        rows.push([label, qs[0]!, matches, fmt(median(ms), 2), fmt(quantile(ms, 0.95), 2)]);
      }
      const counts = store.counts();
      const bytes = store.sizeBytes();
      store.close();

      console.log(
        table(
          ['measure', 'value'],
          [
            ['write: transcripts (50 segments) per s, median of 3×300', fmt(median(rates), 0)],
            ['write: segments per s', fmt(median(rates) * 50, 0)],
            ['fill 10k transcripts × 10 segments (s)', fmt(fillS, 1)],
            ['corpus', `${counts.transcripts} transcripts, ${counts.segments} segments`],
            ['db size on disk (MB)', fmt(bytes / 2 ** 20, 1)],
            ['db bytes per segment', fmt(bytes / counts.segments, 0)],
            ['RSS (MB)', fmt(rssMb(), 0)],
          ],
        ),
      );
      console.log('\nSearch latency by query kind (limit 20, 40 rounds each):\n');
      console.log(table(['query kind', 'example', 'segments matching it', 'p50 ms', 'p95 ms'], rows));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
};
