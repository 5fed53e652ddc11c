// Watched-folder benchmarks: content hashing throughput (every new recording is hashed once),
// how long after a file is complete it is reported (by design: the stability window plus one
// poll), and back-fill ingestion into the store (watch → hash → recording → deduplicated job).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PRIORITY, TranscriptStore } from '../daemon/store/index.js';
import { FolderWatcher, hashFile } from '../daemon/watch/index.js';
import { fmt, median, peakRssMb, table, timeRuns, type BenchSuite } from './util.js';

export const suite: BenchSuite = {
  name: 'watch',
  description: 'watched folders: sha256 throughput, detection latency, back-fill ingestion into wx.db',
  async run() {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'wx-bench-watch-'));
    const rows: (string | number)[][] = [];
    try {
      // Hashing: a 128 MB file, page cache warm (as right after a copy finished).
      const big = path.join(root, 'big.m4a');
      const mb = 128;
      const chunk = Buffer.alloc(1 << 20);
      for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 131) & 0xff;
      const fd = fs.openSync(big, 'w');
      for (let i = 0; i < mb; i++) fs.writeSync(fd, chunk);
      fs.closeSync(fd);
      const hashMs = await timeRuns(() => hashFile(big), 3, 1);
      rows.push([`sha256 of a ${mb} MB file (MB/s, median of 3)`, fmt(mb / (median(hashMs) / 1000), 0)]);
      fs.rmSync(big);

      // Detection latency with the default thresholds (2 s stable, 250 ms polls).
      const live = path.join(root, 'live');
      fs.mkdirSync(live);
      const written = new Map<string, number>();
      const latencies: number[] = [];
      let allSeen!: () => void;
      const seen = new Promise<void>((r) => (allSeen = r));
      const files = 20;
      const w1 = new FolderWatcher({ dir: live }, {
        onFile(file) {
          latencies.push(performance.now() - written.get(file)!);
          if (latencies.length === files) allSeen();
        },
      });
      await w1.start();
      for (let i = 0; i < files; i++) {
        const f = path.join(live, `clip-${i}.wav`);
        fs.writeFileSync(f, chunk.subarray(0, 64 * 1024));
        written.set(f, performance.now());
      }
      await seen;
      await w1.close();
      rows.push([`report delay after a file is complete, ${files} files (ms, median / max)`, `${fmt(median(latencies), 0)} / ${fmt(Math.max(...latencies), 0)}`]);

      // Back-fill: 500 existing 256-KB files → recordings + jobs, end to end.
      const backlog = path.join(root, 'backlog');
      fs.mkdirSync(backlog);
      const count = 500;
      for (let i = 0; i < count; i++) {
        chunk.writeUInt32LE(i, 0); // distinct content per file
        fs.writeFileSync(path.join(backlog, `memo-${i}.m4a`), chunk.subarray(0, 256 * 1024));
      }
      const store = TranscriptStore.open(path.join(root, 'wx.db'));
      let ingested = 0;
      let done!: () => void;
      const finished = new Promise<void>((r) => (done = r));
      const t0 = performance.now();
      let firstReport = 0;
      const w2 = new FolderWatcher({ dir: backlog }, {
        async onFile(file, st) {
          firstReport ||= performance.now();
          const sha256 = await hashFile(file);
          const rec = store.upsertRecording({ path: file, sha256, size: st.size, mtimeMs: st.mtimeMs });
          store.enqueueJob({ recordingId: rec.id, priority: PRIORITY.watch, source: 'watch', dedupe: true });
          if (++ingested === count) done();
        },
      });
      await w2.start();
      await finished;
      const total = (performance.now() - t0) / 1000;
      const afterStable = (performance.now() - firstReport) / 1000;
      await w2.close();
      rows.push([`back-fill of ${count} files (256 KB): total s (incl. 2-s stability wait)`, fmt(total, 2)]);
      rows.push(['back-fill ingestion after the wait (files/s: hash + recording + job)', fmt(count / afterStable, 0)]);
      rows.push(['jobs in the store after back-fill', store.queueStats().queued]);
      store.close();
      rows.push(['peak RSS (MB)', fmt(peakRssMb(), 0)]);
      console.log(table(['measure', 'value'], rows));
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  },
};
