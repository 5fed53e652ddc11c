// The daemon's structured log: one JSON object per line in $WX_HOME/logs/daemon.log, rotated by
// size (daemon.log → daemon.log.1 → …). Writes are synchronous and small so the last lines
// before a crash are on disk.
import fs from 'node:fs';
import path from 'node:path';
import type { LogLevel } from './config.js';

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface LoggerOptions {
  level?: LogLevel;
  maxBytes?: number;
  keep?: number;
  /** Also write lines to stderr (foreground mode). */
  echo?: boolean;
}

export class Logger {
  private fd: number;
  private size: number;
  private level: number;
  private readonly maxBytes: number;
  private readonly keep: number;
  private readonly echo: boolean;

  constructor(
    readonly file: string,
    opts: LoggerOptions = {},
  ) {
    this.level = LEVELS[opts.level ?? 'info'];
    this.maxBytes = opts.maxBytes ?? 5 * 1024 * 1024;
    this.keep = opts.keep ?? 3;
    this.echo = opts.echo ?? false;
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    this.fd = fs.openSync(file, 'a', 0o600);
    this.size = fs.fstatSync(this.fd).size;
  }

  setLevel(level: LogLevel): void {
    this.level = LEVELS[level];
  }

  debug(msg: string, context?: Record<string, unknown>): void {
    this.write('debug', msg, context);
  }
  info(msg: string, context?: Record<string, unknown>): void {
    this.write('info', msg, context);
  }
  warn(msg: string, context?: Record<string, unknown>): void {
    this.write('warn', msg, context);
  }
  error(msg: string, context?: Record<string, unknown>): void {
    this.write('error', msg, context);
  }

  write(level: LogLevel, msg: string, context?: Record<string, unknown>): void {
    if (LEVELS[level] < this.level || this.fd < 0) return;
    const line = JSON.stringify({ t: new Date().toISOString(), level, pid: process.pid, msg, ...context }) + '\n';
    const bytes = Buffer.byteLength(line);
    if (this.size + bytes > this.maxBytes && this.size > 0) this.rotate();
    fs.writeSync(this.fd, line);
    this.size += bytes;
    if (this.echo) process.stderr.write(line);
  }

  private rotate(): void {
    fs.closeSync(this.fd);
    try {
      if (this.keep === 0) fs.rmSync(this.file, { force: true });
      for (let i = this.keep - 1; i >= 1; i--) {
        const from = `${this.file}.${i}`;
        if (fs.existsSync(from)) fs.renameSync(from, `${this.file}.${i + 1}`);
      }
      if (this.keep > 0) fs.renameSync(this.file, `${this.file}.1`);
    } finally {
      this.fd = fs.openSync(this.file, 'a', 0o600);
      this.size = fs.fstatSync(this.fd).size;
    }
  }

  close(): void {
    if (this.fd >= 0) fs.closeSync(this.fd);
    this.fd = -1;
  }
}
