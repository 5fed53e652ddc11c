// The daemon's end of the socket: a Unix socket in $WX_HOME/run (directory 0700, socket 0600),
// peers of another uid refused, `initialize` required first, typed method handlers.
// There is deliberately no TCP listener.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { WxError, describeError } from '../errors.js';
import { native } from '../native.js';
import { ErrorCode, PROTOCOL_VERSION, type MethodName, type ParamsOf, type ResultOf } from './protocol.js';
import { RpcConnection, RpcMethodError, type RequestContext } from './transport.js';

export type MethodHandler<M extends MethodName> = (params: ParamsOf<M>, ctx: RequestContext) => Promise<ResultOf<M>> | ResultOf<M>;

export interface PeerCredentials {
  uid: number;
  gid: number;
  pid?: number;
}

export interface ServerOptions {
  socketPath: string;
  daemonVersion: string;
  /** Name of the loaded model for `initialize` replies. */
  modelName?: () => string | undefined;
  /** uid allowed to connect (default: ours). */
  allowedUid?: number;
  log?: (level: 'debug' | 'info' | 'warn' | 'error', message: string, context?: Record<string, unknown>) => void;
  maxMessageBytes?: number;
  /** The protocol version this server speaks (default PROTOCOL_VERSION; tests simulate an
   *  older or newer daemon with it). */
  protocolVersion?: number;
}

/** sun_path is 104 bytes on macOS, 108 on Linux, including the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 103;

interface ConnState {
  initialized: boolean;
  peer: PeerCredentials | null;
}

/** Reads the uid of the process at the other end of a Unix-socket connection (native addon:
 *  SO_PEERCRED on Linux, getpeereid on macOS). */
export function peerCredentials(socket: net.Socket): PeerCredentials {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new WxError('ipc.no_fd', 'cannot read the socket file descriptor for a peer check');
  return native().peerCredentials(fd) as PeerCredentials;
}

export class RpcServer {
  private readonly server: net.Server;
  private readonly handlers = new Map<string, MethodHandler<MethodName>>();
  private readonly connections = new Map<RpcConnection, ConnState>();
  private peerCheckAvailable = true;
  private listening = false;

  constructor(private readonly opts: ServerOptions) {
    this.server = net.createServer({ allowHalfOpen: false }, (socket) => this.accept(socket));
    this.server.on('error', (err) => this.log('error', `socket server error: ${err.message}`));
  }

