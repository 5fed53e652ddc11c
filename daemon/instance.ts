// One daemon per user: $WX_HOME/run/wx.lock holds the owner's pid. A lock left by a crashed
// daemon (pid gone, or a live pid whose socket never accepts — a reused pid or a hung
// process) is detected and replaced; a live daemon that answers on its socket wins.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { WxError } from './errors.js';

export interface LockOwner {
  pid: number;
  startedAt: string;
}

export type AcquireResult = { acquired: true; lock: InstanceLock } | { acquired: false; owner: LockOwner };

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** True when something accepts connections on the socket. */
export function socketAccepting(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createConnection(socketPath);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

function readOwner(file: string): LockOwner | null {
  try {
    const owner = JSON.parse(fs.readFileSync(file, 'utf8')) as LockOwner;
    return typeof owner.pid === 'number' ? owner : null;
  } catch {
    return null;
  }
}

export class InstanceLock {
  private constructor(readonly file: string) {}

  /** Tries to become the one daemon. `startupGraceMs`: how long a live owner that is not yet
   *  listening is given to start listening before its lock counts as stale. */
  static async acquire(file: string, socketPath: string, opts: { startupGraceMs?: number; onStale?: (owner: LockOwner | null, why: string) => void } = {}): Promise<AcquireResult> {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    const grace = opts.startupGraceMs ?? 5000;
    for (let attempt = 0; attempt < 10; attempt++) {
      try {
        const fd = fs.openSync(file, 'wx', 0o600);
        fs.writeSync(fd, JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString() } satisfies LockOwner));
        fs.closeSync(fd);
        return { acquired: true, lock: new InstanceLock(file) };
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
          throw new WxError('daemon.lock', `cannot create the lock file ${file}: ${(err as Error).message}`, { file });
        }
      }
      const raw = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : null;
      if (raw === null) continue;
      const owner = readOwner(file);
      let staleWhy: string | null = null;
      if (!owner) {
        // Another starter may be between create and write: give it a moment.
        const age = Date.now() - (fs.statSync(file, { throwIfNoEntry: false })?.mtimeMs ?? 0);
        if (age < 2000) {
          await new Promise((r) => setTimeout(r, 50));
          continue;
        }
        staleWhy = 'lock file is unreadable';
      } else if (owner.pid === process.pid) {
        staleWhy = 'lock names this process';
      } else if (!pidAlive(owner.pid)) {
        staleWhy = `pid ${owner.pid} is not running`;
      } else {
        const deadline = Date.now() + grace;
        let delay = 20;
        for (;;) {
          if (await socketAccepting(socketPath)) return { acquired: false, owner };
          if (!pidAlive(owner.pid)) {
            staleWhy = `pid ${owner.pid} exited`;
            break;
          }
          if (Date.now() > deadline) {
            staleWhy = `pid ${owner.pid} is alive but its socket does not accept connections`;
            break;
          }
          await new Promise((r) => setTimeout(r, delay));
          delay = Math.min(delay * 2, 200);
        }
      }
      // Remove only the lock we judged: another starter may already have replaced it.
      if (fs.existsSync(file) && fs.readFileSync(file, 'utf8') === raw) {
        opts.onStale?.(owner, staleWhy);
        fs.rmSync(file, { force: true });
      }
    }
    throw new WxError('daemon.lock', `could not take the daemon lock ${file} (another daemon keeps starting?)`, { file });
  }

  /** Removes the lock if it is still ours. */
  release(): void {
    const owner = readOwner(this.file);
    if (owner?.pid === process.pid) fs.rmSync(this.file, { force: true });
  }
}
