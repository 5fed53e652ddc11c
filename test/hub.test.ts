// Model pulls against a local stand-in for the Hugging Face Hub (test/helpers/hub-server.ts)
// serving ../shared/models/wx-tiny-en-synth: install, resume, verification, errors, and that
// nothing but that loopback server is ever contacted.
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { WxError } from '../daemon/errors.js';
import { downloadDirFor, downloadModelFiles, fetchRepoInfo } from '../daemon/models/hub.js';
import { getDefaultModel, listDownloads, listInstalled, pullModel, removeModel, resolveModel, setDefaultModel } from '../daemon/models/registry.js';
import { readConfig } from '../daemon/models/config-file.js';
import { WhisperModel } from '../daemon/engine/model.js';
import { WhisperTokenizer } from '../daemon/engine/tokenizer.js';
import { Transcriber } from '../daemon/pipeline/index.js';
import { wordErrorRate } from '../daemon/pipeline/wer.js';
import { startHubServer, type HubServer } from './helpers/hub-server.js';
import { repoRoot, sharedPath, tinyModelDir } from './shared.js';

let hub: HubServer;
let home: string;
const fetchedUrls: string[] = [];
const realFetch = globalThis.fetch;

beforeAll(async () => {
  hub = await startHubServer(tinyModelDir());
  // Every request this process makes goes through here: the tests assert they all stayed on
  // loopback and that the local server saw each one.
  globalThis.fetch = ((input: Parameters<typeof fetch>[0], init?: Parameters<typeof fetch>[1]) => {
    fetchedUrls.push(typeof input === 'string' ? input : input instanceof URL ? input.toString() : input.url);
    return realFetch(input, init);
  }) as typeof fetch;
});

afterAll(async () => {
  globalThis.fetch = realFetch;
  await hub?.close();
});

beforeEach(() => {
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'wx-hub-'));
  hub.reset();
  fetchedUrls.length = 0;
});

afterEach(() => {
  fs.rmSync(home, { recursive: true, force: true });
});

const modelSize = () => hub.files().find((f) => f.name === 'model.safetensors')!.size;

async function errorOf(p: Promise<unknown>): Promise<WxError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(WxError);
    return err as WxError;
  }
  throw new Error('expected the call to fail');
}

/** Names visible in $WX_HOME/models other than hidden (dot) temp and download directories. */
const visibleModelDirs = () => {
  const dir = path.join(home, 'models');
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((e) => !e.startsWith('.')) : [];
};

/** Resolves when `file` exists with at least one byte, woken by changes in its directory. */
function untilFileGrows(file: string): Promise<void> {
  const has = () => fs.existsSync(file) && fs.statSync(file).size > 0;
  if (has()) return Promise.resolve();
  return new Promise((resolve) => {
    const watcher = fs.watch(path.dirname(file), () => {
      if (has()) {
        watcher.close();
        resolve();
      }
    });
    if (has()) {
      watcher.close();
      resolve();
    }
  });
}

function runWx(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    // In-process (the daemon path of these commands is tested in models-daemon.test.ts).
    const inProcess = args[0] === 'models' && ['pull', 'ls', 'default'].includes(args[1]!) ? [...args, '--no-daemon'] : args;
    execFile(process.execPath, [path.join(repoRoot, 'bin', 'wx.js'), ...inProcess], { env: { ...process.env, ...env }, maxBuffer: 1 << 24 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}


/** Writes `src`'s checkpoint into `dst` as two safetensors shards plus the index the Hub's
 *  sharded repos carry (`model.safetensors.index.json` with a weight_map), other files copied. */
function writeShardedCopy(src: string, dst: string): string[] {
  const buf = fs.readFileSync(path.join(src, 'model.safetensors'));
  const headerLen = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const names = Object.keys(header).filter((n) => n !== '__metadata__').sort();
  const shards = [names.slice(0, names.length >> 1), names.slice(names.length >> 1)];
  const files = shards.map((_, i) => `model-${String(i + 1).padStart(5, '0')}-of-${String(shards.length).padStart(5, '0')}.safetensors`);
  const weightMap: Record<string, string> = {};
  shards.forEach((tensorNames, i) => {
    const h: Record<string, unknown> = {};
    const parts: Buffer[] = [];
    let off = 0;
    for (const n of tensorNames) {
      const t = header[n]!;
      const data = buf.subarray(8 + headerLen + t.data_offsets[0], 8 + headerLen + t.data_offsets[1]);
      h[n] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + data.length] };
      parts.push(data);
      off += data.length;
      weightMap[n] = files[i]!;
    }
    const json = Buffer.from(JSON.stringify(h));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    fs.writeFileSync(path.join(dst, files[i]!), Buffer.concat([len, json, ...parts]));
  });
  fs.writeFileSync(path.join(dst, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: buf.length - 8 - headerLen }, weight_map: weightMap }));
  for (const f of fs.readdirSync(src)) if (f !== 'model.safetensors') fs.copyFileSync(path.join(src, f), path.join(dst, f));
  return files;
}

