// Engine benchmark: import time, model load time, encoder ms per 30-s window (batch 1 and 4),
// decoder ms per token (batch 1, 4, 8), RSS with the model loaded — FP32, INT8, and INT8 in ONNX
// Runtime alone (no native int8 encoder linears or decoder step), each measured in its own child
// process so memory numbers are the model's own; then the int8 linear kernel per layer shape
// against ONNX Runtime's MatMulNBits.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { importModel } from '../daemon/engine/import.js';
import { WhisperModel } from '../daemon/engine/model.js';
import { graphFileList, readManifest, type Precision } from '../daemon/engine/manifest.js';
import { LayerBuilder } from '../daemon/engine/graphs/layers.js';
import { Graph, encodeModel } from '../daemon/engine/onnx/graph.js';
import { quantizeRowBlocks } from '../daemon/engine/quant.js';
import { ortCpuBackend } from '../daemon/engine/ort-backend.js';
import { nativeInt8Fast } from '../daemon/engine/native-weights.js';
import { native } from '../daemon/native.js';
import { argmax, logSumExp } from '../daemon/engine/decoding/numerics.js';
import { fmt, median, rssMb, table, timeDecoderSteps, timeRuns, type BenchSuite, sharedDir } from './util.js';

const here = fileURLToPath(import.meta.url);
const shared = sharedDir();

/** `auto`: native INT8 encoder (linears and attention) and decoder step where possible;
 *  `graph-attention`: the same with ONNX Runtime's float32 encoder attention; `graphs`: ONNX Runtime only. */
type EncoderMode = 'auto' | 'graph-attention' | 'graphs';

interface ChildResult {
  precision: Precision;
  label: string;
  importMs: number;
  loadMs: number;
  encoderMs: Record<number, number>;
  decoderMs: Record<number, number>;
  rssLoadedMb: number;
  peakRssMb: number;
  fileMb: number;
}

/** Runs in a fresh child process: the model's own load time and memory. */
async function measure(precision: Precision, encoder: EncoderMode, runs: number, threads: number, dir: string, importMs: number): Promise<ChildResult> {
  {
    const files = readManifest(dir).files[precision]!;
    const t1 = performance.now();
    const model = await WhisperModel.load(dir, {
      precision,
      threads,
      ...(encoder === 'graphs' ? { encoder: 'whole', decoder: 'graphs' } : encoder === 'graph-attention' ? { encoderAttention: 'graph' } : {}),
    });
    // Files this way of running reads (the encoder's data file serves both ways).
    const unused = 'native' in model.encoder
      ? [files.encoder, ...(model.encoder.native.nativeAttention ? [files.encoderNative!.attention] : []), ...(model.encoder.native.nativeStem ? [files.encoderNative!.stem] : [])]
      : files.encoderNative ? [files.encoderNative.stem, files.encoderNative.attention] : [];
    if ('native' in model.decoder) unused.push(...(files.decoderSegments ?? []));
    const fileMb = graphFileList(files).filter((f) => !unused.includes(f)).reduce((s, f) => s + fs.statSync(path.join(dir, f)).size, 0) / 2 ** 20;
    const label = precision === 'fp32' ? 'fp32' : !('native' in model.encoder) ? 'int8, ORT only' : model.encoder.native.nativeAttention ? 'int8' : 'int8, ORT attention';
    const loadMs = performance.now() - t1;
    const rssLoadedMb = rssMb();
    const melFile = path.join(shared, 'fixtures', 'reference', 'fx-multi.mel.f32');
    const b = fs.readFileSync(melFile);
    const one = new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
    const encoderMs: Record<number, number> = {};
    let enc4 = await model.encode(one, 1);
    for (const B of [1, 4]) {
      const mel = new Float32Array(one.length * B);
      for (let i = 0; i < B; i++) mel.set(one, i * one.length);
      const times = await timeRuns(async () => {
        enc4 = await model.encode(mel, B);
      }, runs);
      encoderMs[B] = median(times) / B;
    }
    const decoderMs: Record<number, number> = {};
    const steps = 32;
    for (const B of [1, 4, 8]) decoderMs[B] = (await timeDecoderSteps(model, enc4, B, steps, runs)) / B;
    await model.close();
    return { precision, label, importMs, loadMs, encoderMs, decoderMs, rssLoadedMb, peakRssMb: process.resourceUsage().maxRSS / 1024, fileMb };
  }
}

