// The transport and server in-process, over a real Unix socket: cancellation, notifications,
// peer-uid refusal, back-pressure. (test/daemon.test.ts covers the same code in a real daemon.)
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { WxClient } from '../daemon/ipc/client.js';
import { ErrorCode, PROTOCOL_VERSION } from '../daemon/ipc/protocol.js';
import { RpcServer } from '../daemon/ipc/server.js';
import { RpcConnection, RpcRemoteError } from '../daemon/ipc/transport.js';
import { wxPaths } from '../daemon/paths.js';
import { RawConnection, nodeUsableBy, tempHome } from './daemon-helpers.js';

const servers: RpcServer[] = [];
const homes: string[] = [];

async function serve(setup: (s: RpcServer) => void, opts: { allowedUid?: number; maxMessageBytes?: number; protocolVersion?: number } = {}): Promise<{ server: RpcServer; home: string; socket: string }> {
  const home = tempHome();
  homes.push(home);
  const socket = wxPaths(home).socket;
  const server = new RpcServer({ socketPath: socket, daemonVersion: 'test', ...opts });
  setup(server);
  await server.listen();
  servers.push(server);
  return { server, home, socket };
}

afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
  for (const h of homes.splice(0)) fs.rmSync(h, { recursive: true, force: true });
});

