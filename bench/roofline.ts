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
import { nativeInt8Fast } from '../daemon/engine/native-weights.js';
import { native } from '../daemon/native.js';
import { fmt, median, table, type BenchSuite, sharedDir } from './util.js';

const addon = native();
const shared = sharedDir();

interface Limits {
  dotsPerNs1: number;
  dotsPerNs2: number;
  gbPerS1: number;
  gbPerS2: number;
}

/** Medians of a few runs each: the machine is shared and noisy. */
function measureLimits(runs: number): Limits {
  const peak = (threads: number) => median(Array.from({ length: runs }, () => addon.vnniPeak(threads, 2e8).dotsPerNs as number));
  const read = (threads: number) => median(Array.from({ length: runs }, () => addon.readBandwidth(256 * 2 ** 20, threads, 3).bytesPerNs as number));
  return { dotsPerNs1: peak(1), dotsPerNs2: peak(2), gbPerS1: read(1), gbPerS2: read(2) };
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
    const limits = measureLimits(runs);
    console.log(table(['ceiling', '1 thread', '2 threads'], [
      ['int8 dot products (64 multiply-adds each) per ns', fmt(limits.dotsPerNs1, 2), fmt(limits.dotsPerNs2, 2)],
      ['memory read, GB/s (256 MB buffer)', fmt(limits.gbPerS1, 1), fmt(limits.gbPerS2, 1)],
    ]));

    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'wx-bench-roofline-'));
    try {
      await importModel(path.join(shared, 'models', 'wx-tiny-en-synth'), { home, name: 'tiny', precision: 'int8' });
      const model = await WhisperModel.load(path.join(home, 'models', 'tiny'), { precision: 'int8', threads });
      try {
        const d = model.dims;
        const melBytes = fs.readFileSync(path.join(shared, 'fixtures', 'reference', 'fx-multi.mel.f32'));
        const mel = new Float32Array(melBytes.buffer.slice(melBytes.byteOffset, melBytes.byteOffset + melBytes.byteLength));

        // Encoder: one 30-s window, each part's time (median over runs) against its dot products.
        await model.encode(mel, 1);
        const perRun: EncoderPartTimes[] = [];
        for (let i = 0; i < runs; i++) {
          const parts = emptyEncoderPartTimes();
          await model.encode(mel, 1, { parts });
          perRun.push(parts);
        }
        const P = d.nAudioCtx;
        const dh = d.dModel / d.encoderHeads;
        const L = d.encoderLayers;
        const linear = (n: number, k: number) => (L * P * n * k) / 64;
        const ap = addon.windowAttendParts as { query: number; weights: number };
        // Per query and head: q·Kᵀ over tiles of 16 positions × 4 dims per part, P·V over 4
        // positions × 16 dims per part (native/src/cross_attention.cc).
        const attention = L * P * d.encoderHeads * (Math.ceil(P / 16) * (dh / 4) * ap.query + Math.ceil(P / 4) * (dh / 16) * ap.weights);
        const dots: Partial<Record<keyof EncoderPartTimes, number>> = {
          qkv: linear(3 * d.dModel, d.dModel),
          attention,
          out: linear(d.dModel, d.dModel),
          fc1: linear(d.encoderFfn, d.dModel),
          fc2: linear(d.dModel, d.encoderFfn),
          cross: (d.decoderLayers * 2 * P * d.dModel * d.dModel) / 64,
        };
        const names: Record<keyof EncoderPartTimes, string> = {
          stem: 'conv stem (ONNX Runtime, float32)',
          qkv: 'q/k/v linear + LayerNorm',
          attention: 'self-attention (int8, 2-part operands)',
          out: 'attention output linear',
          fc1: 'MLP up + GELU',
          fc2: 'MLP down',
          cross: 'final LayerNorm + cross K/V linears',
        };
        let totalMs = 0;
        let int8Ms = 0;
        let int8Dots = 0;
        const rows = (Object.keys(names) as (keyof EncoderPartTimes)[]).map((k) => {
          const ms = median(perRun.map((r) => r[k]));
          totalMs += ms;
          const n = dots[k];
          if (n === undefined) return [names[k], fmt(ms, 1), '—', '—', '—'];
          int8Ms += ms;
          int8Dots += n;
          const rate = n / (ms * 1e6);
          return [names[k], fmt(ms, 1), fmt(n / 1e6, 1), fmt(rate, 2), `${fmt((100 * rate) / limits.dotsPerNs2, 0)}%`];
        });
        const rate = int8Dots / (int8Ms * 1e6);
        rows.push(['all int8 parts', fmt(int8Ms, 1), fmt(int8Dots / 1e6, 1), fmt(rate, 2), `${fmt((100 * rate) / limits.dotsPerNs2, 0)}%`]);
        console.log(`\nEncoder, one 30-s window (${runs} runs, medians; ${fmt(totalMs, 1)} ms in all):\n`);
        console.log(table(['part', 'ms', 'dot products (M)', 'per ns', 'of the 2-thread peak'], rows));
        console.log(`At the peak these dot products alone would take ${fmt(int8Dots / (limits.dotsPerNs2 * 1e6), 1)} ms a window.`);

        // Decoder: bytes a step reads that are not in cache, against the read bandwidth.
        const v = d.nVocab;
        const f = d.decoderFfn;
        // int8 weights plus one float32 scale per block of 32.
        const packed = (n: number, k: number) => Math.ceil(n / 32) * 32 * k * (1 + 4 / 32);
        const layerBytes = d.decoderLayers * (packed(3 * d.dModel, d.dModel) + 3 * packed(d.dModel, d.dModel) + packed(f, d.dModel) + packed(d.dModel, f));
        const tokenBytes = packed(v, d.dModel);
        const stride = Math.ceil(P / 16) * 16;
        const crossRowBytes = d.decoderLayers * 2 * d.decoderHeads * (stride * (d.dModel / d.decoderHeads) + 4 * (2 * stride + d.dModel / d.decoderHeads));
        const steps = 40;
        const enc = await model.encode(mel, 1);
        const decRows: (string | number)[][] = [];
        const perToken: Record<number, number> = {};
        for (const B of [1, 8]) {
          const times: number[] = [];
          for (let r = 0; r < runs; r++) {
            const batch = model.newBatch(B, 64);
            const ids = Array.from({ length: B }, () => batch.add(enc, 0));
            for (const id of ids) await batch.step([id], [[50257]], [0]);
            const t0 = performance.now();
            for (let s = 0; s < steps; s++) await batch.step(ids, ids.map(() => [262 + s]), [0]);
            times.push((performance.now() - t0) / steps);
          }
          const stepMs = median(times);
          perToken[B] = stepMs / B;
          // Each row's self-attention cache (float32 keys and values, ~`steps` positions by the end).
          const selfBytes = B * d.decoderLayers * 2 * (steps / 2) * d.dModel * 4;
          const bytes = layerBytes + tokenBytes + B * crossRowBytes + selfBytes;
          const floorMs = bytes / (limits.gbPerS2 * 1e6);
          decRows.push([`batch ${B}`, fmt(bytes / 2 ** 20, 1), fmt(stepMs, 2), fmt(stepMs / B, 3), fmt(bytes / (stepMs * 1e6), 1), fmt(floorMs / B, 3), `${fmt((100 * floorMs) / stepMs, 0)}%`]);
        }
        console.log(`\nDecoder step (${steps} steps after the prompt, ${runs} runs, medians): per step ${fmt(layerBytes / 2 ** 20, 1)} MB of layer weights, ` +
          `${fmt(tokenBytes / 2 ** 20, 1)} MB of token table, ${fmt(crossRowBytes / 2 ** 20, 2)} MB of cross keys/values per row:\n`);
        console.log(table(['rows', 'MB read per step', 'ms per step', 'ms per token', 'GB/s', 'floor ms per token', 'of the floor'], decRows));
        const bytes1 = layerBytes + tokenBytes + crossRowBytes;
        const bytes8 = layerBytes + tokenBytes + 8 * crossRowBytes;
        console.log(`Batch 8 ÷ batch 1 tokens/s: ${fmt(perToken[1]! / perToken[8]!, 2)}× measured; reading alone bounds it at ${fmt((8 * bytes1) / bytes8, 2)}× ` +
          '(each row reads its own window\'s keys and values).');
      } finally {
        await model.close();
      }
    } finally {
      fs.rmSync(home, { recursive: true, force: true });
    }
  },
};