describe('listing', () => {
  it('reads the commit and per-file hashes from the revision API', async () => {
    const info = await fetchRepoInfo(hub.repo, 'main', { endpoint: hub.endpoint });
    expect(info.commit).toBe(hub.commit);
    const st = info.files.find((f) => f.path === 'model.safetensors')!;
    expect(st.lfsSha256).toBe(hub.files().find((f) => f.name === 'model.safetensors')!.sha256);
    expect(st.size).toBe(modelSize());
    expect(info.files.find((f) => f.path === 'config.json')!.blobId).toMatch(/^[0-9a-f]{40}$/);
  });

  it('falls back to the paged tree API when the revision API lists names only (mirrors)', async () => {
    hub.knobs.noBlobs = true;
    hub.knobs.treePageSize = 5;
    const info = await fetchRepoInfo(hub.repo, 'main', { endpoint: hub.endpoint });
    const st = info.files.find((f) => f.path === 'model.safetensors')!;
    expect(st.lfsSha256).toBe(hub.files().find((f) => f.name === 'model.safetensors')!.sha256);
    expect(info.files.every((f) => typeof f.size === 'number')).toBe(true);
    expect(hub.requests.filter((q) => q.url.includes('/tree/')).length).toBe(Math.ceil(hub.files().length / 5));
    // Verification still works from the tree's hashes.
    hub.knobs.corrupt.add('model.safetensors');
    const err = await errorOf(downloadModelFiles(hub.repo, { home, endpoint: hub.endpoint, retries: 0 }));
    expect(err.code).toBe('hub.checksum');
  });
});

