// The daemon as a real process on a real Unix socket, in a temporary WX_HOME per test.
import fs from 'node:fs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, PROTOCOL_VERSION } from '../daemon/ipc/protocol.js';
import { WxError } from '../daemon/errors.js';
import { WxClient } from '../daemon/ipc/client.js';
import {
  RawConnection,
  alive,
  killDaemonAndRemove,
  modeOf,
  pathsOf,
  requireBuiltDaemon,
  spawnDaemonProcess,
  tempHome,
  waitReady,
  wx,
  type DaemonProcess,
} from './daemon-helpers.js';

const running: DaemonProcess[] = [];
const homes: string[] = [];

function home(): string {
  const h = tempHome();
  homes.push(h);
  return h;
}

function start(h: string, env: NodeJS.ProcessEnv = {}): DaemonProcess {
  const p = spawnDaemonProcess(h, env);
  running.push(p);
  return p;
}

beforeAll(() => requireBuiltDaemon());

afterEach(async () => {
  for (const p of running.splice(0)) {
    if (p.child.exitCode === null && p.child.signalCode === null) {
      p.child.kill('SIGKILL');
      await p.exited;
    }
  }
  // Daemons started by the CLI in the background: stop them through their lock file.
  for (const h of homes.splice(0)) {
    killDaemonAndRemove(h);
  }
});

