// Building blocks shared by the encoder and decoder graphs. Weights arrive in Hugging Face layout
// ([out, in] for linears) as float32 and are laid out here for the ops that consume them.
import { Graph, f32Tensor, float, i64Tensor, type TensorData } from '../onnx/graph.js';
import { quantizePerColumn, quantizeRowBlocks } from '../quant.js';
import { f32ToF16 } from '../model/safetensors.js';

export const INT8_BLOCK = 32;

/** How a linear layer's weights are stored and multiplied:
 *  - `fp32`;
 *  - `int8`: 8-bit weights with a scale per block of 32 inputs, activations quantised per row
 *    and block at run time (ORT's MatMulNBits, accuracy level 4: int8 dot products). Every row
 *    is quantised on its own, so a row's result does not depend on what else is in the batch;
 *  - `int8-tensor`: 8-bit weights per output column, activations quantised per TENSOR
 *    (DynamicQuantizeMatMul). Faster, but rows of a batch share one activation scale, so batching
 *    changes results; kept for measurements only;
 *  - `int8w`: the `int8` weights with float32 arithmetic (accuracy level 1: weights widened on
 *    the fly, activations not quantised). */
export type LinearPrecision = 'fp32' | 'int8' | 'int8w' | 'int8-tensor';

/** Which linear layers are quantised: one precision for all, or a choice per layer name
 *  (`model.encoder.layers.3.fc2`, `….self_attn.qkv`). */
export type PrecisionPolicy = LinearPrecision | ((layer: string) => LinearPrecision);

export const prec = (policy: PrecisionPolicy, layer: string): LinearPrecision => (typeof policy === 'function' ? policy(layer) : policy);

export const LN_EPS = 1e-5;

export function transpose2d(w: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = w[base + c]!;
  }
  return out;
}

function int8Tensor(dims: readonly number[], values: Int8Array): TensorData {
  return { dtype: 'int8', dims, data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
}

export interface BlockTable {
  values: string;
  scales: string;
  rows: number;
  cols: number;
  blocks: number;
  block: number;
}

export class LayerBuilder {
  private readonly constants = new Map<string, string>();
  /** `block`: inputs per weight scale of 8-bit linears. */
  constructor(readonly g: Graph, readonly block: number = INT8_BLOCK) {}

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
    if (precision === 'int8' || precision === 'int8w') {
      const q = quantizeRowBlocks(w, outF, inF, this.block);
      const packed: TensorData = { dtype: 'uint8', dims: [outF, q.blocks, this.block], data: q.values };
      const inputs = [x, this.g.initializer(`${name}.wq`, packed), this.weight(`${name}.scales`, [outF * q.blocks], q.scales)];
      if (bias) inputs.push('', '', this.weight(`${name}.bias`, [outF], bias));
      return this.g.msOp('MatMulNBits', inputs, { K: inF, N: outF, bits: 8, block_size: this.block, accuracy_level: precision === 'int8' ? 4 : 1 });
    }
    const wt = transpose2d(w, outF, inF); // [inF, outF]
    if (precision === 'int8-tensor') {
      const q = quantizePerColumn(wt, inF, outF);
      const wq = this.g.initializer(`${name}.wq`, int8Tensor([inF, outF], q.values));
      const scale = this.weight(`${name}.scale`, [outF], q.scales);
      const inputs = [x, wq, scale, ''];
      if (bias) inputs.push(this.weight(`${name}.bias`, [outF], bias));
      else inputs.pop();
      return this.g.msOp('DynamicQuantizeMatMul', inputs);
    }
    const y = this.g.op('MatMul', [x, this.weight(`${name}.weight`, [inF, outF], wt)]);
    return bias ? this.g.op('Add', [y, this.weight(`${name}.bias`, [outF], bias)]) : y;
  }

  /** An [N, K] matrix (rows = outputs) as an 8-bit block table, usable both as MatMulNBits
   *  weights and as a row lookup. */
  blockTable(name: string, w: Float32Array, rows: number, cols: number, block: number = this.block): BlockTable {
    const q = quantizeRowBlocks(w, rows, cols, block);
    return {
      values: this.g.initializer(`${name}.wq`, { dtype: 'uint8', dims: [rows, q.blocks, block], data: q.values }),
      block,
      scales: this.weight(`${name}.scales`, [rows, q.blocks], q.scales),
      rows,
      cols,
      blocks: q.blocks,
    };
  }

  /** x[..., K] · tableᵀ → [..., N] */
  blockMatMul(x: string, t: BlockTable, accuracyLevel: 1 | 4 = 4): string {
    const flatScales = this.g.op('Reshape', [t.scales, this.i64([-1])]);
    return this.g.msOp('MatMulNBits', [x, t.values, flatScales], { K: t.cols, N: t.rows, bits: 8, block_size: t.block, accuracy_level: accuracyLevel });
  }

  /** Rows `ids` ([B, S] int64) of the table, dequantised: [B, S, K]. */
  gatherBlockRows(t: BlockTable, ids: string, cols: number): string {
    const q = this.g.op('Gather', [t.values, ids], { axis: 0 }); // [B, S, blocks, 32]
    const centred = this.g.op('Sub', [this.g.op('Cast', [q], { to: 1 }), this.f32([128], [])]);
    const scales = this.g.op('Unsqueeze', [this.g.op('Gather', [t.scales, ids], { axis: 0 }), this.i64([-1])]); // [B, S, blocks, 1]
    const full = this.g.op('Reshape', [this.g.op('Mul', [centred, scales]), this.i64([0, 0, t.blocks * t.block])]);
    return t.blocks * t.block === cols ? full : this.g.op('Slice', [full, this.i64([0]), this.i64([cols]), this.i64([2])]);
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

  /** [B, H, S, dh] → [B, S, H*dh] */
  mergeHeads(x: string, d: number): string {
    const t = this.g.op('Transpose', [x], { perm: [0, 2, 1, 3] });
    return this.g.op('Reshape', [t, this.i64([0, 0, d])]);
  }
}