describe('pull', () => {
  it('installs through the CLI: only the needed files, verified; ls shows it; the model transcribes', async () => {
    // Weights in formats wx never reads must not be fetched.
    hub.knobs.extraFiles.set('pytorch_model.bin', Buffer.alloc(4096, 1));
    hub.knobs.extraFiles.set('flax_model.msgpack', Buffer.alloc(4096, 2));
    const env = { WX_HOME: home, HF_ENDPOINT: hub.endpoint, HF_TOKEN: '' };
    const pull = await runWx(['models', 'pull', hub.repo, '--name', 'synth', '--precision', 'both'], env);
    expect(pull.stderr).not.toMatch(/Error|wx:/);
    expect(pull.code).toBe(0);
    expect(pull.stdout).toContain(`installed synth from ${hub.repo}@${hub.commit}`);
    // Non-TTY progress: plain lines with percent, bytes, speed and ETA.
    expect(pull.stderr).toMatch(/download 100% [\d.]+ MB\/[\d.]+ MB [\d.]+ [KMG]?B\/s ETA/);

    const served = hub.requests.map((r) => decodeURIComponent(r.url));
    expect(served.some((u) => u.includes('pytorch_model.bin') || u.includes('flax_model'))).toBe(false);
    expect(served.filter((u) => u.includes('/resolve/')).length).toBe(hub.files().filter((f) => !['.gitattributes', 'README.md', 'pytorch_model.bin', 'flax_model.msgpack'].includes(f.name)).length);
    expect(hub.bytesServed()).toBe(modelSize());

    const ls = await runWx(['models', 'ls', '--json'], env);
    expect(ls.code).toBe(0);
    const listed = JSON.parse(ls.stdout) as { installed: { name: string; source: string; revision: string; precisions: string[]; sizeBytes: number; default: boolean }[] };
    expect(listed.installed).toHaveLength(1);
    expect(listed.installed[0]).toMatchObject({ name: 'synth', source: hub.repo, revision: hub.commit, default: true });
    expect(listed.installed[0]!.precisions.sort()).toEqual(['fp32', 'int8']);
    expect(listed.installed[0]!.sizeBytes).toBeGreaterThan(0);
    // The download area is gone after a successful install.
    expect(fs.existsSync(downloadDirFor(home, hub.repo, 'main'))).toBe(false);

    // The pulled model transcribes: fp32 greedy on fx-short gives the reference tokens exactly.
    const installed = await resolveModel('synth', { home, precision: 'fp32' });
    const tok = WhisperTokenizer.fromModelDir(installed.dir);
    const ref = JSON.parse(fs.readFileSync(sharedPath('fixtures', 'reference', 'reference.json'), 'utf8'))['fx-short'].greedy_notimestamps as { prompt: number[]; tokens: number[] };
    const mel = new Float32Array(fs.readFileSync(sharedPath('fixtures', 'reference', 'fx-short.mel.f32')).buffer.slice(0));
    const model = await WhisperModel.load(installed.dir, { precision: 'fp32', threads: 2 });
    try {
      const enc = await model.encode(mel, 1);
      const batch = model.newBatch(1);
      const row = batch.add(enc, 0);
      const out: number[] = [];
      let feed = ref.prompt;
      while (out.length < 224) {
        const logits = await batch.step([row], [feed], [feed.length - 1]);
        let best = -1;
        for (let id = 0; id < logits.length; id++) {
          if (id >= tok.sot) continue; // every special token but <|endoftext|> is suppressed (reference semantics)
          if (best < 0 || logits[id]! > logits[best]!) best = id;
        }
        out.push(best);
        if (best === tok.eot) break;
        feed = [best];
      }
      expect(out).toEqual(ref.tokens);
      expect(tok.decode(out.slice(0, -1)).trim().length).toBeGreaterThan(0);
    } finally {
      await model.close();
    }
    // default / rm through the CLI.
    const setDefault = await runWx(['models', 'default', 'synth'], env);
    expect(setDefault.stdout).toContain('default model: synth');
    expect(readConfig(home)).toEqual({ model: 'synth' });
    expect((await runWx(['models', 'default'], env)).stdout).toContain('synth (from config)');
    const text = await runWx(['models', 'ls'], env);
    expect(text.stdout).toMatch(/^\* synth +wx-test\/whisper-tiny-synth@[0-9a-f]{10} +(fp32\+int8|int8\+fp32) +\d+(\.\d)? MB$/m);
    expect(text.stdout).toMatch(/^ +turbo +openai\/whisper-large-v3-turbo$/m);

    // And through the pipeline by its installed name (INT8, VAD): the fixture's words.
    const truth = JSON.parse(fs.readFileSync(sharedPath('fixtures', 'fixtures.json'), 'utf8'))['fx-short'].text as string;
    const transcriber = await Transcriber.open({ model: 'synth', precision: 'int8', home, threads: 2 });
    try {
      const transcript = await transcriber.transcribeFile(sharedPath('fixtures', 'fx-short.wav'));
      expect(wordErrorRate(truth, transcript.text).wer).toBeLessThanOrEqual(0.2);
    } finally {
      await transcriber.close();
    }
    const rm = await runWx(['models', 'rm', 'synth'], env);
    expect(rm.stdout).toContain('removed synth (it was the default');
    expect(JSON.parse((await runWx(['models', 'ls', '--json'], env)).stdout).installed).toEqual([]);
    expect(readConfig(home)).toEqual({});
  });

  it('pulls a sharded checkpoint: the index first, then the shards it names', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wx-sharded-'));
    const shardFiles = writeShardedCopy(tinyModelDir(), dir);
    const sharded = { shardFiles, server: await startHubServer(dir, 'wx-test/sharded') };
    try {
      const r = await pullModel('wx-test/sharded', { home, endpoint: sharded.server.endpoint, retries: 0 });
      expect(r.name).toBe('sharded');
      const fetched = sharded.server.requests.filter((q) => q.url.includes('/resolve/')).map((q) => decodeURIComponent(q.url.split('/').pop()!));
      expect(fetched.indexOf('model.safetensors.index.json')).toBeLessThan(Math.min(...sharded.shardFiles.map((f) => fetched.indexOf(f))));
      for (const f of sharded.shardFiles) expect(fetched).toContain(f);
      expect(Object.keys(r.manifest.inputs)).toEqual(expect.arrayContaining(sharded.shardFiles));
      expect(r.manifest.dims.dModel).toBeGreaterThan(0);
      // Same weights as the single-file checkpoint, so the same graphs come out.
      const single = await resolveModel(tinyModelDir(), { home });
      expect(fs.statSync(path.join(r.dir, r.manifest.files.int8!.encoder)).size).toBe(fs.statSync(path.join(single.dir, single.manifest.files.int8!.encoder)).size);
    } finally {
      await sharded.server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('resumes an interrupted download and fetches only the rest', async () => {
    const cut = 20 * 2 ** 20;
    hub.knobs.failAfter = { file: 'model.safetensors', bytes: cut };
    const err = await errorOf(downloadModelFiles(hub.repo, { home, endpoint: hub.endpoint, retries: 0 }));
    expect(err.code).toBe('hub.network');
    expect(err.message).toContain('model.safetensors');
    const dir = downloadDirFor(home, hub.repo, 'main');
    // The server sent `cut` bytes; the client keeps what reached it before the reset (the last
    // chunks in flight may be lost with the connection).
    const kept = fs.statSync(path.join(dir, 'model.safetensors.partial')).size;
    expect(kept).toBeGreaterThan(cut / 2);
    expect(kept).toBeLessThanOrEqual(cut);
    expect(visibleModelDirs()).toEqual([]);
    expect(listInstalled(home)).toEqual([]);
    expect(listDownloads(home)).toEqual([{ key: expect.stringContaining('whisper-tiny-synth@main'), dir, bytes: expect.any(Number) }]);
    expect(listDownloads(home)[0]!.bytes).toBeGreaterThanOrEqual(kept);

    hub.requests.length = 0;
    const r = await downloadModelFiles(hub.repo, { home, endpoint: hub.endpoint, retries: 0 });
    // Second attempt: one ranged request for the rest; the small files were already verified.
    const cdn = hub.requests.filter((q) => q.server === 'cdn');
    expect(cdn).toHaveLength(1);
    expect(cdn[0]!.range).toBe(`bytes=${kept}-`);
    expect(cdn[0]!.status).toBe(206);
    expect(hub.bytesServed()).toBe(modelSize() - kept);
    expect(hub.bytesServed()).toBeLessThan(modelSize());
    expect(r.bytesFetched).toBe(modelSize() - kept);
    expect(hub.requests.filter((q) => q.url.includes('/resolve/') && !q.url.endsWith('model.safetensors'))).toHaveLength(0);
    expect(fs.statSync(path.join(r.dir, 'model.safetensors')).size).toBe(modelSize());
  });

  it('retries a dropped connection within one pull, resuming, and installs', async () => {
    const cut = 7 * 2 ** 20;
    hub.knobs.failAfter = { file: 'model.safetensors', bytes: cut, times: 2 };
    const progress: number[] = [];
    const r = await pullModel(hub.repo, { home, endpoint: hub.endpoint, name: 'synth', retryDelayMs: 1, onProgress: (p) => p.phase === 'download' && progress.push(p.bytesDone) });
    expect(r.alreadyInstalled).toBe(false);
    // Two cut transfers, then the rest; each retry resumes from what reached the disk, so only
    // the few chunks in flight at each reset are sent twice.
    const cdn = hub.requests.filter((q) => q.server === 'cdn');
    expect(cdn).toHaveLength(3);
    expect(cdn[0]!.range).toBeUndefined();
    const starts = cdn.slice(1).map((q) => Number(/^bytes=(\d+)-$/.exec(q.range ?? '')?.[1]));
    expect(starts[0]!).toBeGreaterThan(cut / 2);
    expect(starts[0]!).toBeLessThanOrEqual(cut);
    expect(starts[1]! - starts[0]!).toBeGreaterThan(cut / 2);
    expect(starts[1]! - starts[0]!).toBeLessThanOrEqual(cut);
    expect(cdn[2]!.bytes).toBe(modelSize() - starts[1]!);
    expect(hub.bytesServed()).toBeLessThan(modelSize() + cut);
    expect(listInstalled(home).map((m) => m.name)).toEqual(['synth']);
    expect(progress.at(-1)).toBe(r.bytesTotal);
    for (let i = 1; i < progress.length; i++) expect(progress[i]!).toBeGreaterThanOrEqual(progress[i - 1]!);
    // A second pull of the same model only checks where `main` points now; by repo id without a
    // name it finds the same model; by commit id it needs no request at all.
    hub.requests.length = 0;
    const again = await pullModel(hub.repo, { home, endpoint: hub.endpoint, name: 'synth' });
    expect(again.alreadyInstalled).toBe(true);
    const again2 = await pullModel(hub.repo, { home, endpoint: hub.endpoint });
    expect(again2).toMatchObject({ alreadyInstalled: true, name: 'synth' });
    expect(hub.requests.map((q) => q.url)).toEqual([`/api/models/${hub.repo}/revision/main?blobs=true`, `/api/models/${hub.repo}/revision/main?blobs=true`]);
    const again3 = await pullModel(hub.repo, { home, endpoint: hub.endpoint, revision: hub.commit.slice(0, 10) });
    expect(again3.alreadyInstalled).toBe(true);
    expect(hub.requests).toHaveLength(2);
    // Asking for another precision converts again and keeps the one it had.
    const both = await pullModel(hub.repo, { home, endpoint: hub.endpoint, precision: 'fp32' });
    expect(both.alreadyInstalled).toBe(false);
    expect(both.name).toBe('synth');
    expect([...both.manifest.precisions].sort()).toEqual(['fp32', 'int8']);
    expect(listInstalled(home).map((m) => m.name)).toEqual(['synth']);
  });

  it('rejects a corrupted LFS file (wrong sha256): clear error, bad bytes deleted, nothing installed', async () => {
    hub.knobs.corrupt.add('model.safetensors');
    const err = await errorOf(pullModel(hub.repo, { home, endpoint: hub.endpoint, name: 'synth', retries: 0 }));
    expect(err.code).toBe('hub.checksum');
    const want = hub.files().find((f) => f.name === 'model.safetensors')!.sha256;
    expect(err.message).toContain('model.safetensors');
    expect(err.message).toContain(`expected ${want}`);
    expect(err.context.got).toMatch(/^[0-9a-f]{64}$/);
    expect(err.context.got).not.toBe(want);
    const dir = downloadDirFor(home, hub.repo, 'main');
    expect(fs.readdirSync(dir).filter((f) => f.startsWith('model.safetensors'))).toEqual([]);
    expect(listInstalled(home)).toEqual([]);
    expect(visibleModelDirs()).toEqual([]);
    // Fixed upstream: the next pull succeeds (and re-fetches the bad file only).
    hub.knobs.corrupt.clear();
    hub.requests.length = 0;
    await pullModel(hub.repo, { home, endpoint: hub.endpoint, name: 'synth', retries: 0 });
    expect(hub.requests.filter((q) => q.url.includes('/resolve/')).map((q) => q.url.split('/').pop())).toEqual(['model.safetensors']);
    expect(listInstalled(home).map((m) => m.name)).toEqual(['synth']);
  });

  it('rejects a corrupted regular file by its git blob id', async () => {
    hub.knobs.corrupt.add('tokenizer_config.json');
    const err = await errorOf(downloadModelFiles(hub.repo, { home, endpoint: hub.endpoint, retries: 0 }));
    expect(err.code).toBe('hub.checksum');
    expect(err.message).toContain('tokenizer_config.json');
    expect(err.message).toMatch(/git blob id [0-9a-f]{40}, expected [0-9a-f]{40}/);
    expect(hub.bytesServed()).toBe(0); // failed before the big download started
  });

  it('restarts from zero when the server ignores the Range header', async () => {
    const cut = 3 * 2 ** 20;
    hub.knobs.failAfter = { file: 'model.safetensors', bytes: cut };
    await errorOf(downloadModelFiles(hub.repo, { home, endpoint: hub.endpoint, retries: 0 }));
    hub.knobs.ignoreRange = true;
    hub.requests.length = 0;
    const r = await downloadModelFiles(hub.repo, { home, endpoint: hub.endpoint, retries: 0 });
    expect(hub.requests.find((q) => q.server === 'cdn')!.status).toBe(200);
    expect(fs.statSync(path.join(r.dir, 'model.safetensors')).size).toBe(modelSize());
  });

  it('Ctrl-C during `wx models pull` exits 130 keeping the partial download; the same command resumes it', async () => {
    hub.knobs.bytesPerSecond = 4 * 2 ** 20;
    const env = { ...process.env, WX_HOME: home, HF_ENDPOINT: hub.endpoint, HF_TOKEN: '' };
    const child = spawn(process.execPath, [path.join(repoRoot, 'bin', 'wx.js'), 'models', 'pull', hub.repo, '--name', 'synth', '--no-daemon'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    // Interrupt once the weights are flowing and some of them are on disk.
    await new Promise<void>((resolve, reject) => {
      hub.knobs.onSent = (file, offset) => file === 'model.safetensors' && offset >= 2 * 2 ** 20 && resolve();
      void exited.then((code) => reject(new Error(`wx exited (${code}) before the download was interrupted: ${stderr}`)));
    });
    const partial = path.join(downloadDirFor(home, hub.repo, 'main'), 'model.safetensors.partial');
    await untilFileGrows(partial);
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(stderr).toContain('run the same command to resume');
    const kept = fs.statSync(partial).size;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(modelSize());
    expect(visibleModelDirs()).toEqual([]);

    delete hub.knobs.bytesPerSecond;
    delete hub.knobs.onSent;
    const again = await runWx(['models', 'pull', hub.repo, '--name', 'synth'], { WX_HOME: home, HF_ENDPOINT: hub.endpoint, HF_TOKEN: '' });
    expect(again.code).toBe(0);
    // (The interrupted transfer is logged when the server notices the client left, so only
    // ranged CDN requests are the second run's.)
    const resumed = hub.requests.filter((q) => q.server === 'cdn' && q.range !== undefined);
    expect(resumed).toHaveLength(1);
    const from = Number(/^bytes=(\d+)-$/.exec(resumed[0]!.range!)?.[1]);
    expect(from).toBeGreaterThanOrEqual(kept);
    expect(resumed[0]!.bytes).toBe(modelSize() - from);
    expect(hub.requests.filter((q) => q.server === 'cdn' && q.range === undefined)).toHaveLength(1);
    expect(listInstalled(home).map((m) => m.name)).toEqual(['synth']);
  });

  it('a second pull of the same repo while one runs is refused (hub.busy), not interleaved', async () => {
    hub.knobs.bytesPerSecond = 8 * 2 ** 20;
    const flowing = new Promise<void>((resolve) => {
      hub.knobs.onSent = (file) => file === 'model.safetensors' && resolve();
    });
    const ac = new AbortController();
    const first = downloadModelFiles(hub.repo, { home, endpoint: hub.endpoint, signal: ac.signal });
    const firstDone = first.then(() => 'finished', (e: WxError) => e.code);
    await flowing;
    const err = await errorOf(downloadModelFiles(hub.repo, { home, endpoint: hub.endpoint }));
    expect(err.code).toBe('hub.busy');
    expect(err.message).toContain(`pid ${process.pid}`);
    ac.abort();
    expect(await firstDone).toBe('hub.aborted');
  });

  it('stops on abort and keeps the partial file for a resume', async () => {
    const ac = new AbortController();
    const err = await errorOf(
      downloadModelFiles(hub.repo, { home, endpoint: hub.endpoint, signal: ac.signal, onProgress: (p) => p.bytesFetched > 5 * 2 ** 20 && p.file === 'model.safetensors' && ac.abort() }),
    );
    expect(err.code).toBe('hub.aborted');
    const partial = path.join(downloadDirFor(home, hub.repo, 'main'), 'model.safetensors.partial');
    expect(fs.statSync(partial).size).toBeGreaterThan(0);
    expect(fs.existsSync(path.join(downloadDirFor(home, hub.repo, 'main'), '.lock'))).toBe(false);
  });
});

describe('errors', () => {
  it('404: no such model or revision', async () => {
    const e1 = await errorOf(pullModel('nobody/no-such-model', { home, endpoint: hub.endpoint }));
    expect(e1.code).toBe('hub.not_found');
    expect(e1.message).toContain('no such model or revision');
    expect(e1.message).toContain('nobody/no-such-model@main');
    const e2 = await errorOf(pullModel(hub.repo, { home, endpoint: hub.endpoint, revision: 'v9' }));
    expect(e2.code).toBe('hub.not_found');
    expect(e2.message).toContain('no such revision');
    expect(e2.message).toContain(`${hub.repo}@v9`);
  });

  it('401/403 mention HF_TOKEN and gated repos; with the token the pull works and the token never reaches the CDN', async () => {
    hub.knobs.requireToken = 'hf_secret';
    const e1 = await errorOf(pullModel(hub.repo, { home, endpoint: hub.endpoint }));
    expect(e1.code).toBe('hub.unauthorized');
    expect(e1.message).toContain('HF_TOKEN');
    expect(e1.message).toMatch(/gated/);
    const e2 = await errorOf(pullModel(hub.repo, { home, endpoint: hub.endpoint, token: 'hf_wrong' }));
    expect(e2.code).toBe('hub.unauthorized');
    expect(e2.message).toContain('HF_TOKEN');
    hub.requests.length = 0;
    await downloadModelFiles(hub.repo, { home, endpoint: hub.endpoint, token: 'hf_secret' });
    expect(hub.requests.filter((q) => q.server === 'hub').every((q) => q.authorization === 'Bearer hf_secret')).toBe(true);
    expect(hub.requests.filter((q) => q.server === 'cdn').length).toBeGreaterThan(0);
    expect(hub.requests.filter((q) => q.server === 'cdn').some((q) => q.authorization !== undefined)).toBe(false);
  });

  it('500: a server error, said so', async () => {
    hub.knobs.status = { code: 500 };
    const err = await errorOf(pullModel(hub.repo, { home, endpoint: hub.endpoint, retries: 0 }));
    expect(err.code).toBe('hub.server');
    expect(err.message).toMatch(/failed serving .*500/);
    expect(visibleModelDirs()).toEqual([]);
  });

  it('a checkpoint bigger than the free disk space fails before any download', async () => {
    hub.knobs.listedSize.set('model.safetensors', 2 ** 52); // 4 PiB
    const err = await errorOf(pullModel(hub.repo, { home, endpoint: hub.endpoint }));
    expect(err.code).toBe('hub.disk_full');
    expect(err.message).toMatch(/needs [\d.]+ GB more .* but only [\d.]+ GB is free/);
    expect(hub.requests.filter((q) => q.url.includes('/resolve/'))).toHaveLength(0);
  });

  it('a refused connection is a network error naming the endpoint', async () => {
    const closed = await startHubServer(tinyModelDir());
    const endpoint = closed.endpoint;
    await closed.close();
    const err = await errorOf(pullModel(hub.repo, { home, endpoint }));
    expect(err.code).toBe('hub.network');
    expect(err.message).toContain(endpoint);
  });

  it('the CLI prints the error and exits 1 (401 mentions HF_TOKEN)', async () => {
    hub.knobs.requireToken = 'hf_secret';
    const r = await runWx(['models', 'pull', hub.repo], { WX_HOME: home, HF_ENDPOINT: hub.endpoint, HF_TOKEN: '' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^wx: .*HF_TOKEN/m);
    const unknown = await runWx(['models', 'pull', 'no-such-alias'], { WX_HOME: home, HF_ENDPOINT: hub.endpoint });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('neither a known model');
  });
});

describe('loopback only', () => {
  it('every request of a pull goes to HF_ENDPOINT (or where it redirects) on 127.0.0.1, and the server saw each one', async () => {
    const saved = process.env.HF_ENDPOINT;
    process.env.HF_ENDPOINT = hub.endpoint;
    try {
      await pullModel(hub.repo, { home, name: 'synth' });
    } finally {
      if (saved === undefined) delete process.env.HF_ENDPOINT;
      else process.env.HF_ENDPOINT = saved;
    }
    expect(fetchedUrls.length).toBeGreaterThan(0);
    for (const u of fetchedUrls) expect(new URL(u).hostname).toBe('127.0.0.1');
    expect(hub.requests.length).toBe(fetchedUrls.length);
    expect(hub.requests.map((r) => (r.server === 'hub' ? hub.endpoint : hub.cdnOrigin) + r.url).sort()).toEqual([...fetchedUrls].sort());
  });
});

describe('registry', () => {
  it('default model: set, WX_MODEL override, other config keys kept, cleared on rm', async () => {
    fs.mkdirSync(home, { recursive: true });
    fs.writeFileSync(path.join(home, 'config.json'), JSON.stringify({ threads: 2, formats: ['srt'] }));
    await pullModel(hub.repo, { home, endpoint: hub.endpoint, name: 'synth' });
    await pullModel(hub.repo, { home, endpoint: hub.endpoint, name: 'synth2' });
    expect(getDefaultModel(home, {})).toBeUndefined(); // two installed, none chosen
    await setDefaultModel(home, 'synth2');
    expect(readConfig(home)).toEqual({ threads: 2, formats: ['srt'], model: 'synth2' });
    expect(getDefaultModel(home, {})).toEqual({ model: 'synth2', from: 'config' });
    expect(getDefaultModel(home, { WX_MODEL: 'synth' })).toEqual({ model: 'synth', from: 'WX_MODEL' });
    await expect(setDefaultModel(home, 'missing')).rejects.toMatchObject({ code: 'model.unknown' });
    expect(removeModel(home, 'synth2')).toEqual({ name: 'synth2', wasDefault: true });
    expect(readConfig(home)).toEqual({ threads: 2, formats: ['srt'] });
    expect(getDefaultModel(home, {})).toEqual({ model: 'synth', from: 'only installed model' });
    expect(() => removeModel(home, 'synth2')).toThrow(/no installed model named "synth2"/);
    expect(visibleModelDirs()).toEqual(['synth']);
  });

  it('config.json updates from concurrent processes never lose each other\'s keys', async () => {
    fs.writeFileSync(path.join(home, 'config.json'), JSON.stringify({ threads: 2 }));
    const script = (prefix: string) =>
      `const { updateConfig } = await import(${JSON.stringify(path.join(repoRoot, 'dist', 'daemon', 'models', 'config-file.js'))});` +
      `for (let i = 0; i < 40; i++) updateConfig(${JSON.stringify(home)}, (c) => { c['${prefix}' + i] = i; });`;
    const run = (prefix: string) =>
      new Promise<number | null>((resolve) => spawn(process.execPath, ['--input-type=module', '-e', script(prefix)], { stdio: 'inherit' }).once('exit', resolve));
    expect(await Promise.all([run('a'), run('b'), run('c')])).toEqual([0, 0, 0]);
    const cfg = readConfig(home);
    expect(Object.keys(cfg)).toHaveLength(1 + 3 * 40);
    expect(cfg.threads).toBe(2);
    expect(cfg.b39).toBe(39);
    expect(fs.readdirSync(home).filter((f) => f.startsWith('config.json.'))).toEqual([]);
  });

  it('resolves names, repo ids and Hugging Face directories; a directory is imported once and reused by content', async () => {
    await expect(resolveModel('tiny.en', { home })).rejects.toMatchObject({ code: 'model.not_installed', message: expect.stringContaining('wx models pull tiny.en') });
    const first = await resolveModel(tinyModelDir(), { home });
    expect(first.manifest.source).toBe(`local:${tinyModelDir()}`);
    const again = await resolveModel(tinyModelDir(), { home });
    expect(again.dir).toBe(first.dir);
    expect(again.manifest.importedAt).toBe(first.manifest.importedAt);
    // A copy elsewhere with the same bytes is the same model.
    const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'wx-copy-'));
    try {
      for (const f of fs.readdirSync(tinyModelDir())) fs.copyFileSync(path.join(tinyModelDir(), f), path.join(copy, f));
      const viaCopy = await resolveModel(copy, { home });
      expect(viaCopy.name).toBe(first.name);
      expect(viaCopy.manifest.importedAt).toBe(first.manifest.importedAt);
      // Changed content → a different installed model.
      const cfg = JSON.parse(fs.readFileSync(path.join(copy, 'generation_config.json'), 'utf8'));
      fs.writeFileSync(path.join(copy, 'generation_config.json'), JSON.stringify({ ...cfg, max_length: 440 }));
      const changed = await resolveModel(copy, { home });
      expect(changed.name).not.toBe(first.name);
      expect(listInstalled(home)).toHaveLength(2);
    } finally {
      fs.rmSync(copy, { recursive: true, force: true });
    }
    expect((await resolveModel(first.name, { home })).dir).toBe(first.dir);
    await expect(resolveModel(first.name, { home, precision: 'fp32' })).rejects.toMatchObject({ code: 'model.precision_missing' });
  });
});
