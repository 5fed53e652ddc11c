// `$WX_HOME/config.json`: read, and changed by read-modify-write under a lock file with an atomic
// rename, so two processes setting different keys never lose each other's change and a reader
// never sees half a file. Keys this module does not know are kept as they are.
import fs from 'node:fs';
import path from 'node:path';
import { WxError } from '../errors.js';
import { wxPaths } from '../paths.js';

export type ConfigObject = Record<string, unknown>;

export function readConfig(home: string): ConfigObject {
  const file = wxPaths(home).config;
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new WxError('config.unreadable', `cannot read ${file}: ${(err as Error).message}`, { file });
  }
  if (text.trim() === '') return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new WxError('config.bad_json', `${file} is not valid JSON (${(err as Error).message}); fix or delete it`, { file });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new WxError('config.bad_json', `${file} must hold a JSON object`, { file });
  }
  return value as ConfigObject;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Creates `lock` holding our pid, atomically: the pid is written to a private file that is then
 *  hard-linked to the lock name, so nobody ever reads a lock file without its pid. */
export function createLockFile(lock: string): boolean {
  const tmp = `${lock}.${process.pid}.${Math.random().toString(36).slice(2)}`;
  fs.writeFileSync(tmp, String(process.pid));
  try {
    fs.linkSync(tmp, lock);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

function acquireLock(lock: string): void {
  const deadline = Date.now() + 5000;
  for (;;) {
    if (createLockFile(lock)) return;
    let holder = NaN;
    try {
      holder = Number(fs.readFileSync(lock, 'utf8').trim());
    } catch {
      continue; // released between our open and read
    }
    if (!Number.isInteger(holder) || holder <= 0 || !pidAlive(holder)) {
      fs.rmSync(lock, { force: true });
      continue;
    }
    if (Date.now() > deadline) {
      throw new WxError('config.locked', `${lock} is held by process ${holder}; another wx command is changing the configuration`, { file: lock, pid: holder });
    }
    // The holder only reads, changes one key and renames: a few milliseconds.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
  }
}

/** Applies `mutate` to the current configuration and writes the result atomically. */
export function updateConfig(home: string, mutate: (config: ConfigObject) => void): ConfigObject {
  const file = wxPaths(home).config;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const lock = `${file}.lock`;
  acquireLock(lock);
  try {
    const config = readConfig(home);
    mutate(config);
    const tmp = `${file}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, JSON.stringify(config, null, 2) + '\n', { mode: 0o600 });
    fs.renameSync(tmp, file);
    return config;
  } finally {
    fs.rmSync(lock, { force: true });
  }
}
