// Model management through a real daemon: `wx models pull` installs via the daemon from a local
// stand-in for the Hub (HF_ENDPOINT → 127.0.0.1, no other network) with progress notifications,
// a cancelled pull keeps its partial download and the next pull resumes it, and
// `wx models default X` switches the daemon's warm model without a restart (a running job
// finishes on the old engine, the next one uses the new model, the old engine is closed).
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WxClient } from '../daemon/ipc/client.js';
import { ErrorCode, type Notifications, type StatusResult } from '../daemon/ipc/protocol.js';
import { RpcRemoteError } from '../daemon/ipc/transport.js';
import { downloadDirFor } from '../daemon/models/hub.js';
import { listDownloads, listInstalled } from '../daemon/models/registry.js';
import { pathsOf, requireBuiltDaemon, spawnDaemonProcess, tempHome, waitReady, wx, type DaemonProcess } from './daemon-helpers.js';
import { startHubServer, type HubServer } from './helpers/hub-server.js';
import { sharedPath, tinyModelDir } from './shared.js';

const fixtures = JSON.parse(fs.readFileSync(sharedPath('fixtures', 'fixtures.json'), 'utf8')) as Record<string, { text: string }>;
const short = sharedPath('fixtures', 'fx-short.wav');
const devLong = sharedPath('fixtures', 'speech', 'dev-long.wav');
let long: string;

/** dev-long.wav repeated `times` (a job that surely outlasts loading another model). */
function repeatedWav(src: string, times: number, dst: string): string {
  const wav = fs.readFileSync(src);
  let at = 12;
  while (at + 8 <= wav.length && wav.toString('latin1', at, at + 4) !== 'data') at += 8 + wav.readUInt32LE(at + 4);
  if (at + 8 > wav.length) throw new Error(`${src}: no data chunk`);
  const header = Buffer.from(wav.subarray(0, at + 8));
  const data = wav.subarray(at + 8, at + 8 + wav.readUInt32LE(at + 4));
  header.writeUInt32LE(data.length * times, at + 4);
  header.writeUInt32LE(header.length - 8 + data.length * times, 4);
  fs.writeFileSync(dst, Buffer.concat([header, ...Array.from({ length: times }, () => data)]));
  return dst;
}

let hub: HubServer;
let home: string;
let daemon: DaemonProcess;
let client: WxClient;
let env: NodeJS.ProcessEnv;

const modelSize = () => fs.statSync(path.join(tinyModelDir(), 'model.safetensors')).size;

function wordsFound(truth: string, output: string): string[] {
  const out = new Set(output.toLowerCase().match(/[a-z]{4,}/g) ?? []);
  return (truth.toLowerCase().match(/[a-z]{4,}/g) ?? []).filter((w) => out.has(w));
}

async function status(): Promise<StatusResult> {
  const r = await wx(home, ['status', '--json'], env);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as StatusResult;
}

function daemonLog(): string {
  return fs.readFileSync(path.join(pathsOf(home).logs, 'daemon.log'), 'utf8');
}

beforeAll(async () => {
  requireBuiltDaemon();
  hub = await startHubServer(tinyModelDir());
  home = tempHome();
  long = repeatedWav(devLong, 3, path.join(home, 'long-x3.wav'));
  // The CLI and the daemon both point at the local hub; WX_MODEL unset so config decides.
  env = { HF_ENDPOINT: hub.endpoint, HF_TOKEN: '', WX_MODEL: '' };
  daemon = spawnDaemonProcess(home, env);
  client = await waitReady(home, daemon);
}, 60_000);

afterAll(async () => {
  await client?.close().catch(() => {});
  if (daemon && daemon.child.exitCode === null) {
    daemon.child.kill('SIGTERM');
    await daemon.exited;
  }
  await hub?.close();
  if (home) fs.rmSync(home, { recursive: true, force: true });
});