export const suite: BenchSuite = {
  name: 'engine',
  description: 'Whisper engine on the shared tiny model, 2 threads: import, load, encoder per window, decoder per token, RSS',
  async run(args) {
    const runs = args.includes('--quick') ? 3 : 7;
    const results: ChildResult[] = [];
    const home = fs.mkdtempSync(path.join(os.tmpdir(), 'wx-bench-engine-'));
    try {
      for (const precision of ['fp32', 'int8'] as Precision[]) {
        const t0 = performance.now();
        const installed = await importModel(path.join(shared, 'models', 'wx-tiny-en-synth'), { home, name: `tiny-${precision}`, precision });
        const importMs = performance.now() - t0;
        const modes: EncoderMode[] = precision === 'int8' && nativeInt8Fast ? ['auto', 'graph-attention', 'graphs'] : ['auto'];
        for (const mode of modes) {
          const out = execFileSync(process.execPath, [here, '--child', precision, mode, String(runs), installed.dir, String(importMs)], { encoding: 'utf8', maxBuffer: 1 << 20 });
          results.push(JSON.parse(out.trim().split('\n').pop()!) as ChildResult);
        }
      }
    } finally {
      fs.rmSync(home, { recursive: true, force: true });
    }
    console.log(table(
      ['engine', 'graphs MB', 'import s', 'load ms', 'enc ms/win b1', 'enc ms/win b4', 'dec ms/tok b1', 'b4', 'b8', 'tok/s b8 ÷ b1', 'RSS loaded MB', 'peak RSS MB'],
      results.map((r) => [r.label, fmt(r.fileMb), fmt(r.importMs / 1000, 2), fmt(r.loadMs, 0), fmt(r.encoderMs[1]!, 0), fmt(r.encoderMs[4]!, 0), fmt(r.decoderMs[1]!, 2), fmt(r.decoderMs[4]!, 2), fmt(r.decoderMs[8]!, 2), fmt(r.decoderMs[1]! / r.decoderMs[8]!, 1), fmt(r.rssLoadedMb, 0), fmt(r.peakRssMb, 0)]),
    ));
    const [f, q] = results;
    console.log(`\nINT8 vs FP32: encoder ${fmt(f!.encoderMs[1]! / q!.encoderMs[1]!, 2)}×, decoder b1 ${fmt(f!.decoderMs[1]! / q!.decoderMs[1]!, 2)}×, graphs ${fmt((100 * q!.fileMb) / f!.fileMb, 0)}% of FP32 size`);
    const a = results.find((r) => r.label === 'int8, ORT attention');
    if (a) console.log(`INT8 encoder, our int8 attention vs ONNX Runtime's float32 attention: ${fmt(a.encoderMs[1]! / q!.encoderMs[1]!, 2)}× per window at b1, ${fmt(a.encoderMs[4]! / q!.encoderMs[4]!, 2)}× at b4`);
    const w = results.find((r) => r.label === 'int8, ORT only');
    if (w) {
      console.log(`INT8 native kernels vs ONNX Runtime alone: encoder ${fmt(w.encoderMs[1]! / q!.encoderMs[1]!, 2)}× per window at b1, ${fmt(w.encoderMs[4]! / q!.encoderMs[4]!, 2)}× at b4; decoder ${fmt(w.decoderMs[1]! / q!.decoderMs[1]!, 2)}× per token at b1, ${fmt(w.decoderMs[8]! / q!.decoderMs[8]!, 2)}× at b8`);
    }
    await linearKernels(runs);
    logitRowReductions(runs);
  },
};

