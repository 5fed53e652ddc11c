// The encoder graph: log-mel windows [B, n_mels, 3000] → (hidden states, and the cross-attention
// keys/values of every decoder layer). Computing cross K/V here, once per window, keeps the
// decoder's per-token work to its own layers.
import { Graph, float } from '../onnx/graph.js';
import type { ModelDims } from '../manifest.js';
import { LayerBuilder, ResidualStream, type LinearPrecision } from './layers.js';

export type WeightReader = (name: string, shape: readonly number[]) => Float32Array;

export interface EncoderGraphOptions {
  /** Precision of the transformer blocks' linear layers. */
  linear: LinearPrecision;
  /** Precision of the cross-attention K/V projections (per decoder layer). */
  crossKv: LinearPrecision;
  /** File storage of the tensors that stay in float (conv stem, positions). */
  floatStorage?: 'fp32' | 'fp16';
}

/** Output names, shared with the runtime side. */
export const ENCODER_IO = {
  mel: 'mel',
  hidden: 'hidden',
  crossK: (l: number) => `cross_k_${l}`,
  crossV: (l: number) => `cross_v_${l}`,
};

/** Concatenates [outF, inF] matrices of q, k, v into one [3·outF, inF] matrix, ordered for the
 *  fused projection, with k's missing bias as zeros. */
function fuseQkv(q: Float32Array, k: Float32Array, v: Float32Array, bq: Float32Array, bv: Float32Array, d: number): { w: Float32Array; b: Float32Array } {
  const w = new Float32Array(3 * d * d);
  w.set(q, 0);
  w.set(k, d * d);
  w.set(v, 2 * d * d);
  const b = new Float32Array(3 * d);
  b.set(bq, 0);
  b.set(bv, 2 * d);
  return { w, b };
}

export function buildEncoderGraph(dims: ModelDims, read: WeightReader, opts: EncoderGraphOptions): Graph {
  const g = new Graph('wx_whisper_encoder');
  const L = new LayerBuilder(g);
  const d = dims.dModel;
  const T = dims.nAudioCtx;
  const H = dims.encoderHeads;
  const p = 'model.encoder';
  const storage = opts.floatStorage ?? 'fp32';

  // Frames may be fewer than 2·T (a shorter audio context, for short dictation utterances): the
  // positions are sliced to the length the conv stem produced.
  const mel = g.input(ENCODER_IO.mel, 'float32', ['batch', dims.nMels, 'frames']);
  const conv = (x: string, name: string, inC: number, stride: number) => {
    const w = L.weightStored(`${name}.weight`, [d, inC, 3], read(`${name}.weight`, [d, inC, 3]), storage);
    const b = L.weight(`${name}.bias`, [d], read(`${name}.bias`, [d]));
    return L.gelu(g.op('Conv', [x, w, b], { kernel_shape: [3], pads: [1, 1], strides: [stride] }));
  };
  const c1 = conv(mel, `${p}.conv1`, dims.nMels, 1);
  const c2 = conv(c1, `${p}.conv2`, d, 2); // [B, d, T]
  const tokens = g.op('Transpose', [c2], { perm: [0, 2, 1] });
  const positions = L.weightStored(`${p}.embed_positions.weight`, [T, d], read(`${p}.embed_positions.weight`, [T, d]), storage);
  const steps = g.op('Slice', [g.op('Shape', [tokens]), L.i64([1]), L.i64([2])]); // [T']
  const x = g.op('Add', [tokens, g.op('Slice', [positions, L.i64([0]), steps, L.i64([0])])]);

  const stream = new ResidualStream(L, x);
  const ln = (name: string): string => stream.norm(name, read(`${name}.weight`, [d]), read(`${name}.bias`, [d]));

  for (let i = 0; i < dims.encoderLayers; i++) {
    const lp = `${p}.layers.${i}`;
    const h = ln(`${lp}.self_attn_layer_norm`);
    const a = `${lp}.self_attn`;
    const { w, b } = fuseQkv(
      read(`${a}.q_proj.weight`, [d, d]), read(`${a}.k_proj.weight`, [d, d]), read(`${a}.v_proj.weight`, [d, d]),
      read(`${a}.q_proj.bias`, [d]), read(`${a}.v_proj.bias`, [d]), d,
    );
    const qkv = L.linear(h, `${a}.qkv`, w, 3 * d, d, b, opts.linear);
    const [q, k, v] = g.opN('Split', [qkv, L.i64([d, d, d])], 3, { axis: -1 });
    const att = g.msOp('MultiHeadAttention', [q!, k!, v!], { num_heads: H, scale: float(1 / Math.sqrt(d / H)) });
    stream.add(L.linear(att, `${a}.out_proj`, read(`${a}.out_proj.weight`, [d, d]), d, d, undefined, opts.linear), read(`${a}.out_proj.bias`, [d]));

    const h2 = ln(`${lp}.final_layer_norm`);
    const f = dims.encoderFfn;
    const up = L.gelu(L.linear(h2, `${lp}.fc1`, read(`${lp}.fc1.weight`, [f, d]), f, d, read(`${lp}.fc1.bias`, [f]), opts.linear));
    stream.add(L.linear(up, `${lp}.fc2`, read(`${lp}.fc2.weight`, [d, f]), d, f, undefined, opts.linear), read(`${lp}.fc2.bias`, [d]));
  }
  const hidden = ln(`${p}.layer_norm`);
  g.output(hidden, ENCODER_IO.hidden, 'float32', ['batch', 'ctx', d]);

  // Cross-attention keys and values, [B, H, T, dh] each.
  const Hd = dims.decoderHeads;
  const dh = d / Hd;
  for (let l = 0; l < dims.decoderLayers; l++) {
    const a = `model.decoder.layers.${l}.encoder_attn`;
    const k = L.linear(hidden, `${a}.k_proj`, read(`${a}.k_proj.weight`, [d, d]), d, d, undefined, opts.crossKv);
    const v = L.linear(hidden, `${a}.v_proj`, read(`${a}.v_proj.weight`, [d, d]), d, d, read(`${a}.v_proj.bias`, [d]), opts.crossKv);
    g.output(L.splitHeads(k, Hd, dh), ENCODER_IO.crossK(l), 'float32', ['batch', Hd, 'ctx', dh]);
    g.output(L.splitHeads(v, Hd, dh), ENCODER_IO.crossV(l), 'float32', ['batch', Hd, 'ctx', dh]);
  }
  return g;
}
