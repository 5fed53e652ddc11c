// Helpers for tests that run a real daemon process on a real socket in a temporary WX_HOME.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { WxClient } from '../daemon/ipc/client.js';
import type { StatusResult } from '../daemon/ipc/protocol.js';
import { WxError } from '../daemon/errors.js';
import { wxPaths } from '../daemon/paths.js';
import { repoRoot } from './shared.js';

export const daemonMain = path.join(repoRoot, 'dist', 'daemon', 'main.js');
export const wxBin = path.join(repoRoot, 'bin', 'wx.js');

/** Fails loudly when dist/ is missing or older than the sources it was built from. */
export function requireBuiltDaemon(): void {
  const built = fs.statSync(daemonMain, { throwIfNoEntry: false });
  if (!built) throw new Error(`${daemonMain} is missing: run \`npm run build:ts\` (npm test does it)`);
  for (const src of ['daemon/daemon.ts', 'daemon/ipc/server.ts', 'daemon/ipc/transport.ts', 'cli/commands/daemon.ts']) {
    const s = fs.statSync(path.join(repoRoot, src));
    const d = fs.statSync(path.join(repoRoot, 'dist', src.replace(/\.ts$/, '.js')), { throwIfNoEntry: false });
    if (!d || d.mtimeMs < s.mtimeMs) throw new Error(`dist/ is older than ${src}: run \`npm run build:ts\``);
  }
}

export function tempHome(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'wx-daemon-test-'));
}

export interface DaemonProcess {
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output: () => string;
}

/** Starts `node dist/daemon/main.js` directly (not detached) with WX_HOME=home. */
export function spawnDaemonProcess(home: string, env: NodeJS.ProcessEnv = {}): DaemonProcess {
  const child = spawn(process.execPath, [daemonMain], { env: { ...process.env, WX_HOME: home, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  return { child, exited, output: () => out };
}

/** Waits until the daemon at `home` answers `initialize` (readiness), or `proc` exits. */
export async function waitReady(home: string, proc?: DaemonProcess, timeoutMs = 30_000): Promise<WxClient> {
  const deadline = Date.now() + timeoutMs;
  let exited = false;
  void proc?.exited.then(() => (exited = true));
  for (;;) {
    try {
      return await WxClient.connect({ home, autostart: false });
    } catch (err) {
      if (!(err instanceof WxError && (err.code === 'daemon.not_running' || err.code === 'ipc.closed'))) throw err;
    }
    if (exited) throw new Error(`the daemon exited before it was ready:\n${proc?.output()}`);
    if (Date.now() > deadline) throw new Error(`the daemon was not ready within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `wx …` as a separate process. */
export function wx(home: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [wxBin, ...args], { env: { ...process.env, WX_HOME: home, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A raw line-oriented connection to the socket, for speaking (and mis-speaking) the protocol. */
export class RawConnection {
  private lines: string[] = [];
  private waiters: ((line: string | null) => void)[] = [];
  private buf = '';
  private ended = false;
  readonly closed: Promise<void>;
  error: Error | null = null;

  private constructor(readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      this.buf += d;
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) !== -1) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        const w = this.waiters.shift();
        if (w) w(line);
        else this.lines.push(line);
      }
    });
    socket.on('error', (e) => (this.error = e));
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        this.ended = true;
        for (const w of this.waiters.splice(0)) w(null);
        resolve();
      }),
    );
  }

  static open(socketPath: string): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const s = net.createConnection(socketPath);
      s.once('connect', () => resolve(new RawConnection(s)));
      s.once('error', reject);
    });
  }

  send(msg: unknown): void {
    this.socket.write((typeof msg === 'string' ? msg : JSON.stringify(msg)) + '\n');
  }

  /** The next message from the daemon (parsed), or null if the connection closed first. */
  async next(): Promise<Record<string, any> | null> {
    const line = this.lines.shift() ?? (this.ended ? null : await new Promise<string | null>((r) => this.waiters.push(r)));
    return line === null ? null : JSON.parse(line);
  }

  async initialize(protocolVersion: number, id: number | string = 'init'): Promise<Record<string, any> | null> {
    this.send({ jsonrpc: '2.0', id, method: 'initialize', params: { protocolVersion, client: { name: 'test', version: '0' } } });
    return this.next();
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export function pathsOf(home: string) {
  return wxPaths(home);
}

export function modeOf(p: string): number {
  return fs.statSync(p).mode & 0o777;
}

/** The pid in `home`'s daemon lock file (throws when there is none). */
export function lockedDaemonPid(home: string): number {
  return JSON.parse(fs.readFileSync(pathsOf(home).lock, 'utf8')).pid as number;
}

/** Test clean-up: SIGKILL the daemon named in `home`'s lock file, if one runs, then remove `home`. */
export function killDaemonAndRemove(home: string): void {
  try {
    const pid = lockedDaemonPid(home);
    if (alive(pid)) process.kill(pid, 'SIGKILL');
  } catch {
    // no lock: nothing running
  }
  fs.rmSync(home, { recursive: true, force: true });
}

/** Whether a process exists (signal 0). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function nodeUsableBy(uid: number): boolean {
  const r = spawnSync(process.execPath, ['-e', '0'], { uid, gid: uid });
  return r.status === 0;
}

/** Asks the daemon for its status until `done` says so (the protocol is the only signal). */
export async function untilStatus(client: WxClient, done: (s: StatusResult) => boolean, what: string, timeoutMs = 120_000): Promise<StatusResult> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = await client.call('status', undefined);
    if (done(s)) return s;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(s.queue)} ${JSON.stringify(s.watch)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
