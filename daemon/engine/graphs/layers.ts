// Building blocks shared by the encoder and decoder graphs. Weights arrive in Hugging Face layout
// ([out, in] for linears) as float32 and are laid out here for the ops that consume them.
import { Graph, f32Tensor, float, i64Tensor, type TensorData } from '../onnx/graph.js';
import { quantizeRowBlocks } from '../quant.js';
import { f32ToF16 } from '../model/safetensors.js';

/** Inputs per weight scale of 8-bit linears. */
export const INT8_BLOCK = 32;

/** How a linear layer's weights are stored and multiplied: `fp32`, or `int8`: 8-bit weights
 *  with a scale per block of 32 inputs, activations quantised per row and block at run time
 *  (ORT's MatMulNBits, accuracy level 4: int8 dot products). Every row is quantised on its own,
 *  so a row's result does not depend on what else is in the batch (per-tensor activation
 *  quantisation, DynamicQuantizeMatMul, breaks that; bench/RESULTS.md has the variants measured). */
export type LinearPrecision = 'fp32' | 'int8';

export const LN_EPS = 1e-5;

export function transpose2d(w: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = w[base + c]!;
  }
  return out;
}

export interface BlockTable {
  values: string;
  scales: string;
  rows: number;
  cols: number;
  blocks: number;
}

export class LayerBuilder {
  private readonly constants = new Map<string, string>();
  constructor(readonly g: Graph) {}

  /** A shared int64 constant (shape vectors, axes). */
  i64(values: readonly number[], dims: readonly number[] = [values.length]): string {
    const key = `i64:${dims.join('x')}:${values.join(',')}`;
    let name = this.constants.get(key);
    if (!name) {
      name = this.g.initializer(`c_i64_${values.join('_').replace(/-/g, 'm')}`, i64Tensor(dims, values));
      this.constants.set(key, name);
    }
    return name;
  }

  f32(values: readonly number[], dims: readonly number[] = [values.length]): string {
    const key = `f32:${dims.join('x')}:${values.join(',')}`;
    let name = this.constants.get(key);
    if (!name) {
      name = this.g.initializer('c_f32', f32Tensor(dims, values));
      this.constants.set(key, name);
    }
    return name;
  }

  weight(name: string, dims: readonly number[], values: Float32Array): string {
    return this.g.initializer(name, f32Tensor(dims, values));
  }

  /** A float weight stored as float16 in the file and widened once at load (ORT folds the
   *  Cast). Lossless for float16 checkpoints; halves the file size of unquantised tensors. */
  weightStored(name: string, dims: readonly number[], values: Float32Array, storage: 'fp32' | 'fp16'): string {
    if (storage === 'fp32') return this.weight(name, dims, values);
    const half = f32ToF16(values);
    const init = this.g.initializer(`${name}.f16`, { dtype: 'float16', dims, data: new Uint8Array(half.buffer, half.byteOffset, half.byteLength) });
    return this.g.op('Cast', [init], { to: 1 });
  }

  /** x[..., inF] · Wᵀ (+ b): `w` is [outF, inF] as stored by Hugging Face. Without `bias` the
   *  caller adds it elsewhere (e.g. inside SkipLayerNormalization). */
  linear(x: string, name: string, w: Float32Array, outF: number, inF: number, bias: Float32Array | undefined, precision: LinearPrecision): string {
    if (precision === 'int8') return this.blockMatMul(x, this.blockTable(name, w, outF, inF), bias ? this.weight(`${name}.bias`, [outF], bias) : undefined);
    const y = this.g.op('MatMul', [x, this.weight(`${name}.weight`, [inF, outF], transpose2d(w, outF, inF))]);
    return bias ? this.g.op('Add', [y, this.weight(`${name}.bias`, [outF], bias)]) : y;
  }

  /** An [N, K] matrix (rows = outputs) as an 8-bit block table in MatMulNBits' layout, usable
   *  both as its weights and as a row lookup. */
  blockTable(name: string, w: Float32Array, rows: number, cols: number): BlockTable {
    const q = quantizeRowBlocks(w, rows, cols, INT8_BLOCK);
    return {
      values: this.g.initializer(`${name}.wq`, { dtype: 'uint8', dims: [rows, q.blocks, INT8_BLOCK], data: q.values }),
      scales: this.weight(`${name}.scales`, [rows * q.blocks], q.scales),
      rows,
      cols,
      blocks: q.blocks,
    };
  }

  /** x[..., K] · tableᵀ (+ bias) → [..., N] */
  blockMatMul(x: string, t: BlockTable, bias?: string): string {
    const inputs = [x, t.values, t.scales];
    if (bias) inputs.push('', '', bias);
    return this.g.msOp('MatMulNBits', inputs, { K: t.cols, N: t.rows, bits: 8, block_size: INT8_BLOCK, accuracy_level: 4 });
  }

