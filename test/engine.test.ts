// The engine against the reference outputs in ../shared: import, encoder parity, greedy parity
// (with and without timestamps), and the import of layouts the shared model does not have.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importModel } from '../daemon/engine/import.js';
import { EncodedWindows, WhisperModel } from '../daemon/engine/model.js';
import { nativeInt8Fast } from '../daemon/engine/native-weights.js';
import { windowAttentionFast } from '../daemon/engine/cross-int8.js';
import { emptyEncoderPartTimes } from '../daemon/engine/encoder-int8.js';
import { graphFileList, type Precision } from '../daemon/engine/manifest.js';
import { SafetensorsCheckpoint } from '../daemon/engine/model/safetensors.js';
import { buildDecoderGraph } from '../daemon/engine/graphs/decoder.js';
import { encodeModel } from '../daemon/engine/onnx/graph.js';
import { WhisperTokenizer } from '../daemon/engine/tokenizer.js';
import { decodeWindows, decodingSetup } from '../daemon/engine/decoding/task.js';
import { logSumExp } from '../daemon/engine/decoding/numerics.js';
import { WxError } from '../daemon/errors.js';
import { repoRoot, sharedPath, tinyModelDir } from './shared.js';
import { writeSafetensors, writeSyntheticCheckpoint } from './helpers/synthetic-checkpoint.js';

interface RefMode { prompt: number[]; tokens: number[]; top5_logits_first_steps?: [number, number][][] }
type Reference = Record<string, { greedy_notimestamps: RefMode; greedy_timestamps: RefMode; mel_shape: number[]; encoder_shape: number[] }>;

const refDir = () => sharedPath('fixtures', 'reference');
const readF32 = (file: string) => {
  const b = fs.readFileSync(file);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};

let home: string;
let reference: Reference;
let fp32: WhisperModel;
let tok: WhisperTokenizer;

beforeAll(async () => {
  reference = JSON.parse(fs.readFileSync(path.join(refDir(), 'reference.json'), 'utf8')) as Reference;
  home = fs.mkdtempSync(path.join(os.tmpdir(), 'wx-engine-'));
  const installed = await importModel(tinyModelDir(), { home, name: 'tiny', precision: 'both' });
  fp32 = await WhisperModel.load(installed.dir, { precision: 'fp32', threads: 2 });
  tok = WhisperTokenizer.fromModelDir(installed.dir);
});

afterAll(async () => {
  await fp32?.close();
  if (home) fs.rmSync(home, { recursive: true, force: true });
});

describe('import', () => {
  it('writes a manifest with dims from config.json and INT8 graphs ≤ 30% of FP32', () => {
    const dir = path.join(home, 'models', 'tiny');
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
    const cfg = JSON.parse(fs.readFileSync(path.join(tinyModelDir(), 'config.json'), 'utf8'));
    expect(manifest.dims.dModel).toBe(cfg.d_model);
    expect(manifest.dims.nVocab).toBe(cfg.vocab_size);
    expect(manifest.dims.decoderLayers).toBe(cfg.decoder_layers);
    expect(manifest.inputs['model.safetensors']).toMatch(/^[0-9a-f]{64}$/);
    const size = (p: Precision) => graphFileList(manifest.files[p]).reduce((s, f) => s + fs.statSync(path.join(dir, f)).size, 0);
    expect(size('int8') / size('fp32')).toBeLessThanOrEqual(0.3);
    // INT8 decoders are cut at their cross-attentions (run natively over int8 keys/values).
    expect(manifest.files.int8.decoderSegments).toHaveLength(cfg.decoder_layers + 1);
    expect(fs.readdirSync(path.join(home, 'models')).filter((f) => f.startsWith('.import'))).toEqual([]);
  });
});

