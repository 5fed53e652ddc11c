// The encoder graph: log-mel windows [B, n_mels, 3000] → (hidden states, and the cross-attention
// keys/values of every decoder layer). Computing cross K/V here, once per window, keeps the
// decoder's per-token work to its own layers.
import { Graph, float, type TensorData } from '../onnx/graph.js';
import type { ModelDims } from '../manifest.js';
import { LayerBuilder, LN_EPS, NativeTensors, ResidualStream, type LinearPrecision } from './layers.js';

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

/** The conv stem and positions: mel [B, n_mels, frames] → [B, frames / 2, d]. */
function addStem(g: Graph, L: LayerBuilder, dims: ModelDims, read: WeightReader, storage: 'fp32' | 'fp16'): string {
  const d = dims.dModel;
  const T = dims.nAudioCtx;
  const p = 'model.encoder';
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
  return g.op('Add', [tokens, g.op('Slice', [positions, L.i64([0]), steps, L.i64([0])])]);
}

/** The fused q/k/v projection of encoder layer `i` ([3d, d] weights, [3d] bias). */
function encoderQkv(read: WeightReader, i: number, d: number): { w: Float32Array; b: Float32Array } {
  const a = `model.encoder.layers.${i}.self_attn`;
  return fuseQkv(
    read(`${a}.q_proj.weight`, [d, d]), read(`${a}.k_proj.weight`, [d, d]), read(`${a}.v_proj.weight`, [d, d]),
    read(`${a}.q_proj.bias`, [d]), read(`${a}.v_proj.bias`, [d]), d,
  );
}

function selfAttention(g: Graph, L: LayerBuilder, qkv: string, d: number, heads: number): string {
  const [q, k, v] = g.opN('Split', [qkv, L.i64([d, d, d])], 3, { axis: -1 });
  return g.msOp('MultiHeadAttention', [q!, k!, v!], { num_heads: heads, scale: float(1 / Math.sqrt(d / heads)) });
}

