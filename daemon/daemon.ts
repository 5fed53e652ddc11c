// The daemon process: one per user. It takes the instance lock, listens on the socket,
// answers the protocol, and (as the store and pipeline land) owns the database, the warm
// model and the job loop. Readiness = answering `initialize`.
import fs from 'node:fs';
import { loadConfig, type WxConfig } from './config.js';
import { WxError, describeError } from './errors.js';
import { InstanceLock } from './instance.js';
import { RpcServer } from './ipc/server.js';
import { PLANNED_METHODS, PROTOCOL_VERSION, type ModelStatus, type QueueStats, type StatusResult } from './ipc/protocol.js';
import { RpcMethodError } from './ipc/transport.js';
import { Logger } from './log.js';
import { wxPaths, type WxPaths } from './paths.js';
import { VERSION } from './version.js';

export interface DaemonOptions {
  home: string;
  /** Echo log lines to stderr (`wx daemon start --foreground`). */
  echoLog?: boolean;
}

/** Exit codes of the daemon process. */
export const DAEMON_EXIT = { ok: 0, config: 78, fatal: 70 } as const;

export class Daemon {
  readonly paths: WxPaths;
  readonly startedAt = Date.now();
  config!: WxConfig;
  log!: Logger;
  private server!: RpcServer;
  private lock: InstanceLock | null = null;
  private stopping: Promise<void> | null = null;
  private model: ModelStatus | null = null;
  private lastError: StatusResult['last_error'] = null;
  /** Resolves when the daemon has shut down. */
  readonly done: Promise<void>;
  private resolveDone!: () => void;

  constructor(private readonly opts: DaemonOptions) {
    this.paths = wxPaths(opts.home);
    this.done = new Promise((r) => (this.resolveDone = r));
  }

  /** Starts serving. Returns false (after logging) when another daemon is already running. */
  async start(): Promise<boolean> {
    fs.mkdirSync(this.paths.home, { recursive: true, mode: 0o700 });
    this.config = loadConfig(this.paths.config);
    this.log = new Logger(`${this.paths.logs}/daemon.log`, {
      level: this.config.logLevel,
      maxBytes: this.config.log.maxBytes,
      keep: this.config.log.keep,
      echo: this.opts.echoLog,
    });
    const got = await InstanceLock.acquire(this.paths.lock, this.paths.socket, {
      onStale: (owner, why) => this.log.warn('replacing a stale daemon lock', { owner: owner?.pid ?? null, why }),
    });
    if (!got.acquired) {
      this.log.info('another daemon is already running', { pid: got.owner.pid });
      this.log.close();
      return false;
    }
    this.lock = got.lock;
    this.server = new RpcServer({
      socketPath: this.paths.socket,
      daemonVersion: VERSION,
      modelName: () => this.model?.name,
      log: (level, message, context) => this.log.write(level, message, context),
    });
    this.registerMethods();
    try {
      await this.server.listen();
    } catch (err) {
      this.lock.release();
      throw err;
    }
    this.log.info('daemon listening', { socket: this.paths.socket, version: VERSION, protocol: PROTOCOL_VERSION, home: this.paths.home });
    return true;
  }

  private registerMethods(): void {
    const s = this.server;
    s.handle('status', () => this.status());
    s.handle('daemon.shutdown', () => {
      // Reply first, then stop: the caller waits for the socket to go away.
      setImmediate(() => void this.shutdown('daemon.shutdown request'));
      return { pid: process.pid };
    });
    for (const method of PLANNED_METHODS) {
      s.handle(method, () => {
        throw RpcMethodError.of('methodNotFound', 'ipc.not_implemented', `${method} is not available in this daemon yet`, { method });
      });
    }
  }

  status(): StatusResult {
    const queue: QueueStats = { queued: 0, running: 0, done: 0, failed: 0, cancelled: 0, queued_audio_s: 0 };
    return {
      pid: process.pid,
      version: VERSION,
      protocol_version: PROTOCOL_VERSION,
      uptime_s: Math.round((Date.now() - this.startedAt) / 100) / 10,
      model: this.model,
      rss_mb: Math.round((process.memoryUsage().rss / 2 ** 20) * 10) / 10,
      queue,
      watch: [],
      last_error: this.lastError,
      home: this.paths.home,
      socket: this.paths.socket,
    };
  }

  /** Stops accepting, cancels requests, closes everything, removes socket and lock. Idempotent. */
  shutdown(reason: string): Promise<void> {
    this.stopping ??= (async () => {
      this.log.info('daemon shutting down', { reason });
      try {
        await this.server.close();
      } catch (err) {
        this.log.error('error while closing the socket', { error: describeError(err) });
      }
      this.lock?.release();
      this.log.info('daemon stopped');
      this.log.close();
      this.resolveDone();
    })();
    return this.stopping;
  }

  recordError(message: string, extra: { job?: number; path?: string } = {}): void {
    this.lastError = { at: new Date().toISOString(), message, ...extra };
  }
}

/** Entry point of the daemon process: runs until SIGTERM/SIGINT or `daemon.shutdown`. */
export async function runDaemon(opts: DaemonOptions): Promise<number> {
  const daemon = new Daemon(opts);
  let started: boolean;
  try {
    started = await daemon.start();
  } catch (err) {
    process.stderr.write(`wx daemon: ${describeError(err)}\n`);
    return err instanceof WxError && err.code.startsWith('config.') ? DAEMON_EXIT.config : DAEMON_EXIT.fatal;
  }
  if (!started) {
    process.stderr.write(`wx daemon: already running (see ${daemon.paths.socket})\n`);
    return DAEMON_EXIT.ok;
  }
  const onSignal = (sig: NodeJS.Signals) => void daemon.shutdown(sig);
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  // The terminal going away must not kill a background daemon started from it.
  process.on('SIGHUP', () => daemon.log.info('SIGHUP ignored'));
  let exitCode: number = DAEMON_EXIT.ok;
  // State after an unexpected exception is unknown: stop cleanly (the queue is in SQLite and
  // the service manager restarts us) rather than limp on.
  process.on('uncaughtException', (err) => {
    daemon.log.error('uncaught exception', { error: err.stack ?? String(err) });
    exitCode = DAEMON_EXIT.fatal;
    void daemon.shutdown('uncaught exception');
  });
  await daemon.done;
  return exitCode;
}