describe('FP32 parity with the reference', () => {
  it('encoder output of fx-short within 1e-3', async () => {
    const mel = readF32(path.join(refDir(), 'fx-short.mel.f32'));
    const expected = readF32(path.join(refDir(), 'fx-short.encoder.f32'));
    const enc = await fp32.encode(mel, 1, { hidden: true });
    expect(enc.hidden!.length).toBe(expected.length);
    let max = 0;
    for (let i = 0; i < expected.length; i++) max = Math.max(max, Math.abs(enc.hidden![i]! - expected[i]!));
    expect(max).toBeLessThan(1e-3);
  });

  for (const fixture of ['fx-short', 'fx-multi', 'fx-silence']) {
    for (const mode of ['greedy_notimestamps', 'greedy_timestamps'] as const) {
      it(`${fixture} ${mode}: identical tokens, first-step top-5 logits within 2e-3`, async () => {
        const ref = reference[fixture]![mode];
        const mel = readF32(path.join(refDir(), `${fixture}.mel.f32`));
        const enc = await fp32.encode(mel, 1);
        const timestamps = mode === 'greedy_timestamps';
        const [r] = await decodeWindows(fp32, tok, [{ enc, index: 0, options: { rules: 'plain', timestamps }, keepFirstLogits: 12 }]);
        // The prompt we build from the tokenizer is the reference's prompt.
        expect(tok.sotSequence({ timestamps })).toEqual(ref.prompt);
        const tokens = r!.completed ? [...r!.tokens, tok.eot] : r!.tokens;
        expect(tokens).toEqual(ref.tokens);
        for (const [step, top] of (ref.top5_logits_first_steps ?? []).entries()) {
          for (const [id, value] of top) expect(Math.abs(r!.firstLogits![step]![id]! - value)).toBeLessThan(2e-3);
        }
      });
    }
  }

  for (const fixture of ['fx-short', 'fx-multi']) {
    it(`wx debug greedy on ${fixture}.wav (audio → features → tokens) matches the reference`, () => {
      for (const timestamps of [false, true]) {
        const r = spawnSync(process.execPath, [path.join(repoRoot, 'bin', 'wx.js'), 'debug', 'greedy', sharedPath('fixtures', `${fixture}.wav`), '--model', 'tiny', '--precision', 'fp32', ...(timestamps ? ['--timestamps'] : [])], { encoding: 'utf8', env: { ...process.env, WX_HOME: home } });
        expect(r.status, r.stderr).toBe(0);
        const out = JSON.parse(r.stdout) as { tokens: number[]; top5_first_steps: [number, number][][] };
        const ref = reference[fixture]![timestamps ? 'greedy_timestamps' : 'greedy_notimestamps'];
        expect(out.tokens).toEqual(ref.tokens);
        for (const [step, top] of (ref.top5_logits_first_steps ?? []).entries()) {
          expect(out.top5_first_steps[step]!.map(([id]) => id)).toEqual(top.map(([id]) => id));
          top.forEach(([, v], k) => expect(Math.abs(out.top5_first_steps[step]![k]![1] - v)).toBeLessThan(2e-3));
        }
      }
    });
  }

  it('batched decoding gives the same tokens as one row at a time', async () => {
    const mels = ['fx-short', 'fx-multi', 'fx-silence'].map((f) => readF32(path.join(refDir(), `${f}.mel.f32`)));
    const all = new Float32Array(mels.reduce((s, m) => s + m.length, 0));
    mels.reduce((at, m) => (all.set(m, at), at + m.length), 0);
    const enc = await fp32.encode(all, 3);
    const jobs = [0, 1, 2, 1, 0].map((index) => ({ enc, index, options: { timestamps: true } }));
    const together = await decodeWindows(fp32, tok, jobs, { maxRows: 3 });
    const alone = [];
    for (const j of jobs) alone.push((await decodeWindows(fp32, tok, [j], { maxRows: 1 }))[0]!);
    expect(together.map((r) => r.tokens)).toEqual(alone.map((r) => r.tokens));
    expect(together[1]!.tokens.length).toBeGreaterThan(5);
  });

  it('beam search: width 1 is greedy; width 5 gives the same tokens alone and beside other rows, and ranks above greedy', async () => {
    const mels = ['fx-short', 'fx-multi', 'fx-silence'].map((f) => readF32(path.join(refDir(), `${f}.mel.f32`)));
    const all = new Float32Array(mels.reduce((s, m) => s + m.length, 0));
    mels.reduce((at, m) => (all.set(m, at), at + m.length), 0);
    const enc = await fp32.encode(all, 3);
    for (const timestamps of [false, true]) {
      const greedy = await decodeWindows(fp32, tok, [0, 1, 2].map((index) => ({ enc, index, options: { timestamps } })), { maxRows: 1 });
      const one = await decodeWindows(fp32, tok, [0, 1, 2].map((index) => ({ enc, index, options: { timestamps, beamSize: 1 } })), { maxRows: 1 });
      expect(one.map((r) => r.tokens)).toEqual(greedy.map((r) => r.tokens));
      const alone: number[][] = [];
      for (const index of [0, 1, 2]) alone.push((await decodeWindows(fp32, tok, [{ enc, index, options: { timestamps, beamSize: 5 } }], { maxRows: 5 }))[0]!.tokens);
      // Two beams and two greedy rows share a 12-row batch; rows fork, swap and leave around them.
      const mixed = await decodeWindows(fp32, tok, [
        { enc, index: 1, options: { timestamps, beamSize: 5 } },
        { enc, index: 0, options: { timestamps } },
        { enc, index: 0, options: { timestamps, beamSize: 5 } },
        { enc, index: 1, options: { timestamps } },
        { enc, index: 2, options: { timestamps, beamSize: 5 } },
      ], { maxRows: 12 });
      expect([mixed[2]!.tokens, mixed[0]!.tokens, mixed[4]!.tokens]).toEqual(alone);
      expect([mixed[1]!.tokens, mixed[3]!.tokens]).toEqual([greedy[0]!.tokens, greedy[1]!.tokens]);
      // The winner has the best log-probability per token among what the search kept, so never
      // a worse one than the greedy path on these windows.
      const perToken = (r: { sumLogprob: number; tokens: number[] }) => r.sumLogprob / (r.tokens.length + 1);
      for (const i of [0, 1]) expect(perToken(mixed[[2, 0][i]!]!)).toBeGreaterThanOrEqual(perToken(greedy[i]!) - 1e-6);
      // The score the search kept is the winner's true log-probability: its tokens fed at once
      // after the prompt, scored under the same rules (a hypothesis decoded on another's cache
      // would not match).
      for (const [i, index] of [0, 1].entries()) {
        const won = mixed[[2, 0][i]!]!;
        const setup = decodingSetup(tok, fp32, undefined, { timestamps });
        const batch = fp32.newBatch(1);
        const row = batch.add(enc, index);
        const fed = [...setup.prompt, ...won.tokens];
        const gather = won.tokens.map((_, j) => setup.prompt.length - 1 + j);
        const logits = await batch.step([row], [fed], gather);
        let sum = 0;
        won.tokens.forEach((t, j) => {
          const l = logits.slice(j * fp32.dims.nVocab, (j + 1) * fp32.dims.nVocab);
          for (const f of setup.filters) f.apply(l, won.tokens.slice(0, j));
          sum += l[t]! - logSumExp(l);
        });
        expect(Math.abs(sum - won.sumLogprob), `window ${index}`).toBeLessThan(0.02);
      }
    }
    await expect(decodeWindows(fp32, tok, [{ enc, index: 0, options: { beamSize: 0 } }])).rejects.toMatchObject({ code: 'engine.bad_options' });
    await expect(decodeWindows(fp32, tok, [{ enc, index: 0, options: { beamSize: 3, temperature: 0.4 } }])).rejects.toMatchObject({ code: 'engine.bad_options' });
  });

  it('a window encoded with a shorter audio context decodes the same alone, beside full windows, and in a slot that held one', async () => {
    const mels = ['fx-short', 'fx-multi'].map((f) => readF32(path.join(refDir(), `${f}.mel.f32`)));
    const full = await fp32.encode(mels[1]!, 1);
    // fx-short's first 10 s of features: its audio is shorter, so this is the 10-s window's mel.
    const positions = 500;
    const frames = 2 * positions;
    const cropped = new Float32Array(fp32.dims.nMels * frames);
    for (let m = 0; m < fp32.dims.nMels; m++) cropped.set(mels[0]!.subarray(m * 3000, m * 3000 + frames), m * frames);
    const short = await fp32.encode(cropped, 1, { positions });
    expect(short.positions).toBe(positions);
    expect(short.crossK[0]!.length).toBe(fp32.dims.dModel * positions);
    const alone = (await decodeWindows(fp32, tok, [{ enc: short, index: 0, options: { timestamps: true } }], { maxRows: 1 }))[0]!;
    expect(tok.decode(alone.tokens.filter((t) => t < tok.eot)).trim().length).toBeGreaterThan(10);
    // Beside two full-context rows; the short row moves into a slot whose positions past 500
    // hold another window's keys and values when the first row finishes (swap-remove).
    const together = await decodeWindows(fp32, tok, [
      { enc: full, index: 0, options: { timestamps: true, sampleLen: 3 } },
      { enc: full, index: 0, options: { timestamps: true } },
      { enc: short, index: 0, options: { timestamps: true } },
    ], { maxRows: 3 });
    expect(together[2]!.tokens).toEqual(alone.tokens);
    await expect(fp32.encode(cropped, 1, { positions: 1501 })).rejects.toMatchObject({ code: 'engine.bad_input' });
  });

  it('fx-silence: no-speech probability is high and whisper rules give no text', async () => {
    const enc = await fp32.encode(readF32(path.join(refDir(), 'fx-silence.mel.f32')), 1);
    const [r] = await decodeWindows(fp32, tok, [{ enc, index: 0, options: { timestamps: true } }]);
    expect(r!.noSpeechProb).toBeGreaterThan(0.6);
  });
});