describe('daemon lifecycle through the CLI', () => {
  it('starts in the background, reports status, detects itself on a second start, stops', async () => {
    const h = home();
    const paths = pathsOf(h);
    const notRunning = await wx(h, ['daemon', 'status']);
    expect(notRunning.code).toBe(3);
    expect(notRunning.stdout).toContain('not running');

    const started = await wx(h, ['daemon', 'start']);
    expect(started.code, started.stderr).toBe(0);
    const pid = Number(/pid (\d+)/.exec(started.stdout)?.[1]);
    expect(alive(pid)).toBe(true);

    const status = await wx(h, ['status', '--json']);
    expect(status.code, status.stderr).toBe(0);
    const s = JSON.parse(status.stdout);
    expect(s.pid).toBe(pid);
    expect(s.protocol_version).toBe(PROTOCOL_VERSION);
    expect(s.uptime_s).toBeGreaterThanOrEqual(0);
    expect(s.rss_mb).toBeGreaterThan(10);
    expect(s.queue).toMatchObject({ queued: 0, running: 0 });
    expect(Array.isArray(s.watch)).toBe(true);

    const again = await wx(h, ['daemon', 'start']);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`already running (pid ${pid})`);

    const stopped = await wx(h, ['daemon', 'stop']);
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(stopped.stdout).toContain(`stopped (pid ${pid})`);
    expect(alive(pid)).toBe(false);
    expect(fs.existsSync(paths.socket)).toBe(false);
    expect(fs.existsSync(paths.lock)).toBe(false);

    const log = fs.readFileSync(`${paths.logs}/daemon.log`, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(log.map((l) => l.msg)).toEqual(expect.arrayContaining(['daemon listening', 'daemon shutting down', 'daemon stopped']));
  });

  it('a command that needs the daemon starts it; restart gives a new process', async () => {
    const h = home();
    const first = await wx(h, ['status', '--json']);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stderr).toContain('started the daemon');
    const pid1 = JSON.parse(first.stdout).pid;
    const restarted = await wx(h, ['daemon', 'restart']);
    expect(restarted.code, restarted.stderr).toBe(0);
    const pid2 = JSON.parse((await wx(h, ['status', '--json'])).stdout).pid;
    expect(pid2).not.toBe(pid1);
    expect(alive(pid1)).toBe(false);
  });

  it('recovers a stale lock and socket left by kill -9', async () => {
    const h = home();
    const paths = pathsOf(h);
    const p = start(h);
    (await waitReady(h, p)).close();
    const oldPid = p.child.pid!;
    p.child.kill('SIGKILL');
    await p.exited;
    expect(fs.existsSync(paths.socket)).toBe(true);
    expect(fs.existsSync(paths.lock)).toBe(true);

    const status = await wx(h, ['status', '--json']);
    expect(status.code, status.stderr).toBe(0);
    const newPid = JSON.parse(status.stdout).pid;
    expect(newPid).not.toBe(oldPid);
    expect(JSON.parse(fs.readFileSync(paths.lock, 'utf8')).pid).toBe(newPid);
    const log = fs.readFileSync(`${paths.logs}/daemon.log`, 'utf8');
    expect(log).toContain('replacing a stale daemon lock');
    expect(log).toContain(`pid ${oldPid} is not running`);
  });

  it('two daemons started at once: one serves, the other sees it and exits 0', async () => {
    const h = home();
    const a = start(h);
    const b = start(h);
    const client = await waitReady(h);
    const servingPid = client.server.pid;
    await client.close();
    expect([a.child.pid, b.child.pid]).toContain(servingPid);
    const loser = servingPid === a.child.pid ? b : a;
    const exit = await loser.exited;
    expect(exit.code).toBe(0);
    expect(loser.output()).toContain('already running');
    // The winner is unaffected.
    const again = await waitReady(h);
    expect(again.server.pid).toBe(servingPid);
    await again.close();
  });

  it('SIGTERM shuts down cleanly: socket and lock removed, exit 0', async () => {
    const h = home();
    const p = start(h);
    const client = await waitReady(h, p);
    const clientClosed = client.connection.closed;
    p.child.kill('SIGTERM');
    expect((await p.exited).code).toBe(0);
    await clientClosed;
    expect(fs.existsSync(pathsOf(h).socket)).toBe(false);
    expect(fs.existsSync(pathsOf(h).lock)).toBe(false);
  });

  it('wx daemon start --foreground serves until SIGTERM, logging to stderr', async () => {
    const { spawn } = await import('node:child_process');
    const { wxBin } = await import('./daemon-helpers.js');
    const h = home();
    const cli = spawn(process.execPath, [wxBin, 'daemon', 'start', '--foreground'], { env: { ...process.env, WX_HOME: h }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    cli.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((r) => cli.once('exit', (c) => r(c)));
    const client = await waitReady(h);
    const daemonPid = client.server.pid;
    expect(daemonPid).not.toBe(cli.pid);
    await client.close();
    const second = await wx(h, ['daemon', 'start', '--foreground']);
    expect(second.code).toBe(3);
    expect(second.stderr).toContain(`already running (pid ${daemonPid})`);
    cli.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(alive(daemonPid)).toBe(false);
    expect(stderr).toContain('"msg":"daemon listening"');
    expect(stderr).toContain('"msg":"daemon stopped"');
  });

  it('a default model that cannot load is reported in status, and jobs fail with the reason', async () => {
    const { sharedPath } = await import('./shared.js');
    const h = home();
    const missing = `${h}/no-such-model`;
    const p = start(h, { WX_MODEL: missing });
    const client = await waitReady(h, p);
    let s = await client.call('status', undefined);
    while (s.model_loading !== null) {
      await new Promise((r) => setTimeout(r, 20));
      s = await client.call('status', undefined);
    }
    expect(s.model).toBeNull();
    expect(s.last_error?.message).toContain(missing);
    const r = await client.call('transcribe', { files: [sharedPath('fixtures', 'fx-short.wav')], wait: true });
    expect(r.jobs[0]).toMatchObject({ state: 'failed', attempts: 1 });
    expect(r.jobs[0]!.error).toContain(missing);
    expect(r.transcripts).toEqual([null]);
    const human = await wx(h, ['status']);
    expect(human.stdout).toContain('model      none loaded');
    expect(human.stdout).toContain('last error');
    await client.close();
  });

  it('a bad config.json stops the start with a clear message', async () => {
    const h = home();
    fs.writeFileSync(pathsOf(h).config, JSON.stringify({ precision: 'fp16' }));
    const r = await wx(h, ['daemon', 'start']);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('"precision" must be one of int8, fp32');
    fs.writeFileSync(pathsOf(h).config, JSON.stringify({ modle: 'tiny' }));
    const p = start(h);
    expect((await p.exited).code).toBe(78);
    expect(p.output()).toContain('unknown key "modle"');
  });
});

describe('socket security and robustness', () => {
  it('creates the run directory 0700 and the socket 0600 even with a permissive umask', async () => {
    const h = home();
    const old = process.umask(0);
    let p: DaemonProcess;
    try {
      p = start(h);
    } finally {
      process.umask(old);
    }
    (await waitReady(h, p)).close();
    const paths = pathsOf(h);
    expect(modeOf(paths.runDir)).toBe(0o700);
    expect(modeOf(paths.socket)).toBe(0o600);
    expect(fs.statSync(paths.socket).isSocket()).toBe(true);
  });

  it('garbage, invalid JSON-RPC and a 100 MB line get errors; only that connection suffers', async () => {
    const h = home();
    const p = start(h);
    const good = await waitReady(h, p);
    const socket = pathsOf(h).socket;

    // Not JSON: parse error, then that connection is closed.
    const garbage = await RawConnection.open(socket);
    garbage.send('{this is not json');
    const parseErr = await garbage.next();
    expect(parseErr?.error.code).toBe(ErrorCode.parseError);
    expect(parseErr?.id).toBeNull();
    await garbage.closed;

    // JSON but not JSON-RPC 2.0: invalidRequest, connection stays usable.
    const sloppy = await RawConnection.open(socket);
    sloppy.send({ id: 1, method: 'status' });
    expect((await sloppy.next())?.error.code).toBe(ErrorCode.invalidRequest);
    sloppy.send([{ jsonrpc: '2.0', id: 2, method: 'status' }]);
    expect((await sloppy.next())?.error.code).toBe(ErrorCode.invalidRequest);
    sloppy.send({ jsonrpc: '2.0', id: 3, method: 'status' });
    expect((await sloppy.next())?.error.code).toBe(ErrorCode.notInitialized);
    expect((await sloppy.initialize(PROTOCOL_VERSION))?.result.pid).toBe(p.child.pid);
    sloppy.send({ jsonrpc: '2.0', id: 4, method: 'no.such.method' });
    expect((await sloppy.next())?.error.code).toBe(ErrorCode.methodNotFound);
    sloppy.send({ jsonrpc: '2.0', id: 5, method: 'status' });
    expect((await sloppy.next())?.result.pid).toBe(p.child.pid);

    // 100 MB without a newline: messageTooLarge, connection closed, daemon fine.
    const huge = await RawConnection.open(socket);
    const chunk = Buffer.alloc(1024 * 1024, 0x61);
    let sent = 0;
    const writeAll = (async () => {
      for (let i = 0; i < 100 && !huge.socket.destroyed; i++) {
        if (!huge.socket.write(chunk)) await new Promise((r) => { huge.socket.once('drain', r); huge.socket.once('close', r); });
        sent++;
      }
    })();
    const tooLarge = await huge.next();
    expect(tooLarge?.error.code).toBe(ErrorCode.messageTooLarge);
    expect(tooLarge?.error.message).toContain('too large');
    await huge.closed;
    await writeAll;
    expect(sent).toBeLessThan(100 + 1);

    // The first client and a brand-new one are still served, and memory did not balloon.
    const status = await good.call('status', undefined);
    expect(status.pid).toBe(p.child.pid);
    expect(status.rss_mb).toBeLessThan(200);
    const fresh = await WxClient.connect({ home: h });
    expect((await fresh.call('status', undefined)).pid).toBe(p.child.pid);
    await fresh.close();
    // The still-open sloppy connection also keeps working.
    sloppy.send({ jsonrpc: '2.0', id: 6, method: 'status' });
    expect((await sloppy.next())?.result.pid).toBe(p.child.pid);
    sloppy.destroy();
    await good.close();
  });

  it('a client of another protocol version gets a clear mismatch error with a restart hint', async () => {
    const h = home();
    const p = start(h);
    (await waitReady(h, p)).close();
    const old = await RawConnection.open(pathsOf(h).socket);
    const reply = await old.initialize(PROTOCOL_VERSION + 1);
    expect(reply?.error.code).toBe(ErrorCode.protocolMismatch);
    expect(reply?.error.message).toContain(`speaks protocol ${PROTOCOL_VERSION}, this client speaks ${PROTOCOL_VERSION + 1}`);
    expect(reply?.error.message).toContain('wx daemon restart');
    expect(reply?.error.data.context.daemonProtocol).toBe(PROTOCOL_VERSION);
    old.destroy();
  });

  it('without autostart, a missing daemon is a clear error', async () => {
    const h = home();
    const err = await WxClient.connect({ home: h }).catch((e) => e);
    expect(err).toBeInstanceOf(WxError);
    expect(err.code).toBe('daemon.not_running');
    expect(err.message).toContain('wx daemon start');
  });
});