describe('ipc', () => {
  it('$/cancelRequest aborts the handler and the request fails with `cancelled`', async () => {
    let handlerSawAbort!: () => void;
    const aborted = new Promise<void>((r) => (handlerSawAbort = r));
    let entered!: () => void;
    const running = new Promise<void>((r) => (entered = r));
    const { home } = await serve((s) =>
      s.handle('transcribe', (_p, ctx) => {
        entered();
        return new Promise((_resolve, reject) => {
          ctx.signal.addEventListener('abort', () => {
            handlerSawAbort();
            const e = new Error('aborted');
            e.name = 'AbortError';
            reject(e);
          });
        });
      }),
    );
    const client = await WxClient.connect({ home });
    const controller = new AbortController();
    const call = client.call('transcribe', { files: ['/x.wav'], wait: true }, controller.signal);
    await running;
    controller.abort();
    const err = await call.catch((e) => e);
    await aborted;
    expect(err).toBeInstanceOf(RpcRemoteError);
    expect(err.rpcCode).toBe(ErrorCode.cancelled);
    // The connection is still usable afterwards.
    const again = client.call('transcribe', { files: ['/y.wav'], wait: true }, AbortSignal.abort());
    expect((await again.catch((e) => e)).rpcCode).toBe(ErrorCode.cancelled);
    await client.close();
  });

  it('a closing client aborts its in-flight requests on the server', async () => {
    let aborted!: () => void;
    const sawAbort = new Promise<void>((r) => (aborted = r));
    let entered!: () => void;
    const running = new Promise<void>((r) => (entered = r));
    const { home } = await serve((s) =>
      s.handle('transcribe', (_p, ctx) => {
        entered();
        return new Promise(() => ctx.signal.addEventListener('abort', () => aborted()));
      }),
    );
    const client = await WxClient.connect({ home });
    void client.call('transcribe', { files: ['/x.wav'], wait: true }).catch(() => {});
    await running;
    client.connection.destroy();
    await sawAbort;
  });

  it('progress notifications reach the client that asked, tied to its request id', async () => {
    const { home } = await serve((s) =>
      s.handle('transcribe', (p, ctx) => {
        for (let i = 1; i <= 3; i++) ctx.connection.notify('progress', { requestId: ctx.id, file: p.files[0]!, processedS: i, durationS: 3 });
        return { jobs: [], transcripts: [] };
      }),
    );
    const client = await WxClient.connect({ home });
    const seen: number[] = [];
    const off = client.on('progress', (n) => seen.push(n.processedS));
    await client.call('transcribe', { files: ['/a.wav'], wait: true });
    expect(seen).toEqual([1, 2, 3]);
    off();
    await client.close();
  });

  it('handler errors carry the WxError code and context to the client', async () => {
    const { WxError } = await import('../daemon/errors.js');
    const { RpcMethodError } = await import('../daemon/ipc/transport.js');
    const { home } = await serve((s) => {
      s.handle('jobs.retry', (p) => {
        throw RpcMethodError.of('notFound', 'job.not_found', `no job ${p.id}`, { job: p.id });
      });
      s.handle('search', () => {
        throw new WxError('search.syntax', 'bad query: unbalanced quote', { query: '"a' });
      });
    });
    const client = await WxClient.connect({ home });
    const e1 = await client.call('jobs.retry', { id: 42 }).catch((e) => e);
    expect(e1.rpcCode).toBe(ErrorCode.notFound);
    expect(e1.code).toBe('job.not_found');
    expect(e1.context).toEqual({ job: 42 });
    const e2 = await client.call('search', { query: '"a' }).catch((e) => e);
    expect(e2.code).toBe('search.syntax');
    expect(e2.message).toContain('unbalanced quote');
    await client.close();
  });

  it('refuses a peer whose uid is not the allowed one (peer credentials from the native addon)', async () => {
    const { socket } = await serve(() => {}, { allowedUid: (process.getuid?.() ?? 0) + 4242 });
    const raw = await RawConnection.open(socket);
    const reply = await raw.next();
    expect(reply?.error.code).toBe(ErrorCode.unauthorized);
    expect(reply?.error.message).toContain(`you are uid ${process.getuid?.()}`);
    await raw.closed;
  });

  it('a process of another user is refused even when the socket file is world-writable', async () => {
    // Needs root to run a client as another uid; this CI runs as root.
    expect(process.getuid?.()).toBe(0);
    const nobody = 65534;
    expect(nodeUsableBy(nobody)).toBe(true);
    const { socket, home } = await serve(() => {});
    // Undo the file-system protection so that only the peer check stands in the way.
    fs.chmodSync(home, 0o755);
    fs.chmodSync(path.dirname(socket), 0o777);
    fs.chmodSync(socket, 0o777);
    const script = `
      const s = require('node:net').createConnection(${JSON.stringify(socket)});
      let out = '';
      s.on('data', (d) => (out += d));
      s.on('connect', () => s.write(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: ${PROTOCOL_VERSION}, client: { name: 'x', version: '0' } } }) + '\\n'));
      s.on('close', () => { process.stdout.write(out); });
      s.on('error', () => {}); // EPIPE when its initialize races the refusal
    `;
    const out = await new Promise<string>((resolve) => {
      const child = spawn(process.execPath, ['-e', script], { uid: nobody, gid: nobody, stdio: ['ignore', 'pipe', 'inherit'] });
      let o = '';
      child.stdout.on('data', (d) => (o += d));
      child.once('exit', () => resolve(o));
    });
    const first = JSON.parse(out.split('\n')[0]!);
    expect(first.error.code).toBe(ErrorCode.unauthorized);
    expect(first.error.message).toContain(`you are uid ${nobody}`);
    expect(out).not.toContain('"result"');
  });

  it('drops a peer that stops reading instead of buffering without bound', async () => {
    const home = tempHome();
    homes.push(home);
    const socketPath = path.join(home, 's.sock');
    let serverConn!: RpcConnection;
    let connected!: () => void;
    const ready = new Promise<void>((r) => (connected = r));
    const faults: string[] = [];
    const server = net.createServer((s) => {
      serverConn = new RpcConnection(s, { maxBufferedBytes: 1024 * 1024, onFault: (k) => faults.push(k) });
      connected();
    });
    await new Promise<void>((r) => server.listen(socketPath, r));
    const client = net.createConnection(socketPath);
    client.pause();
    await ready;
    const text = 'x'.repeat(64 * 1024);
    let sent = 0;
    while (serverConn.notify('log', { level: 'info', message: text })) sent++;
    expect(faults).toContain('stuck');
    expect(sent).toBeGreaterThan(1);
    await serverConn.closed;
    // Droppable notifications are skipped, not queued, while the peer is not draining.
    client.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  });
  it('WxClient.connect to a daemon of another protocol version fails with a restart hint', async () => {
    const { WxError } = await import('../daemon/errors.js');
    const { home } = await serve(() => {}, { protocolVersion: PROTOCOL_VERSION + 1 });
    const err = await WxClient.connect({ home }).catch((e) => e);
    expect(err).toBeInstanceOf(WxError);
    expect(err.code).toBe('ipc.protocol_mismatch');
    expect(err.message).toContain(`speaks protocol ${PROTOCOL_VERSION + 1}, this client speaks ${PROTOCOL_VERSION}`);
    expect(err.message).toContain('wx daemon restart');
    expect(err.context.pid).toBe(process.pid);
  });

  it('a socket path too long for Unix sockets is a clear error', async () => {
    const home = tempHome();
    homes.push(home);
    const deep = path.join(home, 'x'.repeat(120));
    const server = new RpcServer({ socketPath: path.join(deep, 'run', 'wx.sock'), daemonVersion: 'test' });
    await expect(server.listen()).rejects.toThrow(/longer than the 103 bytes.*set WX_HOME to a shorter directory/);
  });
});
