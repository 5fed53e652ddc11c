// JSON-RPC 2.0 over a stream socket, one JSON message per line. Used by both ends: the daemon
// (server.ts) answers requests, clients (client.ts) send them; either side may notify.
//
// Framing faults are handled here, the same way for every connection: a line longer than the
// limit or one that is not JSON gets an error reply and closes THAT connection; an envelope
// that is JSON but not JSON-RPC 2.0 gets `invalidRequest` and the connection stays usable.
import { EventEmitter } from 'node:events';
import type net from 'node:net';
import { WxError, describeError } from '../errors.js';
import {
  ErrorCode,
  MAX_MESSAGE_BYTES,
  type ErrorCodeName,
  type ErrorData,
  type RequestId,
  type RpcError,
  type RpcMessage,
  type RpcRequest,
} from './protocol.js';

const NEWLINE = 0x0a;

/** An error a method handler throws to reply with a specific JSON-RPC code. */
export class RpcMethodError extends WxError {
  override readonly name = 'RpcMethodError';
  constructor(
    readonly rpcCode: number,
    code: string,
    message: string,
    context: WxError['context'] = {},
  ) {
    super(code, message, context);
  }
  static of(name: ErrorCodeName, wxCode: string, message: string, context: WxError['context'] = {}): RpcMethodError {
    return new RpcMethodError(ErrorCode[name], wxCode, message, context);
  }
}

/** The error a client sees when the other side replied with an error. `code` is the WxError
 *  code from `error.data` (or `rpc.<number>`), `rpcCode` the JSON-RPC code. */
export class RpcRemoteError extends WxError {
  override readonly name = 'RpcRemoteError';
  constructor(
    readonly rpcCode: number,
    code: string,
    message: string,
    context: WxError['context'] = {},
  ) {
    super(code, message, context);
  }
  static from(err: RpcError): RpcRemoteError {
    return new RpcRemoteError(err.code, err.data?.code ?? `rpc.${err.code}`, err.message, err.data?.context ?? {});
  }
}

/** Maps anything a handler threw to a JSON-RPC error object. */
export function toRpcError(err: unknown, signal?: AbortSignal): RpcError {
  if (err instanceof RpcMethodError) return { code: err.rpcCode, message: err.message, data: { code: err.code, context: err.context } };
  if (signal?.aborted || (err instanceof Error && err.name === 'AbortError')) {
    return { code: ErrorCode.cancelled, message: 'request cancelled', data: { code: 'request.cancelled', context: {} } };
  }
  if (err instanceof WxError) return { code: ErrorCode.internalError, message: err.message, data: { code: err.code, context: err.context } };
  return { code: ErrorCode.internalError, message: describeError(err), data: { code: 'internal', context: {} } };
}

export interface RequestContext {
  id: RequestId;
  method: string;
  /** Aborted by `$/cancelRequest`, by the connection closing, or by daemon shutdown. */
  signal: AbortSignal;
  connection: RpcConnection;
}

export type RequestHandler = (method: string, params: unknown, ctx: RequestContext) => Promise<unknown>;
export type NotificationHandler = (method: string, params: unknown, connection: RpcConnection) => void;

export interface ConnectionOptions {
  maxMessageBytes?: number;
  /** Bytes queued for writing beyond which the peer is considered stuck and is dropped. */
  maxBufferedBytes?: number;
  onRequest?: RequestHandler;
  onNotification?: NotificationHandler;
  /** Called for faults on this connection (oversized, malformed, stuck peer) for logging. */
  onFault?: (kind: string, detail: string) => void;
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  method: string;
}

export class RpcConnection extends EventEmitter {
  private readonly maxMessageBytes: number;
  private readonly maxBufferedBytes: number;
  private chunks: Buffer[] = [];
  private pendingBytes = 0;
  /** Set once the connection is going away: further input is discarded. */
  private closing = false;
  private nextId = 1;
  private readonly outgoing = new Map<RequestId, Pending>();
  private readonly incoming = new Map<RequestId, AbortController>();
  private closedError: Error | null = null;
  readonly closed: Promise<void>;