/** Greedy decoding of one window by two models (each from its own encoding): the same tokens,
 *  with and without timestamps, and more than a few of them. */
async function expectSameTokens([ma, ea]: [WhisperModel, EncodedWindows], [mb, eb]: [WhisperModel, EncodedWindows]): Promise<void> {
  for (const timestamps of [true, false]) {
    const [ra] = await decodeWindows(ma, tok, [{ enc: ea, index: 0, options: { timestamps } }]);
    const [rb] = await decodeWindows(mb, tok, [{ enc: eb, index: 0, options: { timestamps } }]);
    expect(ra!.tokens.length).toBeGreaterThan(5);
    expect(ra!.tokens).toEqual(rb!.tokens);
  }
}

/** Loads a copy of the INT8 model with `file` cut to half its size; returns what the load threw. */
async function loadWithTruncated(file: string, opts: Partial<Parameters<typeof WhisperModel.load>[1]>): Promise<unknown> {
  const src = path.join(home, 'models', 'tiny');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wx-damaged-'));
  try {
    for (const f of fs.readdirSync(src)) fs.copyFileSync(path.join(src, f), path.join(dir, f));
    fs.truncateSync(path.join(dir, file), Math.floor(fs.statSync(path.join(dir, file)).size / 2));
    const model = await WhisperModel.load(dir, { precision: 'int8', threads: 2, ...opts });
    await model.close();
    return undefined;
  } catch (err) {
    return err;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('INT8 encoder on the native int8 linears', () => {
  const relRms = (a: Float32Array, b: Float32Array) => {
    let se = 0, sr = 0;
    for (let i = 0; i < b.length; i++) {
      se += (a[i]! - b[i]!) ** 2;
      sr += b[i]! ** 2;
    }
    return Math.sqrt(se / sr);
  };

  it('runs where the CPU has int8 dot products, as close to FP32 as the whole ONNX Runtime graph, same tokens on fx-short', async () => {
    // The addon is built for the CPU it runs on, so the fast kernel is there exactly when the CPU
    // has AVX-512 VNNI — this machine's case (unless built with WX_PORTABLE_BUILD).
    if (!process.env.WX_PORTABLE_BUILD) {
      const flags = fs.existsSync('/proc/cpuinfo') ? fs.readFileSync('/proc/cpuinfo', 'utf8') : '';
      expect(nativeInt8Fast).toBe(/\bavx512_vnni\b/.test(flags) && /\bavx512bw\b/.test(flags));
    }
    const dir = path.join(home, 'models', 'tiny');
    const native = await WhisperModel.load(dir, { precision: 'int8', threads: 2 });
    const whole = await WhisperModel.load(dir, { precision: 'int8', threads: 2, encoder: 'whole' });
    try {
      expect('native' in native.encoder).toBe(nativeInt8Fast);
      expect('whole' in whole.encoder).toBe(true);
      // Its self-attention is our int8 kernel too (heads of 64 dims), not ONNX Runtime's graph.
      if ('native' in native.encoder) expect(native.encoder.native.nativeAttention).toBe(windowAttentionFast(64));
      const mel = readF32(path.join(refDir(), 'fx-short.mel.f32'));
      const expected = readF32(path.join(refDir(), 'fx-short.encoder.f32'));
      const parts = emptyEncoderPartTimes();
      const started = performance.now();
      const a = await native.encode(mel, 1, { hidden: true, parts, crossFloats: true });
      const wall = performance.now() - started;
      const b = await whole.encode(mel, 1, { hidden: true, crossFloats: true });
      if ('native' in native.encoder) {
        // Every part of the run is accounted, and together they are no more than the run.
        for (const [part, ms] of Object.entries(parts)) expect(ms, part).toBeGreaterThan(0);
        expect(Object.values(parts).reduce((s, ms) => s + ms, 0)).toBeLessThanOrEqual(wall);
      }
      const errNative = relRms(a.hidden!, expected);
      const errWhole = relRms(b.hidden!, expected);
      expect(errNative).toBeLessThan(1e-2);
      expect(errNative).toBeLessThan(errWhole * 1.1);
      for (let l = 0; l < native.dims.decoderLayers; l++) {
        expect(relRms(a.crossK[l]!, b.crossK[l]!)).toBeLessThan(2e-2);
        expect(relRms(a.crossV[l]!, b.crossV[l]!)).toBeLessThan(2e-2);
      }
      // Tokens: the same on fx-short. (On fx-multi INT8 drifts from FP32 after a few words either
      // way, at a different step per variant: rounding noise the decoder amplifies, see RESULTS.)
      await expectSameTokens([native, a], [whole, b]);
    } finally {
      await Promise.all([native.close(), whole.close()]);
    }
  });

  it('runs the conv stem in our int8 kernel, near ONNX Runtime\'s float stem; a model imported without its tensors uses the graph', async () => {
    const dir = path.join(home, 'models', 'tiny');
    const mel = readF32(path.join(refDir(), 'fx-short.mel.f32'));
    const expected = readF32(path.join(refDir(), 'fx-short.encoder.f32'));
    const int8Stem = await WhisperModel.load(dir, { precision: 'int8', threads: 2 });
    const floatStem = await WhisperModel.load(dir, { precision: 'int8', threads: 2, encoderStem: 'graph' });
    // An install from before the stem tensors: the same files, the manifest without them.
    const old = fs.mkdtempSync(path.join(os.tmpdir(), 'wx-old-stem-'));
    for (const f of fs.readdirSync(dir)) fs.symlinkSync(path.join(dir, f), path.join(old, f));
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
    const tensors = manifest.files.int8.encoderNative.tensors as Record<string, unknown>;
    for (const name of Object.keys(tensors)) if (name.startsWith('stem.')) delete tensors[name];
    fs.rmSync(path.join(old, 'manifest.json'));
    fs.writeFileSync(path.join(old, 'manifest.json'), JSON.stringify(manifest));
    const oldInstall = await WhisperModel.load(old, { precision: 'int8', threads: 2 });
    try {
      if (!('native' in int8Stem.encoder) || !('native' in floatStem.encoder) || !('native' in oldInstall.encoder)) {
        expect(nativeInt8Fast).toBe(false);
        return;
      }
      expect(int8Stem.encoder.native.nativeStem).toBe(true);
      expect(floatStem.encoder.native.nativeStem).toBe(false);
      expect(oldInstall.encoder.native.nativeStem).toBe(false);
      const a = (await int8Stem.encode(mel, 1, { hidden: true })).hidden!;
      const b = (await floatStem.encode(mel, 1, { hidden: true })).hidden!;
      const c = (await oldInstall.encode(mel, 1, { hidden: true })).hidden!;
      // The stem's 8-bit rounding (its output ~6e-3 from float) adds little to the encoder's.
      expect(relRms(a, b)).toBeLessThan(1e-2);
      expect(relRms(a, expected)).toBeLessThan(relRms(b, expected) * 1.15);
      expect(Array.from(c)).toEqual(Array.from(b));
    } finally {
      await Promise.all([int8Stem.close(), floatStem.close(), oldInstall.close()]);
      fs.rmSync(old, { recursive: true, force: true });
    }
  });

  it('a damaged encoder data file fails the load naming the file and tensor', async () => {
    const err = await loadWithTruncated('encoder.int8.data', { encoder: nativeInt8Fast ? 'native' : 'whole' });
    expect(err).toBeInstanceOf(WxError);
    // The native reader names the data file and tensor; ORT names the graph it was loading.
    expect((err as WxError).message).toMatch(nativeInt8Fast ? /encoder\.int8\.data: native encoder tensor ((layers|cross)\.\d+|stem)\./ : /encoder\.int8\.(onnx|data)/);
  });
});

describe('INT8 decoder step in native kernels', () => {
  it('is the default where the CPU has int8 dot products, and decodes as the ORT segments do', async () => {
    const dir = path.join(home, 'models', 'tiny');
    const native = await WhisperModel.load(dir, { precision: 'int8', threads: 2 });
    const graphs = await WhisperModel.load(dir, { precision: 'int8', threads: 2, decoder: 'graphs' });
    try {
      expect('native' in native.decoder).toBe(nativeInt8Fast);
      expect('segments' in graphs.decoder).toBe(true);
      const enc = await graphs.encode(readF32(path.join(refDir(), 'fx-short.mel.f32')), 1);
      // The prompt step's logits: the same arithmetic (rows quantised alike, float attention).
      const prompt = tok.sotSequence({ timestamps: true });
      const logits = await Promise.all([native, graphs].map((m) => {
        const b = m.newBatch(1);
        return b.step([b.add(enc, 0)], [prompt], [prompt.length - 1]);
      }));
      let max = 0;
      for (let i = 0; i < logits[0]!.length; i++) max = Math.max(max, Math.abs(logits[0]![i]! - logits[1]![i]!));
      expect(max).toBeLessThan(1e-3);
      await expectSameTokens([native, enc], [graphs, enc]);
    } finally {
      await Promise.all([native.close(), graphs.close()]);
    }
  });

  it('keeps encoded windows as int8 for its decoder: a quarter of the bytes, the same logits as from float32', async () => {
    const m = await WhisperModel.load(path.join(home, 'models', 'tiny'), { precision: 'int8', threads: 2 });
    try {
      const short = readF32(path.join(refDir(), 'fx-short.mel.f32'));
      const both = new Float32Array(short.length * 2);
      both.set(short);
      both.set(readF32(path.join(refDir(), 'fx-multi.mel.f32')), short.length);
      const q = await m.encode(both, 2);
      const f = await m.encode(both, 2, { crossFloats: true });
      expect(q.int8?.windows).toBe(2);
      expect(q.crossK).toHaveLength(0);
      expect(f.int8).toBeUndefined();
      const bytes = (e: EncodedWindows) =>
        [...e.crossK, ...e.crossV, ...(e.int8 ? [...e.int8.keys, ...e.int8.values, ...e.int8.keyScales, ...e.int8.valueScales] : [])].reduce((s, a) => s + a.byteLength, 0);
      expect(bytes(q)).toBeLessThan(0.3 * bytes(f));
      const prompt = tok.sotSequence({ timestamps: true });
      const logits = async (enc: EncodedWindows, index: number) => {
        const b = m.newBatch(1);
        return Array.from(await b.step([b.add(enc, index)], [prompt], [prompt.length - 1]));
      };
      const fromFloats = [await logits(f, 0), await logits(f, 1)];
      expect(fromFloats[0]).not.toEqual(fromFloats[1]);
      expect(await logits(q, 1)).toEqual(fromFloats[1]);
      // Sliced and joined in the other order, each window still brings its own keys/values.
      const swapped = EncodedWindows.concat([q.slice(1, 1), q.slice(0, 1)]);
      expect(await logits(swapped, 0)).toEqual(fromFloats[1]);
      expect(await logits(swapped, 1)).toEqual(fromFloats[0]);
      expect(() => EncodedWindows.concat([q.slice(0, 1), f.slice(0, 1)])).toThrow(/int8 and float32/);
    } finally {
      await m.close();
    }
  });

  it('WX_NATIVE_INT8=0 loads the ORT graphs instead', async () => {
    const dir = path.join(home, 'models', 'tiny');
    process.env.WX_NATIVE_INT8 = '0';
    try {
      const m = await WhisperModel.load(dir, { precision: 'int8', threads: 2 });
      expect('whole' in m.encoder).toBe(true);
      expect('segments' in m.decoder).toBe(true);
      await m.close();
    } finally {
      delete process.env.WX_NATIVE_INT8;
    }
    const m = await WhisperModel.load(dir, { precision: 'int8', threads: 2 });
    expect('native' in m.decoder).toBe(nativeInt8Fast);
    await m.close();
  });

  it('a damaged decoder data file fails the load naming the file and tensor', async () => {
    const err = await loadWithTruncated('decoder.int8.data', {});
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(nativeInt8Fast ? /decoder\.int8\.data: native decoder tensor (layers\.\d+\.|tokens|positions|norm)/ : /decoder\.int8\.(\d\.onnx|data)/);
  });
});

describe('other layouts and bad checkpoints', () => {
  it('imports and runs a multilingual, 128-mel, 2-decoder-layer checkpoint with ids from its files', async () => {
    const src = fs.mkdtempSync(path.join(os.tmpdir(), 'wx-synth-'));
    try {
      const layout = writeSyntheticCheckpoint(src, { multilingual: true, nMels: 128, decoderLayers: 2, encoderLayers: 1 });
      const m = await importModel(src, { home, name: 'synth-multi', precision: 'both' });
      expect(m.manifest.dims.nMels).toBe(128);
      expect(m.manifest.dims.decoderLayers).toBe(2);
      expect(m.manifest.dims.nVocab).toBe(layout.vocabSize);
      for (const precision of ['fp32', 'int8'] as const) {
        const model = await WhisperModel.load(m.dir, { precision, threads: 2 });
        const t = WhisperTokenizer.fromModelDir(m.dir);
        expect(t.sot).toBe(layout.sot);
        expect(t.multilingual).toBe(true);
        const mel = new Float32Array(128 * 3000).map((_, i) => Math.sin(i * 0.01));
        const enc = await model.encode(mel, 1);
        const [r] = await decodeWindows(model, t, [{ enc, index: 0, options: { sampleLen: 5, timestamps: true } }]);
        expect(layout.languages).toContain(r!.language);
        expect(r!.tokens.length).toBeLessThanOrEqual(5);
        await model.close();
      }
    } finally {
      fs.rmSync(src, { recursive: true, force: true });
    }
  });

  it('an INT8 model imported with one decoder graph (before the decoder was cut into segments) still loads and decodes', async () => {
    const src = fs.mkdtempSync(path.join(os.tmpdir(), 'wx-synth-old-'));
    try {
      writeSyntheticCheckpoint(src, { decoderLayers: 2, encoderLayers: 1 });
      const m = await importModel(src, { home, name: 'synth-old', precision: 'int8' });
      const segmented = await WhisperModel.load(m.dir, { precision: 'int8', threads: 2, decoder: 'graphs' });
      expect('segments' in segmented.decoder).toBe(true);
      const silence = new Float32Array(m.manifest.dims.nMels * 3000).map((_, i) => Math.sin(i * 0.01));
      const int8Only = await segmented.encode(silence, 1);
      await segmented.close();
      // Rewrite the install the way an older wx left it: decoder.int8.onnx, no segments.
      const ckpt = SafetensorsCheckpoint.open(src);
      const whole = buildDecoderGraph(m.manifest.dims, (n, shape) => ckpt.float32(n, shape), { linear: 'int8', logits: 'int8', floatStorage: 'fp16' });
      fs.writeFileSync(path.join(m.dir, 'decoder.int8.onnx'), encodeModel(whole));
      for (const f of m.manifest.files.int8!.decoderSegments!) fs.rmSync(path.join(m.dir, f));
      fs.rmSync(path.join(m.dir, m.manifest.files.int8!.decoderData!));
      const manifest = { ...m.manifest, files: { ...m.manifest.files, int8: { encoder: m.manifest.files.int8!.encoder, decoder: 'decoder.int8.onnx' } } };
      fs.writeFileSync(path.join(m.dir, 'manifest.json'), JSON.stringify(manifest));
      const model = await WhisperModel.load(m.dir, { precision: 'int8', threads: 2 });
      expect('whole' in model.decoder).toBe(true);
      const t = WhisperTokenizer.fromModelDir(m.dir);
      const enc = await model.encode(new Float32Array(m.manifest.dims.nMels * 3000).map((_, i) => Math.sin(i * 0.01)), 1);
      const [r] = await decodeWindows(model, t, [{ enc, index: 0, options: { sampleLen: 5, timestamps: false } }]);
      expect(r!.tokens.length).toBeGreaterThan(0);
      expect(r!.tokens.length).toBeLessThanOrEqual(5);
      // A whole decoder graph takes float32 cross keys/values: windows held as int8 are refused.
      expect(int8Only.int8).toBeDefined();
      expect(() => model.newBatch(1).add(int8Only, 0)).toThrow(/float32 cross keys\/values/);
      await model.close();
    } finally {
      fs.rmSync(src, { recursive: true, force: true });
    }
  });

  const badCases: [string, (dir: string) => void, RegExp, string][] = [
    ['missing weights', (dir) => fs.rmSync(path.join(dir, 'model.safetensors')), /model\.safetensors/, 'model.missing_file'],
    ['truncated safetensors', (dir) => { const f = path.join(dir, 'model.safetensors'); fs.truncateSync(f, Math.floor(fs.statSync(f).size / 2)); }, /model\.safetensors/, 'model.truncated'],
    ['mismatched shapes', (dir) => {
      writeSafetensors(path.join(dir, 'model.safetensors'), [{ name: 'model.encoder.conv1.weight', shape: [3, 3, 3], values: new Float32Array(27) }], 'F32');
    }, /model\.encoder\.conv1\.weight/, 'model.shape_mismatch'],
    ['unknown architecture', (dir) => {
      const f = path.join(dir, 'config.json');
      fs.writeFileSync(f, JSON.stringify({ ...JSON.parse(fs.readFileSync(f, 'utf8')), model_type: 'llama' }));
    }, /llama/, 'model.unsupported'],
  ];
  for (const [what, damage, message, code] of badCases) {
    it(`${what}: a clear error naming the file or tensor, nothing left in models/`, async () => {
      const src = fs.mkdtempSync(path.join(os.tmpdir(), 'wx-bad-'));
      const badHome = fs.mkdtempSync(path.join(os.tmpdir(), 'wx-badhome-'));
      try {
        writeSyntheticCheckpoint(src, { multilingual: false, dtype: 'F32' });
        damage(src);
        const err = await importModel(src, { home: badHome, name: 'bad', precision: 'int8' }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(WxError);
        expect((err as WxError).code).toBe(code);
        expect((err as WxError).message).toMatch(message);
        const models = path.join(badHome, 'models');
        expect(fs.existsSync(models) ? fs.readdirSync(models) : []).toEqual([]);
      } finally {
        fs.rmSync(src, { recursive: true, force: true });
        fs.rmSync(badHome, { recursive: true, force: true });
      }
    });
  }
});
