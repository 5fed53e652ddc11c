// Content identity of a recording: sha256 over its bytes, streamed (recordings can be GBs).
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { WxError, describeError } from '../errors.js';

export async function hashFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  try {
    for await (const chunk of fs.createReadStream(file, { highWaterMark: 1 << 20 })) hash.update(chunk as Buffer);
  } catch (err) {
    throw new WxError('watch.hash_failed', `cannot read ${file} to hash it: ${describeError(err)}`, { file }, { cause: err });
  }
  return hash.digest('hex');
}
