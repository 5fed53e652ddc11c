// Model pulls: download throughput from a local Hub stand-in on loopback (run in a child process,
// so the numbers are our client's: streaming to disk, hashing while receiving, progress), sha256
// and git-blob verification speed of a file on disk, and the client's memory during a pull (it
// streams, so it must not grow with the model's size).
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { downloadModelFiles, gitBlobSha1, sha256OfFile } from '../daemon/models/hub.js';
import { startHubServer } from '../test/helpers/hub-server.js';
import { fmt, median, peakRssMb, rssMb, table, timeRuns, type BenchSuite, sharedDir } from './util.js';

const MB = 2 ** 20;

function modelDir(): string {
  const dir = path.join(sharedDir(), 'models', 'wx-tiny-en-synth');
  if (!fs.existsSync(path.join(dir, 'model.safetensors'))) throw new Error(`../shared is missing: no model in ${dir}`);
  return dir;
}

/** Starts the Hub stand-in in a child process (this file with `--serve <dir>`). */
function startServerProcess(dir: string): Promise<{ endpoint: string; repo: string; child: ChildProcess }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--serve', dir], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve({ ...(JSON.parse(out.slice(0, nl)) as { endpoint: string; repo: string }), child });
    });
    child.once('exit', (code) => reject(new Error(`hub server process exited (${code}) before it was ready`)));
  });
}

export const suite: BenchSuite = {
  name: 'models',
  description: 'Hub pull throughput (local loopback server in a child process), sha256 / git-blob verification speed, pull memory',
  async run() {
    const src = modelDir();
    const server = await startServerProcess(src);
    const rssBefore = rssMb();
    const homes: string[] = [];
    try {
      let bytes = 0;
      const pullMs = await timeRuns(async () => {
        const home = fs.mkdtempSync(path.join(os.tmpdir(), 'wx-bench-pull-'));
        homes.push(home);
        const r = await downloadModelFiles(server.repo, { home, endpoint: server.endpoint });
        bytes = r.bytesFetched;
      }, 5, 1);
      const rssAfterPull = rssMb();
      const peakAfterPull = peakRssMb();
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
            ['sha256 of model.safetensors (page cache warm)', fmt(size / MB), fmt(median(shaMs)), fmt(mbps(size, median(shaMs)))],
            ['git blob sha1 of model.safetensors', fmt(size / MB), fmt(median(gitMs)), fmt(mbps(size, median(gitMs)))],
          ],
        ),
      );
      console.log(`\nclient RSS: ${fmt(rssBefore)} MB before, ${fmt(rssAfterPull)} MB after ${pullMs.length + 1} pulls of ${fmt(bytes / MB)} MB; peak ${fmt(peakAfterPull)} MB`);
    } finally {
      server.child.kill();
      for (const h of homes) fs.rmSync(h, { recursive: true, force: true });
    }
  },
};

if (process.argv[1] === fileURLToPath(import.meta.url) && process.argv[2] === '--serve') {
  const hub = await startHubServer(process.argv[3]!);
  process.stdout.write(JSON.stringify({ endpoint: hub.endpoint, repo: hub.repo }) + '\n');
}