  handle<M extends MethodName>(method: M, handler: MethodHandler<M>): this {
    this.handlers.set(method, handler as unknown as MethodHandler<MethodName>);
    return this;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Creates the run directory (0700) and listens on the socket (0600). Any file already at
   *  the socket path is removed: the caller holds the instance lock, so it is stale. */
  async listen(): Promise<void> {
    const socketPath = this.opts.socketPath;
    if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH_BYTES) {
      throw new WxError('ipc.socket_path_too_long', `the socket path ${socketPath} is longer than the ${MAX_SOCKET_PATH_BYTES} bytes Unix sockets allow; set WX_HOME to a shorter directory`, { socket: socketPath });
    }
    const dir = path.dirname(socketPath);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = fs.statSync(dir);
    if (typeof process.getuid === 'function' && st.uid !== process.getuid()) {
      throw new WxError('ipc.run_dir_owner', `the run directory ${dir} belongs to uid ${st.uid}, not to this user; refusing to use it`, { dir });
    }
    fs.chmodSync(dir, 0o700);
    try {
      fs.unlinkSync(socketPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    // The socket file is created by bind() with the process umask: make it 0600 from the
    // start rather than chmod-ing afterwards (a window where others could connect).
    const oldMask = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        const onError = (err: Error) => reject(new WxError('ipc.listen', `cannot listen on ${socketPath}: ${err.message}`, { socket: socketPath }));
        this.server.once('error', onError);
        this.server.listen(socketPath, () => {
          this.server.off('error', onError);
          resolve();
        });
      });
    } finally {
      process.umask(oldMask);
    }
    fs.chmodSync(socketPath, 0o600);
    this.listening = true;
  }

  /** Stops accepting, cancels in-flight requests, closes every connection, removes the socket. */
  async close(): Promise<void> {
    if (!this.listening) return;
    this.listening = false;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const conn of this.connections.keys()) conn.end();
    await Promise.race([Promise.all([...this.connections.keys()].map((c) => c.closed)), new Promise((r) => setTimeout(r, 500).unref())]);
    for (const conn of this.connections.keys()) conn.destroy();
    await closed;
    try {
      fs.unlinkSync(this.opts.socketPath);
    } catch {
      // Already gone (net.Server usually unlinks it on close).
    }
  }

  private log(level: 'debug' | 'info' | 'warn' | 'error', message: string, context?: Record<string, unknown>): void {
    this.opts.log?.(level, message, context);
  }

  private accept(socket: net.Socket): void {
    let peer: PeerCredentials | null = null;
    const allowedUid = this.opts.allowedUid ?? process.getuid?.();
    if (this.peerCheckAvailable && allowedUid !== undefined) {
      try {
        peer = peerCredentials(socket);
      } catch (err) {
        // Without the addon the 0700 directory and 0600 socket still keep other users out.
        this.peerCheckAvailable = false;
        this.log('warn', `peer credential check unavailable, relying on socket permissions: ${describeError(err)}`);
      }
      if (peer && peer.uid !== allowedUid) {
        this.log('warn', 'refused a connection from another user', { uid: peer.uid, pid: peer.pid });
        socket.on('error', () => {});
        // Discard whatever it sends.
        socket.resume();
        socket.end(
          JSON.stringify({
            jsonrpc: '2.0',
            id: null,
            error: { code: ErrorCode.unauthorized, message: `connection refused: the wx daemon of uid ${allowedUid} serves only its own user (you are uid ${peer.uid})`, data: { code: 'ipc.unauthorized', context: { uid: peer.uid } } },
          }) + '\n',
        );
        // Closing at once would reset a peer whose first request is in flight before it read
        // the refusal; it gets a moment to read it and hang up.
        setTimeout(() => socket.destroy(), 1000).unref();
        return;
      }
    }
    const state: ConnState = { initialized: false, peer };
    const conn = new RpcConnection(socket, {
      maxMessageBytes: this.opts.maxMessageBytes,
      onRequest: (method, params, ctx) => this.dispatch(state, method, params, ctx),
      onFault: (kind, detail) => this.log('warn', `client connection fault: ${kind}`, { detail, peerPid: peer?.pid }),
    });
    this.connections.set(conn, state);
    conn.once('close', () => this.connections.delete(conn));
  }

  private async dispatch(state: ConnState, method: string, params: unknown, ctx: RequestContext): Promise<unknown> {
    if (method === 'initialize') {
      const p = params as ParamsOf<'initialize'> | undefined;
      if (!p || typeof p.protocolVersion !== 'number') {
        throw RpcMethodError.of('invalidParams', 'ipc.bad_params', 'initialize needs {protocolVersion: number, client: {name, version}}');
      }
      const ours = this.opts.protocolVersion ?? PROTOCOL_VERSION;
      if (p.protocolVersion !== ours) {
        throw RpcMethodError.of(
          'protocolMismatch',
          'ipc.protocol_mismatch',
          `protocol mismatch: the running wx daemon (version ${this.opts.daemonVersion}, pid ${process.pid}) speaks protocol ${ours}, this client speaks ${p.protocolVersion}; restart the daemon with \`wx daemon restart\``,
          { daemonProtocol: ours, clientProtocol: p.protocolVersion, daemonVersion: this.opts.daemonVersion, pid: process.pid },
        );
      }
      state.initialized = true;
      const model = this.opts.modelName?.();
      const result: ResultOf<'initialize'> = { protocolVersion: ours, daemonVersion: this.opts.daemonVersion, pid: process.pid };
      if (model) result.model = model;
      return result;
    }
    if (!state.initialized) {
      throw RpcMethodError.of('notInitialized', 'ipc.not_initialized', `call initialize before ${method}`);
    }
    const handler = this.handlers.get(method);
    if (!handler) throw RpcMethodError.of('methodNotFound', 'ipc.method_not_found', `unknown method: ${method}`, { method });
    return handler(params as never, ctx);
  }
}
