// A whole INT8 decoder step in our own kernels, no ONNX Runtime call: at batch 1 a step through
// the five decoder segments was ~2.4 ms, mostly the fixed cost of ~200 small ORT nodes and five
// binding calls; the arithmetic (8 MB of int8 layer weights and the 20 MB token table for tiny)
// takes a fraction of that. Same weights and arithmetic as the segments: 8-bit linears in blocks
// of 32 with per-row activation quantisation (native/src/int8_linear.cc), float32
// self-attention over the batch's cache, the int8 cross-attention (cross-int8.ts).
import path from 'node:path';
import { native } from '../native.js';
import type { Int8CrossCache } from './cross-int8.js';
import { NATIVE_DECODER } from './graphs/decoder.js';
import { LN_EPS } from './graphs/layers.js';
import type { ModelDims } from './manifest.js';
import { Epilogue, linear8, NativeWeights, type NormWeights, type PackedLinear } from './native-weights.js';

const addon = native();

interface DecoderLayer {
  selfNorm: NormWeights;
  qkv: PackedLinear;
  selfOut: PackedLinear;
  crossNorm: NormWeights;
  crossQuery: PackedLinear;
  crossOut: PackedLinear;
  ffnNorm: NormWeights;
  fc1: PackedLinear;
  fc2: PackedLinear;
}

/** One step's rows: where each row's caches are and how much they hold. */
export interface NativeStepRows {
  /** Self-attention cache slot per row. */
  slots: Int32Array;
  /** Cached positions per row before this step. */
  lengths: Int32Array;
  /** Cross-attention slot (window) per row, and the window's encoder positions. */
  crossSlots: Int32Array;
  crossLengths: Int32Array;
}

export class NativeDecoder {
  /** Scratch of a step, reused: a step runs synchronously, so one set serves every batch. */
  private scratch = new Float32Array(0);

  private constructor(
    private readonly dims: ModelDims,
    private readonly layers: DecoderLayer[],
    private readonly norm: NormWeights,
    private readonly tokens: PackedLinear,
    private readonly positions: Float32Array,
    private readonly threads: number,
  ) {}

  static load(dir: string, dataFile: string, tensors: Record<string, [number, number]>, dims: ModelDims, threads: number): NativeDecoder {
    const d = dims.dModel;
    const f = dims.decoderFfn;
    const N = NATIVE_DECODER;
    return NativeWeights.read(path.join(dir, dataFile), tensors, 'native decoder', (w) => {
      const layers = Array.from({ length: dims.decoderLayers }, (_, l): DecoderLayer => ({
        selfNorm: w.norm(N.selfNorm(l), d, LN_EPS),
        qkv: w.linear(N.qkv(l), 3 * d, d),
        selfOut: w.linear(N.selfOut(l), d, d),
        crossNorm: w.norm(N.crossNorm(l), d, LN_EPS),
        crossQuery: w.linear(N.crossQuery(l), d, d),
        crossOut: w.linear(N.crossOut(l), d, d),
        ffnNorm: w.norm(N.ffnNorm(l), d, LN_EPS),
        fc1: w.linear(N.fc1(l), f, d),
        fc2: w.linear(N.fc2(l), d, f),
      }));
      return new NativeDecoder(dims, layers, w.norm(N.norm, d, LN_EPS), w.linear(N.tokens, dims.nVocab, d, false), w.halfFloats(N.positions, dims.nTextCtx * d), Math.max(1, threads));
    });
  }

  /**
   * Feeds `tokens` ([B][S]) to the rows, writing their new keys/values into the self-attention
   * caches (`selfK[l]` / `selfV[l]`: [slots, heads, capacity, headDim]) and returns the logits at
   * positions `gather` of each row: [B, gather.length, V], written into `out` when it is large
   * enough (a batch reuses its own: a fresh 200 KB row of logits per token cost ~30 µs).
   */
  step(tokens: readonly (readonly number[])[], rows: NativeStepRows, gather: readonly number[], selfK: Float32Array[], selfV: Float32Array[], capacity: number, cross: Int8CrossCache, out?: Float32Array): Float32Array {
    const { dModel: d, decoderHeads: H, decoderFfn: f, nVocab: V } = this.dims;
    const B = tokens.length;
    const S = tokens[0]!.length;
    const n = B * S;
    const t = this.threads;
    const P = gather.length;
    const total = n * d * 6 + n * f + B * P * d;
    if (this.scratch.length < total) this.scratch = new Float32Array(total);
    let used = 0;
    const take = (size: number) => this.scratch.subarray(used, (used += size));
    const x = take(n * d);
    const qkv = take(n * 3 * d);
    const ctx = take(n * d);
    const q = take(n * d);
    const up = take(n * f);
    const picked = take(B * P * d);
    // The residual stream: token embeddings (rows of the output projection's table) + positions.
    addon.linear8Rows(this.tokens, Int32Array.from(tokens.flat()), x);
    for (let b = 0; b < B; b++) {
      for (let s = 0; s < S; s++) {
        const pos = rows.lengths[b]! + s;
        const at = (b * S + s) * d;
        for (let i = 0; i < d; i++) x[at + i]! += this.positions[pos * d + i]!;
      }
    }
    this.layers.forEach((layer, l) => {
      linear8(layer.qkv, x, n, qkv, Epilogue.Set, t, layer.selfNorm);
      addon.selfAttend(qkv, B, S, H, d / H, selfK[l], selfV[l], capacity, rows.slots, rows.lengths, ctx, t);
      linear8(layer.selfOut, ctx, n, x, Epilogue.Add, t);
      linear8(layer.crossQuery, x, n, q, Epilogue.Set, t, layer.crossNorm);
      const attended = cross.attend(l, q, B, S, rows.crossSlots, rows.crossLengths, t);
      linear8(layer.crossOut, attended, n, x, Epilogue.Add, t);
      linear8(layer.fc1, x, n, up, Epilogue.Gelu, t, layer.ffnNorm);
      linear8(layer.fc2, up, n, x, Epilogue.Add, t);
    });
    // The final LayerNorm rides in the output projection's input quantisation.
    for (let b = 0; b < B; b++) gather.forEach((g, p) => picked.set(x.subarray((b * S + g) * d, (b * S + g + 1) * d), (b * P + p) * d));
    const logits = out && out.length >= B * P * V ? out.subarray(0, B * P * V) : new Float32Array(B * P * V);
    linear8(this.tokens, picked, B * P, logits, Epilogue.Set, t, this.norm);
    return logits;
  }
}
