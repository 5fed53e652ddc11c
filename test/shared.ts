// Tests read models, audio and reference outputs from ../shared in place. It is always present
// in CI; when it is missing the tests that need it fail loudly instead of skipping.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export function sharedDir(): string {
  const dir = process.env.WX_SHARED_DIR ? path.resolve(process.env.WX_SHARED_DIR) : path.resolve(repoRoot, '..', 'shared');
  if (!fs.existsSync(path.join(dir, 'README.md'))) {
    throw new Error(`../shared is missing (looked in ${dir}): these tests need the shared model, audio and references`);
  }
  return dir;
}

export const sharedPath = (...parts: string[]): string => path.join(sharedDir(), ...parts);
export const tinyModelDir = (): string => sharedPath('models', 'wx-tiny-en-synth');
