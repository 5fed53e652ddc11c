// The client's end: connect to the daemon's socket (starting the daemon when asked), check the
// protocol version with `initialize`, then make typed calls.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { WxError, describeError } from '../errors.js';
import { projectRoot, wxHome, wxPaths } from '../paths.js';
import { VERSION } from '../version.js';
import {
  ErrorCode,
  PROTOCOL_VERSION,
  type MethodName,
  type NotificationName,
  type Notifications,
  type ParamsOf,
  type ResultOf,
} from './protocol.js';
import { RpcConnection, RpcRemoteError } from './transport.js';

export interface ConnectOptions {
  home?: string;
  /** Start the daemon in the background when none is running (default false). */
  autostart?: boolean;
  /** How long to wait for a started daemon to answer `initialize` (default 30 s: it loads the model first). */
  startTimeoutMs?: number;
  client?: { name: string; version: string };
}

const RETRYABLE = new Set(['ENOENT', 'ECONNREFUSED', 'EAGAIN']);

/** One connection attempt; resolves with the socket or rejects with the errno error. */
function connectOnce(socketPath: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(socketPath);
    socket.once('connect', () => {
      socket.removeAllListeners('error');
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

/** The daemon entry point next to this file (dist/daemon/main.js). */
export function daemonScript(): string {
  return path.join(projectRoot(), 'dist', 'daemon', 'main.js');
}

export interface StartedDaemon {
  pid: number;
  /** Resolves with the exit code if the process ends (e.g. bad config, or another daemon won). */
  exited: Promise<number | null>;
  logFile: string;
}

/** Starts the daemon as a detached background process, its stdout/stderr going to
 *  $WX_HOME/logs/daemon.out (the structured log is daemon.log next to it). */
export function spawnDaemon(home: string): StartedDaemon {
  const paths = wxPaths(home);
  fs.mkdirSync(paths.logs, { recursive: true, mode: 0o700 });
  const logFile = path.join(paths.logs, 'daemon.out');
  const out = fs.openSync(logFile, 'a', 0o600);
  const child = spawn(process.execPath, [daemonScript()], {
    detached: true,
    stdio: ['ignore', out, out],
    env: { ...process.env, WX_HOME: home },
  });
  fs.closeSync(out);
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', () => resolve(null));
  });
  child.unref();
  return { pid: child.pid ?? -1, exited, logFile };
}

function tail(file: string, lines = 8): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

export class WxClient {
  private constructor(
    readonly connection: RpcConnection,
    readonly server: ResultOf<'initialize'>,
    readonly socketPath: string,
    /** Set when this connect started the daemon. */
    readonly started: StartedDaemon | null,
  ) {}

  /** Connects and runs the `initialize` handshake. With `autostart`, a daemon that is not
   *  running is started in the background and awaited: readiness is its `initialize` reply. */
  static async connect(opts: ConnectOptions = {}): Promise<WxClient> {
    const home = opts.home ?? wxHome();
    const socketPath = wxPaths(home).socket;
    let started: StartedDaemon | null = null;
    let socket: net.Socket;
    try {
      socket = await connectOnce(socketPath);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      if (!RETRYABLE.has(code)) throw new WxError('ipc.connect', `cannot connect to the wx daemon at ${socketPath}: ${describeError(err)}`, { socket: socketPath });
      if (!opts.autostart) {
        throw new WxError('daemon.not_running', `the wx daemon is not running (no socket at ${socketPath}); start it with \`wx daemon start\``, { socket: socketPath });
      }
      started = spawnDaemon(home);
      socket = await WxClient.waitForSocket(socketPath, started, opts.startTimeoutMs ?? 30_000);
    }
    return WxClient.handshake(socket, socketPath, started, opts);
  }

  /** Retries connecting until the started daemon listens, it exits, or the deadline passes. */
  private static async waitForSocket(socketPath: string, started: StartedDaemon, timeoutMs: number): Promise<net.Socket> {
    const deadline = Date.now() + timeoutMs;
    let exitCode: number | null | undefined;
    void started.exited.then((c) => (exitCode = c));
    let delay = 10;
    for (;;) {
      try {
        return await connectOnce(socketPath);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? '';
        if (!RETRYABLE.has(code)) throw new WxError('ipc.connect', `cannot connect to the wx daemon at ${socketPath}: ${describeError(err)}`, { socket: socketPath });
      }
      // Exit code 0 means another daemon won the start race: keep waiting for its socket.
      if (exitCode !== undefined && exitCode !== 0) {
        throw new WxError('daemon.start_failed', `the wx daemon exited during start (code ${exitCode}); its output (${started.logFile}):\n${tail(started.logFile)}`, { log: started.logFile });
      }
      if (Date.now() > deadline) {
        throw new WxError('daemon.start_timeout', `the wx daemon (pid ${started.pid}) did not start listening within ${timeoutMs} ms; see ${started.logFile}`, { log: started.logFile, pid: started.pid });
      }
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 100);
    }
  }

  private static async handshake(socket: net.Socket, socketPath: string, started: StartedDaemon | null, opts: ConnectOptions): Promise<WxClient> {
    const connection = new RpcConnection(socket);
    const client = opts.client ?? { name: 'wx-cli', version: VERSION };
    let info: ResultOf<'initialize'>;
    try {
      info = (await connection.request('initialize', { protocolVersion: PROTOCOL_VERSION, client: { ...client, pid: process.pid } })) as ResultOf<'initialize'>;
    } catch (err) {
      connection.destroy();
      if (err instanceof RpcRemoteError && err.rpcCode === ErrorCode.protocolMismatch) {
        throw new WxError('ipc.protocol_mismatch', err.message, err.context);
      }
      throw err;
    }
    return new WxClient(connection, info, socketPath, started);
  }

  /** A typed call. `signal` cancels it on the daemon side (`$/cancelRequest`). */
  call<M extends MethodName>(method: M, params: ParamsOf<M>, signal?: AbortSignal): Promise<ResultOf<M>> {
    return this.connection.request(method, params, signal) as Promise<ResultOf<M>>;
  }

  /** Subscribes to one notification type; returns an unsubscribe function. */
  on<N extends NotificationName>(name: N, fn: (params: Notifications[N]) => void): () => void {
    const listener = (method: string, params: unknown) => {
      if (method === name) fn(params as Notifications[N]);
    };
    this.connection.on('notification', listener);
    return () => this.connection.off('notification', listener);
  }

  async close(): Promise<void> {
    this.connection.end();
    await this.connection.closed;
  }
}
