// How CLI commands reach the daemon: connect (starting it when the command needs it), run,
// close; failures to reach it exit with EXIT.daemon and a message saying what to do.
import { InvalidArgumentError } from 'commander';
import { WxClient } from '../daemon/ipc/client.js';
import { RpcRemoteError } from '../daemon/ipc/transport.js';
import { ErrorCode } from '../daemon/ipc/protocol.js';
import { WxError, describeError } from '../daemon/errors.js';
import { wxHome } from '../daemon/paths.js';
import { EXIT } from './exit.js';

/** Thrown to end a command with a specific exit code after its message was printed. */
export class CliExit extends Error {
  constructor(readonly exitCode: number) {
    super(`exit ${exitCode}`);
  }
}

export function exitCodeFor(err: unknown): number {
  if (err instanceof CliExit) return err.exitCode;
  if (err instanceof RpcRemoteError) {
    if (err.rpcCode === ErrorCode.cancelled) return EXIT.interrupted;
    if (err.rpcCode === ErrorCode.invalidParams || err.rpcCode === ErrorCode.badParams) return EXIT.usage;
    if (err.rpcCode === ErrorCode.internalError) return EXIT.internal;
    return EXIT.failure;
  }
  if (err instanceof WxError && (err.code.startsWith('daemon.') || err.code.startsWith('ipc.'))) return EXIT.daemon;
  if (err instanceof WxError) return EXIT.failure;
  return EXIT.internal;
}

/** Runs `fn` with a connected client; prints errors plainly and sets the exit code. */
export async function withDaemon<T>(opts: { autostart: boolean }, fn: (client: WxClient) => Promise<T>): Promise<T | undefined> {
  let client: WxClient | null = null;
  try {
    client = await WxClient.connect({ home: wxHome(), autostart: opts.autostart });
    if (client.started) process.stderr.write(`wx: started the daemon (pid ${client.server.pid})\n`);
    return await fn(client);
  } catch (err) {
    if (!(err instanceof CliExit)) process.stderr.write(`wx: ${describeError(err)}\n`);
    process.exitCode = exitCodeFor(err);
    return undefined;
  } finally {
    if (client) await client.close();
  }
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

/** Seconds → h:mm:ss (hh:mm:ss from 10 h up). */
export function clock(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  return `${String(h).padStart(2, '0')}:${String(m).padStart(2, '0')}:${String(sec).padStart(2, '0')}`;
}

/** A commander argument parser: bad values become usage errors (exit 2). */
export function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError(`must be a positive integer (got ${JSON.stringify(value)})`);
  return n;
}
