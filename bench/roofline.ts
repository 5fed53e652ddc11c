// How close the INT8 engine runs to what this machine can do. Two ceilings are measured here
// first (native/src/machine_limits.cc): the rate of int8 dot-product instructions (AVX-512 VNNI,
// 64 multiply-adds each) with nothing else to do, and the rate at which the cores read memory
// that is not in cache. Then each part of an encoder window is timed and its dot products
// counted — the encoder is compute-bound, so its parts are judged against the first — and each
// decoder step's bytes are counted (weights, token table, each row's cross-attention keys and
// values) — a step is memory-bound, so it is judged against the second. The floors this gives
// are what any kernel with the same numerics would need on this machine.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { importModel } from '../daemon/engine/import.js';
import { WhisperModel } from '../daemon/engine/model.js';
import { emptyEncoderPartTimes, type EncoderPartTimes } from '../daemon/engine/encoder-int8.js';
import { crossBytesPerWindow } from '../daemon/engine/limits.js';
import { nativeInt8Fast } from '../daemon/engine/native-weights.js';
import { native } from '../daemon/native.js';
import { fmt, median, table, timeDecoderSteps, type BenchSuite, sharedDir } from './util.js';

const addon = native();
const shared = sharedDir();

interface Limits {
  dotsPerNs1: number;
  dotsPerNs2: number;
  gbPerS1: number;
  gbPerS2: number;
}

/** The best of a few runs each: a ceiling is what the machine reached, and on a shared machine
 *  a neighbour on the other core lowers single runs (a 2-thread probe once gave 4.3 instead of
 *  7.3). `into` keeps the best seen over several calls. */
function measureLimits(runs: number, into?: Limits): Limits {
  const best = (f: () => number) => Math.max(...Array.from({ length: runs }, f));
  const peak = (threads: number) => best(() => addon.vnniPeak(threads, 2e8).dotsPerNs as number);
  const read = (threads: number) => best(() => addon.readBandwidth(256 * 2 ** 20, threads, 3).bytesPerNs as number);
  const now = { dotsPerNs1: peak(1), dotsPerNs2: peak(2), gbPerS1: read(1), gbPerS2: read(2) };
  if (!into) return now;
  for (const k of Object.keys(now) as (keyof Limits)[]) into[k] = Math.max(into[k], now[k]);
  return into;
}

