// File writes that never leave a half-written file behind: a reader sees either the old content
// or the new, even if the process dies or the machine loses power in the middle.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { WxError } from './errors.js';

/** Writes `data` to `file` atomically: a temporary file in the same directory (same file
 *  system, so the rename is atomic), fsync'ed, then renamed over `file`; the directory is
 *  fsync'ed too so the rename itself survives a crash. On failure the temporary file is removed
 *  and `file` is untouched. */
export function writeFileAtomic(file: string, data: string | Uint8Array, opts: { mode?: number } = {}): void {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${crypto.randomBytes(4).toString('hex')}.tmp`);
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'wx', opts.mode ?? 0o644);
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let off = 0;
    while (off < buf.length) off += fs.writeSync(fd, buf, off, buf.length - off);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    fs.renameSync(tmp, file);
  } catch (err) {
    if (fd !== undefined) {
      try {
        fs.closeSync(fd);
      } catch {
        // already failing: the original error is the one to report
      }
    }
    fs.rmSync(tmp, { force: true });
    throw new WxError('fs.write_failed', `cannot write ${file}: ${(err as Error).message}`, { file }, { cause: err });
  }
  fsyncDir(dir);
}

function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Some file systems refuse fsync on directories; the file itself is already durable.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}
