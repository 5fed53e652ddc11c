// Building blocks shared by the encoder and decoder graphs. Weights arrive in Hugging Face layout
// ([out, in] for linears) as float32 and are laid out here for the ops that consume them.
import { Graph, f32Tensor, float, i64Tensor, type TensorData } from '../onnx/graph.js';
import { quantizePerColumn } from '../quant.js';

/** How a linear layer's weights are stored: float32, or int8 with one scale per output column
 *  (activations quantised per tensor at run time: ORT's DynamicQuantizeMatMul). */
export type LinearPrecision = 'fp32' | 'int8';

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

  /** x[..., inF] · Wᵀ (+ b): `w` is [outF, inF] as stored by Hugging Face. Without `bias` the
   *  caller adds it elsewhere (e.g. inside SkipLayerNormalization). */
  linear(x: string, name: string, w: Float32Array, outF: number, inF: number, bias: Float32Array | undefined, precision: LinearPrecision): string {
    const wt = transpose2d(w, outF, inF); // [inF, outF]
    if (precision === 'int8') {
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
