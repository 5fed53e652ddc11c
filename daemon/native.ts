// The one place the native addon is loaded. Everything else imports typed wrappers
// (daemon/audio/ …), never the .node file.
import { createRequire } from 'node:module';
import path from 'node:path';
import { projectRoot } from './paths.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type NativeAddon = Record<string, any>;

let cached: NativeAddon | null = null;

export function native(): NativeAddon {
  if (cached) return cached;
  const file = path.join(projectRoot(), 'build', 'Release', 'wx_native.node');
  const require = createRequire(import.meta.url);
  try {
    cached = require(file) as NativeAddon;
  } catch (err) {
    throw new Error(`wx: cannot load the native addon ${file} (run \`npm run build\`): ${(err as Error).message}`);
  }
  return cached;
}