  /** Rows `ids` ([B, S] int64) of the table, dequantised: [B, S, K]. */
  gatherBlockRows(t: BlockTable, ids: string): string {
    const q = this.g.op('Gather', [t.values, ids], { axis: 0 }); // [B, S, blocks, 32]
    const centred = this.g.op('Sub', [this.g.op('Cast', [q], { to: 1 }), this.f32([128], [])]);
    const rowScales = this.g.op('Reshape', [t.scales, this.i64([t.rows, t.blocks])]); // folded at load
    const scales = this.g.op('Unsqueeze', [this.g.op('Gather', [rowScales, ids], { axis: 0 }), this.i64([-1])]); // [B, S, blocks, 1]
    const full = this.g.op('Reshape', [this.g.op('Mul', [centred, scales]), this.i64([0, 0, t.blocks * INT8_BLOCK])]);
    return t.blocks * INT8_BLOCK === t.cols ? full : this.g.op('Slice', [full, this.i64([0]), this.i64([t.cols]), this.i64([2])]);
  }

  layerNorm(x: string, name: string, gamma: Float32Array, beta: Float32Array): string {
    const d = gamma.length;
    return this.g.op('LayerNormalization', [x, this.weight(`${name}.weight`, [d], gamma), this.weight(`${name}.bias`, [d], beta)], { axis: -1, epsilon: float(LN_EPS) });
  }

  /** LayerNorm(x + residual + bias): returns [normalised, sum] where sum is the new residual. */
  skipLayerNorm(x: string, residual: string, name: string, gamma: Float32Array, beta: Float32Array, bias?: Float32Array): [string, string] {
    const d = gamma.length;
    const inputs = [x, residual, this.weight(`${name}.weight`, [d], gamma), this.weight(`${name}.bias`, [d], beta)];
    if (bias) inputs.push(this.weight(`${name}.skipbias`, [d], bias));
    const [out, , , sum] = this.g.opN('SkipLayerNormalization', inputs, 4, { epsilon: float(LN_EPS) }, 'com.microsoft');
    return [out!, sum!];
  }

  gelu(x: string): string {
    return this.g.msOp('Gelu', [x]);
  }

  /** [B, S, H*dh] → [B, H, S, dh] */
  splitHeads(x: string, heads: number, headDim: number): string {
    const r = this.g.op('Reshape', [x, this.i64([0, 0, heads, headDim])]);
    return this.g.op('Transpose', [r], { perm: [0, 2, 1, 3] });
  }
}

/**
 * The pre-LN residual stream of a transformer: `x = x + sublayer(LN(x))`, with each residual add
 * fused into the next LayerNorm (SkipLayerNormalization) and the sublayer's output bias riding in
 * the fused op.
 */
export class ResidualStream {
  private pendingOut: string | undefined;
  private pendingBias: Float32Array | undefined;

  constructor(private readonly L: LayerBuilder, private x: string) {}

  /** LayerNorm `name` (weights read by the caller) of the stream, after adding any pending sublayer output. */
  norm(name: string, gamma: Float32Array, beta: Float32Array): string {
    if (!this.pendingOut) return this.L.layerNorm(this.x, name, gamma, beta);
    const [h, sum] = this.L.skipLayerNorm(this.pendingOut, this.x, name, gamma, beta, this.pendingBias);
    this.x = sum;
    this.pendingOut = undefined;
    return h;
  }

  /** The stream itself (no sublayer output may be pending: call after a norm). */
  get value(): string {
    if (this.pendingOut) throw new Error('residual stream has a pending sublayer output');
    return this.x;
  }

  /** A sublayer's output (without its bias) to add to the stream before the next norm. */
  add(out: string, bias: Float32Array): void {
    this.pendingOut = out;
    this.pendingBias = bias;
  }
}

/**
 * Tensors our native kernels read (native-weights.ts), named by the kernels' own scheme and in
 * the bytes the graphs store (the same block quantisation), so a shared data file holds each
 * once: a linear is `<name>.values` ([out, blocks, 32] uint8, zero point 128), `<name>.scales`
 * ([out·blocks] float32) and `<name>.bias` when it has one; a norm `<name>.gamma` / `.beta`.
 */
export class NativeTensors {
  readonly map = new Map<string, TensorData>();

  floats(name: string, v: Float32Array): void {
    this.map.set(name, f32Tensor([v.length], v));
  }

  /** As float16: the bytes a graph's float16-stored copy holds (`weightStored`), kept once. */
  halfFloats(name: string, v: Float32Array, dims: readonly number[]): void {
    const half = f32ToF16(v);
    this.map.set(name, { dtype: 'float16', dims: [...dims], data: new Uint8Array(half.buffer, half.byteOffset, half.byteLength) });
  }

  linear(name: string, w: Float32Array, rows: number, cols: number, bias?: Float32Array): void {
    const q = quantizeRowBlocks(w, rows, cols, INT8_BLOCK);
    this.map.set(`${name}.values`, { dtype: 'uint8', dims: [rows, q.blocks, INT8_BLOCK], data: q.values });
    this.floats(`${name}.scales`, q.scales);
    if (bias) this.floats(`${name}.bias`, bias);
  }

  norm(name: string, gamma: Float32Array, beta: Float32Array): void {
    this.floats(`${name}.gamma`, gamma);
    this.floats(`${name}.beta`, beta);
  }
}