export const suite: BenchSuite = {
  name: 'roofline',
  description: 'the INT8 engine against this machine\'s int8 dot-product peak and memory read bandwidth (tiny, 2 threads)',
  async run(args) {
    if (!nativeInt8Fast) {
      console.log('skipped: this CPU has no int8 dot-product instructions (AVX-512 VNNI), so the native kernels do not run');
      return;
    }
    const runs = args.includes('--quick') ? 3 : 5;
    const threads = 2;
    // Measured before and after the engine, the best of both: the fractions below are of it.
    const limits = measureLimits(runs);
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'wx-bench-roofline-'));
    let encoder: { name: string; ms: number; dots?: number }[] = [];
    let decoder: { rows: number; bytes: number; stepMs: number }[] = [];
    let bytesPerStep = { layers: 0, tokens: 0, crossRow: 0 };
    const steps = 40;
    try {
      await importModel(path.join(shared, 'models', 'wx-tiny-en-synth'), { home, name: 'tiny', precision: 'int8' });
      const model = await WhisperModel.load(path.join(home, 'models', 'tiny'), { precision: 'int8', threads });
      try {
        const melBytes = fs.readFileSync(path.join(shared, 'fixtures', 'reference', 'fx-multi.mel.f32'));
        const mel = new Float32Array(melBytes.buffer.slice(melBytes.byteOffset, melBytes.byteOffset + melBytes.byteLength));
        encoder = await measureEncoder(model, mel, runs);
        ({ decoder, bytesPerStep } = await measureDecoder(model, mel, runs, steps));
      } finally {
        await model.close();
      }
    } finally {
      fs.rmSync(home, { recursive: true, force: true });
    }
    measureLimits(runs, limits);

    console.log(table(['ceiling (best of runs before and after)', '1 thread', '2 threads'], [
      ['int8 dot products (64 multiply-adds each) per ns', fmt(limits.dotsPerNs1, 2), fmt(limits.dotsPerNs2, 2)],
      ['memory read, GB/s (256 MB buffer)', fmt(limits.gbPerS1, 1), fmt(limits.gbPerS2, 1)],
    ]));

    const ofPeak = (dots: number, ms: number) => `${fmt((100 * dots) / (ms * 1e6) / limits.dotsPerNs2, 0)}%`;
    const totalMs = encoder.reduce((sum, p) => sum + p.ms, 0);
    const int8 = encoder.filter((p) => p.dots !== undefined);
    const int8Ms = int8.reduce((sum, p) => sum + p.ms, 0);
    const int8Dots = int8.reduce((sum, p) => sum + p.dots!, 0);
    console.log(`\nEncoder, one 30-s window (${runs} runs, medians; ${fmt(totalMs, 1)} ms in all):\n`);
    console.log(table(['part', 'ms', 'dot products (M)', 'per ns', 'of the 2-thread peak'], [
      ...encoder.map((p) => p.dots === undefined
        ? [p.name, fmt(p.ms, 1), '—', '—', '—']
        : [p.name, fmt(p.ms, 1), fmt(p.dots / 1e6, 1), fmt(p.dots / (p.ms * 1e6), 2), ofPeak(p.dots, p.ms)]),
      ['all int8 parts', fmt(int8Ms, 1), fmt(int8Dots / 1e6, 1), fmt(int8Dots / (int8Ms * 1e6), 2), ofPeak(int8Dots, int8Ms)],
    ]));
    console.log(`At the peak these dot products alone would take ${fmt(int8Dots / (limits.dotsPerNs2 * 1e6), 1)} ms a window.`);

    const mb = (bytes: number) => fmt(bytes / 2 ** 20, 1);
    console.log(`\nDecoder step (${steps} steps after the prompt, ${runs} runs, medians): per step ${mb(bytesPerStep.layers)} MB of layer weights, ` +
      `${mb(bytesPerStep.tokens)} MB of token table, ${fmt(bytesPerStep.crossRow / 2 ** 20, 2)} MB of cross keys/values per row:\n`);
    console.log(table(['rows', 'MB read per step', 'ms per step', 'ms per token', 'GB/s', 'floor ms per token', 'of the floor'], decoder.map((r) => {
      const floorMs = r.bytes / (limits.gbPerS2 * 1e6);
      return [`batch ${r.rows}`, mb(r.bytes), fmt(r.stepMs, 2), fmt(r.stepMs / r.rows, 3), fmt(r.bytes / (r.stepMs * 1e6), 1), fmt(floorMs / r.rows, 3), `${fmt((100 * floorMs) / r.stepMs, 0)}%`];
    })));
    const one = decoder.find((r) => r.rows === 1)!;
    const eight = decoder.find((r) => r.rows === 8)!;
    const shared1 = bytesPerStep.layers + bytesPerStep.tokens;
    console.log(`Batch 8 ÷ batch 1 tokens/s: ${fmt((8 * one.stepMs) / eight.stepMs, 2)}× measured; reading alone bounds it at ` +
      `${fmt((8 * (shared1 + bytesPerStep.crossRow)) / (shared1 + 8 * bytesPerStep.crossRow), 2)}× (each row reads its own window's keys and values).`);
  },
};

