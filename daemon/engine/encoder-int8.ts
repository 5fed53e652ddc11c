// The INT8 encoder with its linear layers in our own int8 kernel (native/src/int8_linear.cc): on
// CPUs with int8 dot products it runs them 2–4× faster than ONNX Runtime's MatMulNBits with the
// same numerics (weights in 8-bit blocks of 32, activations quantised per row and block), and
// the linears were over half the encoder. The self-attention, then half of what was left (~80 ms
// a window in ONNX Runtime's float32 attention), runs as int8 dot products too
// (native/src/cross_attention.cc: keys/values int8 as the decoder's cross-attention stores them,
// queries and softmax weights in two 8-bit parts), and so does the conv stem (its convolutions
// as int8 linears over frames read in place: 4 ms a window instead of ORT's 11 in float32).
// ONNX Runtime keeps the stem of models imported before its tensors, and the attention where
// our kernel cannot run (one weightless graph every layer shares). The LayerNorms ride inside
// the linears' input quantisation, GELU and the residual adds in their outputs.
import path from 'node:path';
import { WxError } from '../errors.js';
import { native } from '../native.js';
import type { Backend, InferenceGraph } from './backend.js';
import { Int8CrossCache, windowAttention, windowAttentionFast, type CrossShape, type Int8Windows } from './cross-int8.js';
import { ENCODER_PIECES_IO, NATIVE_ENCODER } from './graphs/encoder.js';
import type { EncoderNativeFiles, ModelDims } from './manifest.js';
import { Epilogue, linear8, NativeWeights, quantisedRows, type NormWeights as Norm, type PackedLinear as Packed, type QuantisedRows } from './native-weights.js';

const addon = native();

/** The conv stem in our int8 kernel: two 3-tap convolutions as linears over frames read in
 *  place, GELU in their outputs, the positions added in the second's. */
interface NativeStem {
  conv1: Packed;
  conv2: Packed;
  /** [nAudioCtx, d] */
  positions: Float32Array;
}

interface EncoderLayer {
  attnNorm: Norm;
  qkv: Packed;
  out: Packed;
  ffnNorm: Norm;
  fc1: Packed;
  fc2: Packed;
}

export interface NativeEncoderOutput {
  /** The encoder's output (after its final LayerNorm), when asked for. */
  hidden?: Float32Array;
  /** Per decoder layer, [B, heads, positions, headDim]; empty when `int8` holds them instead. */
  crossK: Float32Array[];
  crossV: Float32Array[];
  int8?: Int8Windows;
}

/** Milliseconds per part of the native encoder, summed over its runs and layers (the roofline
 *  benchmark divides each part's multiply-adds by them): the conv stem, each layer's LayerNorm +
 *  q/k/v, self-attention, output projection, LayerNorm + fc1 + GELU and fc2, then the final
 *  LayerNorm with the cross-attention key/value projections (`cross`; with them quantised into
 *  the decoder's int8 form when it takes that). */
export interface EncoderPartTimes {
  stem: number;
  qkv: number;
  attention: number;
  out: number;
  fc1: number;
  fc2: number;
  cross: number;
}

export function emptyEncoderPartTimes(): EncoderPartTimes {
  return { stem: 0, qkv: 0, attention: 0, out: 0, fc1: 0, fc2: 0, cross: 0 };
}

/** One encoder run's buffers: q/k/v, the attention output, the MLP's hidden rows (which fc1
 *  writes already quantised for fc2), and the encoder's output quantised once for the cross
 *  key/value projections; room for `rows` rows in the quantised ones. */
interface Scratch {
  qkv: Float32Array;
  att: Float32Array;
  up: QuantisedRows | Float32Array | null;
  out: QuantisedRows | null;
  rows: number;
}

export class NativeEncoder {
  /** Scratch buffers of finished runs (runs may overlap across awaits: each takes its own):
   *  see Scratch. */
  private readonly spare: Scratch[] = [];

  private constructor(
    private readonly dims: ModelDims,
    /** Our int8 stem, or ONNX Runtime's float graph (models imported before the stem tensors
     *  existed, and comparisons: `stem: 'graph'`). */
    private readonly stem: NativeStem | InferenceGraph,
    /** ONNX Runtime's attention graph, loaded only where our kernel does not run. */
    private readonly attention: InferenceGraph | undefined,
    private readonly layers: EncoderLayer[],
    private readonly norm: Norm,
    private readonly cross: { k: Packed; v: Packed }[],
    private readonly threads: number,
  ) {}

  /** Whether the self-attention runs in our int8 kernel (else ONNX Runtime's graph). */
  get nativeAttention(): boolean {
    return this.attention === undefined;
  }

