// Model pulls: download throughput from a local Hub stand-in (loopback, so this measures our
// client: streaming to disk, hashing while receiving, progress accounting), sha256 and git-blob
// verification speed of a file on disk, and the memory a pull needs (it streams, so it should not
// grow with the model's size).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { projectRoot } from '../daemon/paths.js';
import { downloadModelFiles, gitBlobSha1, sha256OfFile } from '../daemon/models/hub.js';
import { startHubServer } from '../test/helpers/hub-server.js';
import { fmt, median, peakRssMb, rssMb, table, timeRuns, type BenchSuite } from './util.js';

const MB = 2 ** 20;

function modelDir(): string {
  const shared = process.env.WX_SHARED_DIR ? path.resolve(process.env.WX_SHARED_DIR) : path.resolve(projectRoot(), '..', 'shared');
  const dir = path.join(shared, 'models', 'wx-tiny-en-synth');
  if (!fs.existsSync(path.join(dir, 'model.safetensors'))) throw new Error(`../shared is missing: no model in ${dir}`);
  return dir;
}

export const suite: BenchSuite = {
  name: 'models',
  description: 'Hub pull throughput (local loopback server), sha256 / git-blob verification speed, pull memory',
  async run() {
    const src = modelDir();
    const hub = await startHubServer(src);
    const rssBefore = rssMb();
    const homes: string[] = [];
    try {
      let bytes = 0;
      const pullMs = await timeRuns(async () => {
        const home = fs.mkdtempSync(path.join(os.tmpdir(), 'wx-bench-pull-'));
        homes.push(home);
        const r = await downloadModelFiles(hub.repo, { home, endpoint: hub.endpoint });
        bytes = r.bytesFetched;
      }, 5, 1);
      const rssAfterPull = rssMb();
      const weights = path.join(src, 'model.safetensors');
      const size = fs.statSync(weights).size;
      const shaMs = await timeRuns(() => sha256OfFile(weights), 5, 1);
      const gitMs = await timeRuns(() => gitBlobSha1(weights), 5, 1);
      const mbps = (b: number, ms: number) => b / MB / (ms / 1000);
      console.log(
        table(
          ['measure', 'size (MB)', 'median ms', 'MB/s'],
          [
            ['pull (all files, verified) from 127.0.0.1', fmt(bytes / MB), fmt(median(pullMs)), fmt(mbps(bytes, median(pullMs)))],
            ['sha256 of model.safetensors (disk cache warm)', fmt(size / MB), fmt(median(shaMs)), fmt(mbps(size, median(shaMs)))],
            ['git blob sha1 of model.safetensors', fmt(size / MB), fmt(median(gitMs)), fmt(mbps(size, median(gitMs)))],
          ],
        ),
      );
      console.log(
        `\nRSS: ${fmt(rssBefore)} MB with the server holding the model in memory, ${fmt(rssAfterPull)} MB after ${pullMs.length + 1} pulls; peak ${fmt(peakRssMb())} MB (server and client share the process)`,
      );
    } finally {
      await hub.close();
      for (const h of homes) fs.rmSync(h, { recursive: true, force: true });
    }
  },
};