  constructor(
    readonly socket: net.Socket,
    private readonly opts: ConnectionOptions = {},
  ) {
    super();
    this.maxMessageBytes = opts.maxMessageBytes ?? MAX_MESSAGE_BYTES;
    this.maxBufferedBytes = opts.maxBufferedBytes ?? 64 * 1024 * 1024;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.closed = new Promise((resolve) => {
      socket.once('close', () => {
        this.closing = true;
        const err = this.closedError ?? new WxError('ipc.closed', 'the connection to the wx daemon closed');
        for (const p of this.outgoing.values()) p.reject(err);
        this.outgoing.clear();
        for (const c of this.incoming.values()) c.abort();
        this.incoming.clear();
        this.emit('close');
        resolve();
      });
    });
    // Errors (ECONNRESET, EPIPE) end in 'close'; without a listener they would crash the process.
    socket.on('error', (err) => {
      this.closedError ??= new WxError('ipc.socket_error', `wx daemon connection error: ${err.message}`);
    });
  }

  get isClosed(): boolean {
    return this.closing || this.socket.destroyed;
  }

  /** Sends a request and resolves with its result (or rejects with RpcRemoteError). Aborting
   *  `signal` sends `$/cancelRequest`; the reply then arrives as a `cancelled` error. */
  request(method: string, params?: unknown, signal?: AbortSignal): Promise<unknown> {
    if (this.isClosed) return Promise.reject(this.closedError ?? new WxError('ipc.closed', 'the connection to the wx daemon is closed', { method }));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.outgoing.set(id, { resolve, reject, method });
      const msg: RpcRequest = { jsonrpc: '2.0', id, method };
      if (params !== undefined) msg.params = params;
      this.write(msg);
      if (signal) {
        const cancel = () => this.notify('$/cancelRequest', { id });
        if (signal.aborted) cancel();
        else signal.addEventListener('abort', cancel, { once: true });
      }
    });
  }

  /** Sends a notification. `droppable` ones (progress) are skipped while the peer is not
   *  reading, since the next one supersedes them; others are queued. */
  notify(method: string, params?: unknown, opts: { droppable?: boolean } = {}): boolean {
    if (this.isClosed) return false;
    if (opts.droppable && this.socket.writableNeedDrain) return false;
    const msg: RpcMessage = params === undefined ? { jsonrpc: '2.0', method } : { jsonrpc: '2.0', method, params };
    return this.write(msg);
  }

  /** Half-closes after flushing what is queued. */
  end(): void {
    this.closing = true;
    this.socket.end();
  }

  destroy(): void {
    this.closing = true;
    this.socket.destroy();
  }

  private write(msg: RpcMessage): boolean {
    if (this.socket.destroyed || this.socket.writableEnded) return false;
    // A peer that stopped reading would make us buffer without bound: drop it instead.
    if (this.socket.writableLength > this.maxBufferedBytes) {
      this.fault('stuck', `peer is not reading (${this.socket.writableLength} bytes queued)`);
      this.destroy();
      return false;
    }
    this.socket.write(JSON.stringify(msg) + '\n');
    return true;
  }

  private fault(kind: string, detail: string): void {
    this.opts.onFault?.(kind, detail);
  }

  /** Replies with an error and closes this connection, discarding any further input. */
  private failAndClose(error: RpcError): void {
    this.write({ jsonrpc: '2.0', id: null, error });
    this.closing = true;
    this.chunks = [];
    this.pendingBytes = 0;
    this.socket.end();
    // A peer still streaming a huge line would keep us reading; give it a moment to see the
    // reply, then drop it.
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  private onData(chunk: Buffer): void {
    if (this.closing) return;
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(NEWLINE, start);
      if (nl === -1) break;
      const piece = chunk.subarray(start, nl);
      if (this.pendingBytes + piece.length > this.maxMessageBytes) return this.tooLarge();
      const line = this.pendingBytes > 0 ? Buffer.concat([...this.chunks, piece]) : piece;
      this.chunks = [];
      this.pendingBytes = 0;
      this.onLine(line);
      if (this.closing) return;
      start = nl + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      if (this.pendingBytes + rest.length > this.maxMessageBytes) return this.tooLarge();
      this.chunks.push(rest);
      this.pendingBytes += rest.length;
    }
  }

  private tooLarge(): void {
    this.fault('too_large', `message longer than ${this.maxMessageBytes} bytes`);
    this.failAndClose({
      code: ErrorCode.messageTooLarge,
      message: `message too large: the limit is ${this.maxMessageBytes} bytes per line; closing this connection`,
      data: { code: 'ipc.message_too_large', context: { limit: this.maxMessageBytes } },
    });
  }

  private onLine(line: Buffer): void {
    // Tolerate CRLF from hand-typed sessions and ignore blank lines.
    let text = line.toString('utf8');
    if (text.endsWith('\r')) text = text.slice(0, -1);
    if (text.trim() === '') return;
    let msg: unknown;
    try {
      msg = JSON.parse(text);
    } catch (err) {
      this.fault('parse', describeError(err));
      this.failAndClose({
        code: ErrorCode.parseError,
        message: `parse error: not valid JSON (${describeError(err)}); closing this connection`,
        data: { code: 'ipc.parse_error', context: { bytes: line.length } },
      });
      return;
    }
    this.dispatch(msg);
  }

  private invalid(id: RequestId | null, why: string): void {
    this.fault('invalid', why);
    this.write({ jsonrpc: '2.0', id, error: { code: ErrorCode.invalidRequest, message: `invalid request: ${why}`, data: { code: 'ipc.invalid_request', context: {} } } });
  }

  private dispatch(msg: unknown): void {
    if (Array.isArray(msg)) return this.invalid(null, 'batches are not supported; send one message per line');
    if (msg === null || typeof msg !== 'object') return this.invalid(null, 'a message must be a JSON object');
    const m = msg as Record<string, unknown>;
    const id = m.id;
    const validId = typeof id === 'string' || (typeof id === 'number' && Number.isFinite(id));
    if (m.jsonrpc !== '2.0') return this.invalid(validId ? (id as RequestId) : null, 'missing "jsonrpc": "2.0"');

    if ('result' in m || 'error' in m) return this.onResponse(m);
    if (typeof m.method !== 'string' || m.method === '') return this.invalid(validId ? (id as RequestId) : null, '"method" must be a non-empty string');
    if ('id' in m && !validId) return this.invalid(null, '"id" must be a string or a number');

    if (!('id' in m)) {
      if (m.method === '$/cancelRequest') {
        const target = (m.params as { id?: RequestId } | undefined)?.id;
        if (target !== undefined) this.incoming.get(target)?.abort();
        return;
      }
      this.opts.onNotification?.(m.method, m.params, this);
      this.emit('notification', m.method, m.params);
      return;
    }
    void this.handleRequest(id as RequestId, m.method, m.params);
  }

  private async handleRequest(id: RequestId, method: string, params: unknown): Promise<void> {
    const handler = this.opts.onRequest;
    if (!handler) {
      this.write({ jsonrpc: '2.0', id, error: { code: ErrorCode.methodNotFound, message: `this end does not answer requests (${method})` } });
      return;
    }
    if (this.incoming.has(id)) return this.invalid(id, `request id ${JSON.stringify(id)} is already in use`);
    const controller = new AbortController();
    this.incoming.set(id, controller);
    try {
      const result = await handler(method, params, { id, method, signal: controller.signal, connection: this });
      this.write({ jsonrpc: '2.0', id, result: result === undefined ? null : result });
    } catch (err) {
      this.write({ jsonrpc: '2.0', id, error: toRpcError(err, controller.signal) });
    } finally {
      this.incoming.delete(id);
    }
  }

  private onResponse(m: Record<string, unknown>): void {
    const id = m.id as RequestId;
    const pending = this.outgoing.get(id);
    if (!pending) {
      // A reply to no request of ours: the peer rejected something at the framing level
      // (id null). Surface it to whoever is waiting on the connection.
      if (m.error) this.closedError = RpcRemoteError.from(m.error as RpcError);
      return;
    }
    this.outgoing.delete(id);
    if (m.error) pending.reject(RpcRemoteError.from(m.error as RpcError));
    else pending.resolve(m.result);
  }
}

export type { ErrorData };