  static async load(dir: string, files: EncoderNativeFiles, dims: ModelDims, backend: Backend, threads: number, opts: { attention?: 'auto' | 'graph'; stem?: 'auto' | 'graph' } = {}): Promise<NativeEncoder> {
    const d = dims.dModel;
    const f = dims.encoderFfn;
    const eps = NATIVE_ENCODER.eps;
    const nativeStem = (opts.stem ?? 'auto') === 'auto' && `${NATIVE_ENCODER.conv1}.values` in files.tensors;
    const { layers, finalNorm, cross, stem } = NativeWeights.read(path.join(dir, files.data), files.tensors, 'native encoder', (w) => ({
      stem: nativeStem
        ? { conv1: w.linear(NATIVE_ENCODER.conv1, d, 3 * dims.nMels), conv2: w.linear(NATIVE_ENCODER.conv2, d, 3 * d), positions: w.halfFloats(NATIVE_ENCODER.positions, dims.nAudioCtx * d) }
        : undefined,
      layers: Array.from({ length: dims.encoderLayers }, (_, i): EncoderLayer => ({
        attnNorm: w.norm(NATIVE_ENCODER.attnNorm(i), d, eps),
        qkv: w.linear(NATIVE_ENCODER.qkv(i), 3 * d, d),
        out: w.linear(NATIVE_ENCODER.out(i), d, d),
        ffnNorm: w.norm(NATIVE_ENCODER.ffnNorm(i), d, eps),
        fc1: w.linear(NATIVE_ENCODER.fc1(i), f, d),
        fc2: w.linear(NATIVE_ENCODER.fc2(i), d, f),
      })),
      finalNorm: w.norm(NATIVE_ENCODER.norm, d, eps),
      cross: Array.from({ length: dims.decoderLayers }, (_, l) => ({ k: w.linear(NATIVE_ENCODER.crossK(l), d, d, false), v: w.linear(NATIVE_ENCODER.crossV(l), d, d) })),
    }));
    const nativeAttention = (opts.attention ?? 'auto') === 'auto' && windowAttentionFast(d / dims.encoderHeads);
    const load = (file: string) => backend.load(path.join(dir, file), { threads });
    const [stemGraph, graph] = await Promise.all([stem ? undefined : load(files.stem), nativeAttention ? undefined : load(files.attention)]);
    return new NativeEncoder(dims, stem ?? stemGraph!, graph, layers, finalNorm, cross, Math.max(1, threads));
  }

  /** Whether the conv stem runs in our int8 kernel (else ONNX Runtime's graph). */
  get nativeStem(): boolean {
    return !('run' in this.stem);
  }

  async close(): Promise<void> {
    await Promise.all(['run' in this.stem ? this.stem.close() : undefined, this.attention?.close()]);
  }

  /** Forgets the scratch buffers kept between runs (an idle daemon gives their memory back). */
  releaseScratch(): void {
    this.spare.length = 0;
  }

  /** B windows of log-mel features ([B, n_mels, frames]) → cross K/V (and the hidden states
   *  when `hidden`). With `int8`, the cross keys/values come back in the decoder's int8 form
   *  only: each layer's projection is quantised as soon as it is computed, so the float32 ones
   *  never all exist. */
  async run(mel: Float32Array, batch: number, frames: number, parts?: EncoderPartTimes, int8?: CrossShape, hidden = false): Promise<NativeEncoderOutput> {
    const d = this.dims.dModel;
    const clock = partClock(parts);
    const t = this.threads;
    const scratch: Scratch = this.spare.pop() ?? { qkv: new Float32Array(0), att: new Float32Array(0), up: null, out: null, rows: 0 };
    // The residual stream, updated in place.
    let x: Float32Array;
    if ('run' in this.stem) {
      const stem = await this.stem.run({ [ENCODER_PIECES_IO.mel]: { type: 'float32', data: mel, dims: [batch, this.dims.nMels, frames] } }, [ENCODER_PIECES_IO.x]);
      x = stem[ENCODER_PIECES_IO.x]!.data;
    } else {
      x = this.runStem(this.stem, mel, batch, frames, scratch);
    }
    clock('stem');
    const positions = x.length / (batch * d);
    const rows = batch * positions;
    if (scratch.qkv.length < rows * 3 * d) scratch.qkv = new Float32Array(rows * 3 * d);
    if (scratch.rows < rows) {
      // (Float rows for a width the quantised blocks of 32 do not divide: no Whisper has one.)
      scratch.up = this.dims.encoderFfn % 32 === 0 ? quantisedRows(rows, this.dims.encoderFfn) : new Float32Array(rows * this.dims.encoderFfn);
      scratch.out = d % 32 === 0 ? quantisedRows(rows, d) : null;
      scratch.rows = rows;
    }
    if (scratch.att.length < rows * d) scratch.att = new Float32Array(rows * d);
    const qkv = scratch.qkv.subarray(0, rows * 3 * d);
    try {
      await this.runLayers(x, qkv, scratch.up!, scratch.att.subarray(0, rows * d), batch, positions, t, clock);
      const normed = hidden || !scratch.out ? unfilledFloats(rows * d) : undefined;
      if (normed) addon.layerNorm(x, rows, d, this.norm.gamma, this.norm.beta, this.norm.eps, normed);
      // The final LayerNorm's rows quantised once for the 8 cross projections (each would
      // quantise them again), the LayerNorm inside the quantisation: the same bits either way.
      const input: Float32Array | QuantisedRows = scratch.out ?? normed!;
      if (scratch.out) addon.linear8Quantise(x, rows, scratch.out, t, this.norm);
      const heads = { heads: this.dims.decoderHeads, positions };
      const project = (w: Packed, out = unfilledFloats(rows * d)) => {
        linear8(w, input, rows, out, Epilogue.Set, t, null, heads);
        return out;
      };
      const kept = hidden ? { hidden: normed! } : {};
      if (int8) {
        const q = Int8CrossCache.emptyWindows(int8, batch);
        const projected = unfilledFloats(rows * d);
        this.cross.forEach((c, l) => {
          Int8CrossCache.quantiseLayer(int8, q, l, 'keys', project(c.k, projected), positions, t);
          Int8CrossCache.quantiseLayer(int8, q, l, 'values', project(c.v, projected), positions, t);
        });
        clock('cross');
        return { ...kept, crossK: [], crossV: [], int8: q };
      }
      const out = { ...kept, crossK: this.cross.map((c) => project(c.k)), crossV: this.cross.map((c) => project(c.v)) };
      clock('cross');
      return out;
    } finally {
      this.spare.push(scratch);
    }
  }