/** Each part of one 30-s window (median over runs) and the int8 dot products it issues. */
async function measureEncoder(model: WhisperModel, mel: Float32Array, runs: number): Promise<{ name: string; ms: number; dots?: number }[]> {
  const d = model.dims;
  await model.encode(mel, 1);
  const perRun: EncoderPartTimes[] = [];
  for (let i = 0; i < runs; i++) {
    const parts = emptyEncoderPartTimes();
    await model.encode(mel, 1, { parts });
    perRun.push(parts);
  }
  const P = d.nAudioCtx;
  const dh = d.dModel / d.encoderHeads;
  const linear = (n: number, k: number) => (d.encoderLayers * P * n * k) / 64;
  const ap = addon.windowAttendParts as { query: number; weights: number };
  // Per query and head: q·Kᵀ in tiles of 16 positions × 4 dims per part, P·V in steps of 4
  // positions × 16 dims per part (native/src/cross_attention.cc).
  const attention = d.encoderLayers * P * d.encoderHeads * (Math.ceil(P / 16) * (dh / 4) * ap.query + Math.ceil(P / 4) * (dh / 16) * ap.weights);
  // The stem's two 3-tap convolutions as int8 linears (inputs padded to blocks of 32), when the
  // model has its tensors; else ONNX Runtime's float32 graph (no int8 dot products to count).
  const nativeStem = 'native' in model.encoder && model.encoder.native.nativeStem;
  const stemDots = (2 * P * d.dModel * Math.ceil((3 * d.nMels) / 32) * 32 + P * d.dModel * 3 * d.dModel) / 64;
  const parts: [keyof EncoderPartTimes, string, number | undefined][] = [
    nativeStem ? ['stem', 'conv stem (int8) + GELU + positions', stemDots] : ['stem', 'conv stem (ONNX Runtime, float32)', undefined],
    ['qkv', 'q/k/v linear + LayerNorm', linear(3 * d.dModel, d.dModel)],
    ['attention', `self-attention (int8, ${ap.query}+${ap.weights}-part operands)`, attention],
    ['out', 'attention output linear', linear(d.dModel, d.dModel)],
    ['fc1', 'MLP up + GELU', linear(d.encoderFfn, d.dModel)],
    ['fc2', 'MLP down', linear(d.dModel, d.encoderFfn)],
    ['cross', 'final LayerNorm + cross K/V linears (+ their int8 form)', (d.decoderLayers * 2 * P * d.dModel * d.dModel) / 64],
  ];
  return parts.map(([k, name, dots]) => ({ name, ms: median(perRun.map((r) => r[k])), ...(dots === undefined ? {} : { dots }) }));
}

/** Decoder steps at batch 1 and 8 (median over runs) and the bytes each reads that are not in
 *  cache: the layer weights and the token table once per step, each row's cross keys/values. */
async function measureDecoder(model: WhisperModel, mel: Float32Array, runs: number, steps: number) {
  const d = model.dims;
  // int8 weights plus one float32 scale per block of 32.
  const packed = (n: number, k: number) => Math.ceil(n / 32) * 32 * k * (1 + 4 / 32);
  const bytesPerStep = {
    layers: d.decoderLayers * (packed(3 * d.dModel, d.dModel) + 3 * packed(d.dModel, d.dModel) + packed(d.decoderFfn, d.dModel) + packed(d.dModel, d.decoderFfn)),
    tokens: packed(d.nVocab, d.dModel),
    crossRow: crossBytesPerWindow(d, 'int8'),
  };
  const enc = await model.encode(mel, 1);
  const decoder: { rows: number; bytes: number; stepMs: number }[] = [];
  for (const B of [1, 8]) {
    const stepMs = await timeDecoderSteps(model, enc, B, steps, runs);
    // Each row's self-attention cache too (float32 keys and values, ~steps / 2 positions on average).
    const selfBytes = B * d.decoderLayers * 2 * (steps / 2) * d.dModel * 4;
    decoder.push({ rows: B, bytes: bytesPerStep.layers + bytesPerStep.tokens + B * bytesPerStep.crossRow + selfBytes, stepMs });
  }
  return { decoder, bytesPerStep };
}