export function buildEncoderGraph(dims: ModelDims, read: WeightReader, opts: EncoderGraphOptions): Graph {
  const g = new Graph('wx_whisper_encoder');
  const L = new LayerBuilder(g);
  const d = dims.dModel;
  const H = dims.encoderHeads;
  const p = 'model.encoder';
  const storage = opts.floatStorage ?? 'fp32';

  const x = addStem(g, L, dims, read, storage);
  const stream = new ResidualStream(L, x);
  const ln = (name: string): string => stream.norm(name, read(`${name}.weight`, [d]), read(`${name}.bias`, [d]));

  for (let i = 0; i < dims.encoderLayers; i++) {
    const lp = `${p}.layers.${i}`;
    const h = ln(`${lp}.self_attn_layer_norm`);
    const a = `${lp}.self_attn`;
    const { w, b } = encoderQkv(read, i, d);
    const att = selfAttention(g, L, L.linear(h, `${a}.qkv`, w, 3 * d, d, b, opts.linear), d, H);
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

/** Inputs and outputs of the encoder's pieces run around the native int8 linears. */
export const ENCODER_PIECES_IO = { mel: ENCODER_IO.mel, x: 'x', qkv: 'qkv', attention: 'attention' };

/** The encoder's conv stem and positions alone: mel → x [B, T', d]. */
export function buildEncoderStem(dims: ModelDims, read: WeightReader, opts: Pick<EncoderGraphOptions, 'floatStorage'>): Graph {
  const g = new Graph('wx_whisper_encoder_stem');
  const L = new LayerBuilder(g);
  g.output(addStem(g, L, dims, read, opts.floatStorage ?? 'fp32'), ENCODER_PIECES_IO.x, 'float32', ['batch', 'ctx', dims.dModel]);
  return g;
}

/** One encoder self-attention without weights: fused q/k/v [B, T, 3d] → [B, T, d] (every layer
 *  runs the same graph; the projections around it are native). */
export function buildEncoderAttention(dims: ModelDims): Graph {
  const g = new Graph('wx_whisper_encoder_attention');
  const d = dims.dModel;
  const qkv = g.input(ENCODER_PIECES_IO.qkv, 'float32', ['batch', 'ctx', 3 * d]);
  g.output(selfAttention(g, new LayerBuilder(g), qkv, d, dims.encoderHeads), ENCODER_PIECES_IO.attention, 'float32', ['batch', 'ctx', d]);
  return g;
}

/** Names of the native encoder's tensors (layouts: NativeTensors in layers.ts). */
export const NATIVE_ENCODER = {
  attnNorm: (i: number) => `layers.${i}.attn_norm`,
  qkv: (i: number) => `layers.${i}.qkv`,
  out: (i: number) => `layers.${i}.out`,
  ffnNorm: (i: number) => `layers.${i}.ffn_norm`,
  fc1: (i: number) => `layers.${i}.fc1`,
  fc2: (i: number) => `layers.${i}.fc2`,
  norm: 'norm',
  crossK: (l: number) => `cross.${l}.k`,
  crossV: (l: number) => `cross.${l}.v`,
  /** The conv stem as int8 linears over 3 frames ([d, 3·channels], tap-major), and the
   *  positions (float16, the bytes the stem graph stores). Absent from models imported before. */
  conv1: 'stem.conv1',
  conv2: 'stem.conv2',
  positions: 'stem.positions',
  eps: LN_EPS,
};

/** A conv weight [out, in, 3] as a linear over 3 consecutive frames: [out, 3·in], tap-major. */
export function convAsLinear(w: Float32Array, out: number, inC: number): Float32Array {
  const lin = new Float32Array(out * 3 * inC);
  for (let o = 0; o < out; o++)
    for (let c = 0; c < inC; c++)
      for (let tap = 0; tap < 3; tap++) lin[(o * 3 + tap) * inC + c] = w[(o * inC + c) * 3 + tap]!;
  return lin;
}

/**
 * The tensors the native int8 encoder reads, in the bytes the whole int8 encoder graph stores
 * (the same block quantisation), so a shared data file holds them once.
 */
export function encoderNativeTensors(dims: ModelDims, read: WeightReader): Map<string, TensorData> {
  const d = dims.dModel;
  const f = dims.encoderFfn;
  const t = new NativeTensors();
  const norm = (name: string, src: string) => t.norm(name, read(`${src}.weight`, [d]), read(`${src}.bias`, [d]));
  for (let i = 0; i < dims.encoderLayers; i++) {
    const lp = `model.encoder.layers.${i}`;
    norm(NATIVE_ENCODER.attnNorm(i), `${lp}.self_attn_layer_norm`);
    const { w, b } = encoderQkv(read, i, d);
    t.linear(NATIVE_ENCODER.qkv(i), w, 3 * d, d, b);
    t.linear(NATIVE_ENCODER.out(i), read(`${lp}.self_attn.out_proj.weight`, [d, d]), d, d, read(`${lp}.self_attn.out_proj.bias`, [d]));
    norm(NATIVE_ENCODER.ffnNorm(i), `${lp}.final_layer_norm`);
    t.linear(NATIVE_ENCODER.fc1(i), read(`${lp}.fc1.weight`, [f, d]), f, d, read(`${lp}.fc1.bias`, [f]));
    t.linear(NATIVE_ENCODER.fc2(i), read(`${lp}.fc2.weight`, [d, f]), d, f, read(`${lp}.fc2.bias`, [d]));
  }
  norm(NATIVE_ENCODER.norm, 'model.encoder.layer_norm');
  const stem = (name: string, src: string, inC: number) => t.linear(name, convAsLinear(read(`${src}.weight`, [d, inC, 3]), d, inC), d, 3 * inC, read(`${src}.bias`, [d]));
  stem(NATIVE_ENCODER.conv1, 'model.encoder.conv1', dims.nMels);
  stem(NATIVE_ENCODER.conv2, 'model.encoder.conv2', d);
  t.halfFloats(NATIVE_ENCODER.positions, read('model.encoder.embed_positions.weight', [dims.nAudioCtx, d]), [dims.nAudioCtx, d]);
  for (let l = 0; l < dims.decoderLayers; l++) {
    const a = `model.decoder.layers.${l}.encoder_attn`;
    t.linear(NATIVE_ENCODER.crossK(l), read(`${a}.k_proj.weight`, [d, d]), d, d);
    t.linear(NATIVE_ENCODER.crossV(l), read(`${a}.v_proj.weight`, [d, d]), d, d, read(`${a}.v_proj.bias`, [d]));
  }
  return t.map;
}