  /** mel [batch, n_mels, frames] → x [batch·⌈frames / 2⌉, d]: conv1 + GELU into frame-major rows
   *  (in the q/k/v scratch, free until the first layer), conv2 + GELU + positions. */
  private runStem(stem: NativeStem, mel: Float32Array, batch: number, frames: number, scratch: { qkv: Float32Array }): Float32Array {
    const d = this.dims.dModel;
    const t = this.threads;
    const positions = Math.floor((frames - 1) / 2) + 1;
    if (positions > this.dims.nAudioCtx) throw new WxError('engine.bad_input', `encoder input of ${frames} frames is longer than the model's ${2 * this.dims.nAudioCtx}`, { frames });
    if (scratch.qkv.length < batch * frames * d) scratch.qkv = new Float32Array(Math.max(batch * frames * d, batch * positions * 3 * d));
    const h = scratch.qkv;
    addon.conv8Run(stem.conv1, mel, batch, frames, this.dims.nMels, 1, true, h, Epilogue.Gelu, t);
    const x = unfilledFloats(batch * positions * d);
    const table = stem.positions.subarray(0, positions * d);
    for (let b = 0; b < batch; b++) x.set(table, b * positions * d);
    addon.conv8Run(stem.conv2, h, batch, frames, d, 2, false, x, Epilogue.GeluAdd, t);
    return x;
  }

  /** The transformer layers over the residual stream `x` ([batch·positions, d]), in place. */
  private async runLayers(x: Float32Array, qkv: Float32Array, up: QuantisedRows | Float32Array, att: Float32Array, batch: number, positions: number, t: number, clock: PartClock): Promise<void> {
    const d = this.dims.dModel;
    const H = this.dims.encoderHeads;
    const rows = batch * positions;
    const graph = this.attention;
    for (const layer of this.layers) {
      // For our kernel q/k/v are written split into heads ([batch, 3·heads, positions, headDim]),
      // as it reads them; ONNX Runtime's graph takes them row by row.
      linear8(layer.qkv, x, rows, qkv, Epilogue.Set, t, layer.attnNorm, graph ? undefined : { heads: 3 * H, positions });
      clock('qkv');
      let attended = att;
      if (graph) {
        const out = await graph.run({ [ENCODER_PIECES_IO.qkv]: { type: 'float32', data: qkv, dims: [batch, positions, 3 * d] } }, [ENCODER_PIECES_IO.attention]);
        attended = out[ENCODER_PIECES_IO.attention]!.data;
      } else {
        windowAttention(qkv, batch, positions, H, d / H, att, t);
      }
      clock('attention');
      linear8(layer.out, attended, rows, x, Epilogue.Add, t);
      clock('out');
      linear8(layer.fc1, x, rows, up, Epilogue.Gelu, t, layer.ffnNorm);
      clock('fc1');
      linear8(layer.fc2, up, rows, x, Epilogue.Add, t);
      clock('fc2');
    }
  }
}

/** Adds the time since its last call to the named part (a no-op without `parts`). */
type PartClock = (part: keyof EncoderPartTimes) => void;

function partClock(parts: EncoderPartTimes | undefined): PartClock {
  if (!parts) return () => {};
  let last = performance.now();
  return (part) => {
    const now = performance.now();
    parts[part] += now - last;
    last = now;
  };
}

/** A float array left as the allocator gives it, for outputs a kernel writes in full (the
 *  LayerNorm, a linear with `Epilogue.Set`): zero-filling a window's nine 2.3 MB outputs first
 *  cost ~1–2 ms. */
function unfilledFloats(count: number): Float32Array {
  const bytes = Buffer.allocUnsafeSlow(count * 4);
  return new Float32Array(bytes.buffer, bytes.byteOffset, count);
}