/** The encoder's linear shapes for one 30-s window of tiny (1500 rows): our int8 kernel against
 *  ONNX Runtime's MatMulNBits (accuracy level 4) on the same block-quantised weights. */
async function linearKernels(runs: number): Promise<void> {
  const addon = native();
  const M = 1500;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wx-bench-linear-'));
  const rows: string[][] = [];
  try {
    for (const [what, K, N] of [['q/k/v', 384, 1152], ['out', 384, 384], ['fc1', 384, 1536], ['fc2', 1536, 384]] as const) {
      let seed = K * 7 + N;
      const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
      const w = Float32Array.from({ length: N * K }, () => rnd() * 0.05);
      const bias = Float32Array.from({ length: N }, () => rnd() * 0.1);
      const x = Float32Array.from({ length: M * K }, () => rnd());
      const g = new Graph('linear');
      const L = new LayerBuilder(g);
      g.output(L.linear(g.input('x', 'float32', [M, K]), 'l', w, N, K, bias, 'int8'), 'y', 'float32', [M, N]);
      const file = path.join(dir, `${what.replace(/\//g, '')}.onnx`);
      fs.writeFileSync(file, encodeModel(g));
      const ort = await ortCpuBackend.load(file, { threads: 2 });
      const q = quantizeRowBlocks(w, N, K, 32);
      const packed = addon.linear8Pack(q.values, q.scales, bias, N, K) as object;
      const out = new Float32Array(M * N);
      const ortMs = median(await timeRuns(async () => void (await ort.run({ x: { type: 'float32', data: x, dims: [M, K] } }, ['y'])), runs));
      const nativeMs = median(await timeRuns(async () => addon.linear8Run(packed, x, M, out, 0, 2), runs));
      await ort.close();
      rows.push([`${what} ${K}→${N}`, fmt(ortMs, 2), fmt(nativeMs, 2), fmt(ortMs / nativeMs, 2), fmt((2 * M * K * N) / nativeMs / 1e6, 0)]);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  console.log(`\nint8 linears, ${M} rows (one window), 2 threads${nativeInt8Fast ? '' : ' (this build has no int8 dot products: portable kernel)'}:`);
  console.log(table(['layer', 'ORT MatMulNBits ms', 'native ms', '×', 'native GOP/s'], rows));
}

/** The per-row work of every decoder step outside the graph: log Σ exp (once per row and token:
 *  the timestamp rule's, reused for the token's log-probability) and the arg-max over a
 *  vocabulary-sized row, against Math.exp in a loop. */
function logitRowReductions(runs: number): void {
  const V = 51864;
  const row = new Float32Array(V);
  let seed = 1;
  for (let i = 0; i < V; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    row[i] = (seed / 2 ** 32) * 24 - 12; // logits spread like the test model's
  }
  const perCallUs = (fn: () => number, calls: number) =>
    median(Array.from({ length: runs }, () => {
      const t = performance.now();
      let sink = 0;
      for (let i = 0; i < calls; i++) sink += fn();
      if (Number.isNaN(sink)) throw new Error('unreachable');
      return ((performance.now() - t) * 1000) / calls;
    }));
  const jsLogSumExp = () => {
    let m = -Infinity;
    for (let i = 0; i < V; i++) if (row[i]! > m) m = row[i]!;
    let s = 0;
    for (let i = 0; i < V; i++) s += Math.exp(row[i]! - m);
    return m + Math.log(s);
  };
  const native = perCallUs(() => logSumExp(row), 2000);
  const js = perCallUs(jsLogSumExp, 100);
  console.log(`\nlogit row of ${V}: log Σ exp ${fmt(native, 1)} µs (Math.exp loop: ${fmt(js, 0)} µs, ${fmt(js / native, 0)}×), argmax ${fmt(perCallUs(() => argmax(row), 2000), 1)} µs`);
}

if (process.argv[2] === '--child') {
  const r = await measure(process.argv[3] as Precision, process.argv[4] as EncoderMode, Number(process.argv[5] ?? 5), 2, process.argv[6]!, Number(process.argv[7]));
  console.log(JSON.stringify(r));
}
