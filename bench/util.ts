// Shared helpers for `npm run bench`: timing statistics, memory, and the machine description
// that goes next to every number in bench/RESULTS.md.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { projectRoot } from '../daemon/paths.js';
import type { EncodedWindows, WhisperModel } from '../daemon/engine/model.js';

export function median(xs: readonly number[]): number {
  return quantile(xs, 0.5);
}

export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

/** Runs `fn` `warmup` times untimed, then `runs` times; returns each run's milliseconds. */
export async function timeRuns(fn: () => unknown | Promise<unknown>, runs: number, warmup = 1): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const out: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    out.push(performance.now() - t0);
  }
  return out;
}

export const rssMb = (): number => process.memoryUsage().rss / 2 ** 20;
/** Peak resident set size of this process so far (MB). */
export const peakRssMb = (): number => process.resourceUsage().maxRSS / 1024;

export function machine(): string {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  return `${os.platform()} ${os.arch()}, ${cpu}, ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
}

export function fmt(x: number, digits = 1): string {
  return Number.isFinite(x) ? x.toFixed(digits) : 'n/a';
}

/** Prints a table with aligned columns. */
export function table(header: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const cells = [header, ...rows].map((r) => r.map(String));
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]) => '| ' + r.map((c, i) => c.padEnd(widths[i]!)).join(' | ') + ' |';
  return [line(cells[0]!), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...cells.slice(1).map(line)].join('\n');
}

export interface BenchSuite {
  name: string;
  description: string;
  run(args: readonly string[]): Promise<void>;
}

/** `../shared` beside the checkout (or `WX_SHARED_DIR`): models, audio and references. */
export function sharedDir(): string {
  const dir = process.env.WX_SHARED_DIR ? path.resolve(process.env.WX_SHARED_DIR) : path.resolve(projectRoot(), '..', 'shared');
  if (!fs.existsSync(path.join(dir, 'README.md'))) throw new Error(`../shared is missing (looked in ${dir}): benchmarks need the shared model and audio`);
  return dir;
}

/** A file in `../shared`; fails loudly when it is absent. */
export function sharedFile(...parts: string[]): string {
  const file = path.join(sharedDir(), ...parts);
  if (!fs.existsSync(file)) throw new Error(`../shared is missing ${parts.join('/')} (${file})`);
  return file;
}

/** Median ms per decoder step of `rows` rows on one encoded window: each row takes one token,
 *  then `steps` steps are timed, `runs` times. Any token ids time a step alike; these are
 *  ordinary text tokens of every Whisper vocabulary. */
export async function timeDecoderSteps(model: WhisperModel, enc: EncodedWindows, rows: number, steps: number, runs: number): Promise<number> {
  const perStep: number[] = [];
  for (let r = 0; r < runs; r++) {
    const batch = model.newBatch(rows, 64);
    const ids = Array.from({ length: rows }, () => batch.add(enc, 0));
    for (const id of ids) await batch.step([id], [[262]], [0]);
    const t0 = performance.now();
    for (let s = 0; s < steps; s++) await batch.step(ids, ids.map(() => [262 + s]), [0]);
    perStep.push((performance.now() - t0) / steps);
  }
  return median(perStep);
}