describe('models through the daemon', () => {
  it('wx models pull goes through the running daemon (progress from its notifications); the model then transcribes', async () => {
    const before = daemon.child.pid;
    const pull = await wx(home, ['models', 'pull', hub.repo, '--name', 'synth-a'], env);
    expect(pull.code, pull.stderr).toBe(0);
    expect(pull.stdout).toContain(`installed synth-a from ${hub.repo}@${hub.commit}`);
    expect(pull.stderr).not.toContain('started the daemon');
    // Not a TTY: progress lines, drawn from the daemon's models.progress notifications.
    expect(pull.stderr).toMatch(/download 100% [\d.]+ MB\/[\d.]+ MB [\d.]+ [KMG]?B\/s ETA/);
    expect(pull.stderr).toMatch(/convert \d+% /);
    // The daemon did it (its log), and the download area is gone after the install.
    expect(daemonLog()).toMatch(/model pulled.*synth-a/);
    expect(listInstalled(home).map((m) => m.name)).toEqual(['synth-a']);
    expect(listDownloads(home)).toEqual([]);

    const ls = await wx(home, ['models', 'ls', '--json'], env);
    expect(ls.code, ls.stderr).toBe(0);
    const listed = JSON.parse(ls.stdout) as { installed: { name: string; source: string; default: boolean; sizeBytes: number }[]; aliases: Record<string, string> };
    expect(listed.installed).toEqual([expect.objectContaining({ name: 'synth-a', source: hub.repo, default: true })]);
    expect(listed.installed[0]!.sizeBytes).toBeGreaterThan(0);
    expect(listed.aliases.tiny).toBe('openai/whisper-tiny');

    const t = await wx(home, ['transcribe', short, '--model', 'synth-a'], env);
    expect(t.code, t.stderr).toBe(0);
    expect(wordsFound(fixtures['fx-short']!.text, t.stdout).length).toBeGreaterThan(0);
    // The only installed model became the daemon's warm default, in the same process.
    const s = await status();
    expect(s.pid).toBe(before);
    expect(s.model?.name).toBe('synth-a');
  }, 180_000);

  it('a cancelled pull keeps the partial download; the next pull resumes it and fetches only the rest', async () => {
    hub.knobs.bytesPerSecond = 4 * 2 ** 20;
    const abort = new AbortController();
    const progress: Notifications['models.progress'][] = [];
    const off = client.on('models.progress', (p) => {
      progress.push(p);
      if (p.phase === 'download' && p.file === 'model.safetensors' && p.bytesDone > 0 && p.bytesFetched >= 2 * 2 ** 20) abort.abort();
    });
    const err = await client.call('models.pull', { source: hub.repo, name: 'synth-b' }, abort.signal).then(
      () => undefined,
      (e: unknown) => e,
    );
    off();
    expect(err).toBeInstanceOf(RpcRemoteError);
    expect((err as RpcRemoteError).rpcCode).toBe(ErrorCode.cancelled);
    expect((err as RpcRemoteError).message).toContain('kept');
    const downloads = progress.filter((p) => p.phase === 'download');
    expect(downloads.length).toBeGreaterThan(0);
    const last = downloads.at(-1)!;
    expect(last.phase === 'download' && last.bytesTotal).toBeGreaterThan(modelSize());
    expect(progress.some((p) => p.phase === 'import')).toBe(false);

    const partial = path.join(downloadDirFor(home, hub.repo, 'main'), 'model.safetensors.partial');
    const kept = fs.statSync(partial).size;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(modelSize());
    expect(listInstalled(home).map((m) => m.name)).toEqual(['synth-a']);
    expect(listDownloads(home)).toHaveLength(1);

    delete hub.knobs.bytesPerSecond;
    hub.reset();
    const r = await client.call('models.pull', { source: hub.repo, name: 'synth-b' });
    expect(r).toMatchObject({ name: 'synth-b', repo: hub.repo, revision: hub.commit, alreadyInstalled: false });
    const ranged = hub.requests.filter((q) => q.server === 'cdn' && q.range !== undefined);
    expect(ranged).toHaveLength(1);
    expect(ranged[0]!.range).toBe(`bytes=${kept}-`);
    expect(ranged[0]!.status).toBe(206);
    expect(r.bytesFetched).toBe(modelSize() - kept);
    expect(listInstalled(home).map((m) => m.name)).toEqual(['synth-a', 'synth-b']);
    expect(listDownloads(home)).toEqual([]);
  }, 180_000);

  it('wx models default switches the warm model without a restart: a running job finishes on the old engine, the next uses the new one', async () => {
    const pid = (await status()).pid;
    // Make synth-a the configured default (it is warm already).
    const setA = await wx(home, ['models', 'default', 'synth-a'], env);
    expect(setA.code, setA.stderr).toBe(0);
    expect(setA.stdout).toMatch(/default model: synth-a \(loaded in the daemon in \d+ ms\)/);

    // A long transcription running on synth-a while the default changes.
    let firstProgress!: () => void;
    const running = new Promise<void>((r) => (firstProgress = r));
    const off = client.on('progress', () => firstProgress());
    const longJob = client.call('transcribe', { files: [long], wait: true });
    await running;
    off();
    const setB = await client.call('models.default', { name: 'synth-b' });
    expect(setB).toMatchObject({ name: 'synth-b', from: 'config', precision: 'int8' });
    expect(setB.load_ms).toBeGreaterThan(0);
    // The switch happened while the job ran (else this test would show nothing about it).
    expect((await client.call('jobs.list', { state: 'running' })).map((j) => j.path)).toEqual([long]);
    // The reply comes once synth-b is loaded: status shows it at once, same daemon.
    const s = await status();
    expect(s.pid).toBe(pid);
    expect(s.model?.name).toBe('synth-b');
    expect(JSON.parse(fs.readFileSync(pathsOf(home).config, 'utf8')).model).toBe('synth-b');
    const get = await wx(home, ['models', 'default'], env);
    expect(get.stdout).toContain('synth-b (from config)');

    const done = await longJob;
    expect(done.jobs[0]!.state).toBe('done');
    expect(done.transcripts[0]!.model).toBe('synth-a');

    const next = await client.call('transcribe', { files: [short], wait: true });
    expect(next.transcripts[0]!.model).toBe('synth-b');
    expect(wordsFound(fixtures['fx-short']!.text, next.transcripts[0]!.transcript.segments.map((x) => x.text).join(' ')).length).toBeGreaterThan(0);

    // The old engine is closed once its job finished (logged by the daemon).
    const deadline = Date.now() + 15_000;
    while (!/engine closed.*synth-a/.test(daemonLog()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(daemonLog()).toMatch(/engine closed.*synth-a.*default model changed/);
    expect((await status()).pid).toBe(pid);
  }, 240_000);

  it('Ctrl-C on `wx models pull` cancels the daemon\'s pull (exit 130, partial kept); the same command resumes', async () => {
    const { spawn } = await import('node:child_process');
    hub.reset();
    hub.knobs.bytesPerSecond = 4 * 2 ** 20;
    const child = spawn(process.execPath, [path.join(process.cwd(), 'bin', 'wx.js'), 'models', 'pull', hub.repo, '--name', 'synth-c'], {
      env: { ...process.env, WX_HOME: home, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await new Promise<void>((resolve, reject) => {
      hub.knobs.onSent = (file, offset) => file === 'model.safetensors' && offset >= 2 * 2 ** 20 && resolve();
      void exited.then((code) => reject(new Error(`wx exited (${code}) before the download was interrupted: ${stderr}`)));
    });
    child.kill('SIGINT');
    expect(await exited).toBe(130);
    expect(stderr).toContain('run the same command to resume');
    expect(daemonLog()).toMatch(/model pull cancelled/);
    const kept = fs.statSync(path.join(downloadDirFor(home, hub.repo, 'main'), 'model.safetensors.partial')).size;
    expect(kept).toBeGreaterThan(0);
    expect(listInstalled(home).map((m) => m.name)).not.toContain('synth-c');

    delete hub.knobs.bytesPerSecond;
    delete hub.knobs.onSent;
    hub.reset();
    const again = await wx(home, ['models', 'pull', hub.repo, '--name', 'synth-c'], env);
    expect(again.code, again.stderr).toBe(0);
    const ranged = hub.requests.filter((q) => q.server === 'cdn' && q.range !== undefined);
    expect(ranged.map((q) => q.range)).toEqual([`bytes=${kept}-`]);
    expect(listInstalled(home).map((m) => m.name)).toContain('synth-c');
  }, 180_000);

  it('a name that is not installed is a clear error and the warm model stays', async () => {
    const r = await wx(home, ['models', 'default', 'nope'], env);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('no model "nope"');
    expect((await status()).model?.name).toBe('synth-b');
  }, 60_000);
});
