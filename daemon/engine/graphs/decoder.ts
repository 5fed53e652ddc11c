// The decoder graph: one call advances every row of a batch by S tokens. The self-attention
// cache is an INPUT (the caller owns the buffers and writes the new keys/values the graph
// returns into them), so nothing proportional to the cache crosses the binding as an output.
// Rows carry their own positions (`offset`), so rows at different steps share a batch.
//
import { Graph, float, type TensorData } from '../onnx/graph.js';
import type { ModelDims } from '../manifest.js';
import { LayerBuilder, NativeTensors, ResidualStream, type BlockTable, type LinearPrecision } from './layers.js';
import type { WeightReader } from './encoder.js';

export interface DecoderGraphOptions {
  linear: LinearPrecision;
  /** The tied token embedding (input lookup and output projection): float32, or one 8-bit
   *  table (blocks of 32 with scales) serving both. */
  logits: LinearPrecision;
  /** File storage of the tensors that stay in float (positions). */
  floatStorage?: 'fp32' | 'fp16';
}

export const DECODER_IO = {
  tokens: 'tokens', // [B, S] int64
  offset: 'offset', // [B] int64: how many cached positions each row has
  gather: 'gather_pos', // [P] int64: positions within S whose logits are returned
  logits: 'logits', // [B, P, V]
  selfK: (l: number) => `self_k_${l}`, // [B, H, C, dh]
  selfV: (l: number) => `self_v_${l}`, // [B, H, C, dh]
  crossK: (l: number) => `cross_k_${l}`, // [B/R, H, T, dh]
  crossV: (l: number) => `cross_v_${l}`, // [B/R, H, T, dh]
  crossLen: 'cross_len', // [B/R] int32: encoder positions of each window (≤ T; the rest is padding)
  /** [1] int64: R, consecutive rows that share one window's cross keys/values (beam search's
   *  hypotheses); 1 = one window per row. */
  crossGroup: 'cross_group',
  newK: (l: number) => `new_k_${l}`, // [B, H, S, dh]
  newV: (l: number) => `new_v_${l}`, // [B, H, S, dh]
};

const NEG = -1e9;

/** Names of the segment graphs' own inputs and outputs (the rest are DECODER_IO's). */
export const SEGMENT_IO = {
  x: 'x', // [B, S, d]: the residual stream entering the segment
  ctx: 'ctx', // [B, S, d]: the previous layer's cross-attention output (before out_proj)
  mask: 'attn_mask', // [B, 1, S, C + S]: self-attention mask, made by segment 0
  xOut: 'x_out',
  qOut: 'q_out', // [B, S, d]: this layer's cross-attention query, scaled by 1/sqrt(dh)
};

const scaled = (w: Float32Array, s: number): Float32Array => w.map((v) => v * s);

/** Layer l's fused self-attention q/k/v ([3d, d], bias [3d]), the query scaled by 1/sqrt(dh). */
function selfQkvWeights(read: WeightReader, dims: ModelDims, l: number): { w: Float32Array; b: Float32Array } {
  const d = dims.dModel;
  const qScale = 1 / Math.sqrt(d / dims.decoderHeads);
  const a = `model.decoder.layers.${l}.self_attn`;
  const w = new Float32Array(3 * d * d);
  w.set(scaled(read(`${a}.q_proj.weight`, [d, d]), qScale), 0);
  w.set(read(`${a}.k_proj.weight`, [d, d]), d * d);
  w.set(read(`${a}.v_proj.weight`, [d, d]), 2 * d * d);
  const b = new Float32Array(3 * d);
  b.set(scaled(read(`${a}.q_proj.bias`, [d]), qScale), 0);
  b.set(read(`${a}.v_proj.bias`, [d]), 2 * d);
  return { w, b };
}

/** Layer l's cross-attention query projection, scaled by 1/sqrt(dh). */
function crossQueryWeights(read: WeightReader, dims: ModelDims, l: number): { w: Float32Array; b: Float32Array } {
  const d = dims.dModel;
  const qScale = 1 / Math.sqrt(d / dims.decoderHeads);
  const c = `model.decoder.layers.${l}.encoder_attn`;
  return { w: scaled(read(`${c}.q_proj.weight`, [d, d]), qScale), b: scaled(read(`${c}.q_proj.bias`, [d]), qScale) };
}

/** The layer-by-layer pieces both decoder layouts are made of. */
class DecoderParts {
  readonly L: LayerBuilder;
  readonly d: number;
  readonly H: number;
  readonly dh: number;
  readonly V: number;
  private readonly p = 'model.decoder';
  private tableCache: BlockTable | undefined;

  constructor(readonly g: Graph, readonly dims: ModelDims, readonly read: WeightReader, readonly opts: DecoderGraphOptions) {
    this.L = new LayerBuilder(g);
    this.d = dims.dModel;
    this.H = dims.decoderHeads;
    this.dh = this.d / this.H;
    this.V = dims.nVocab;
  }

  /** The tied token embedding as an 8-bit table (when the logits are 8-bit), built once per graph. */
  private table(): BlockTable | undefined {
    if (this.opts.logits === 'fp32') return undefined;
    this.tableCache ??= this.L.blockTable(`${this.p}.embed_tokens`, this.read(`${this.p}.embed_tokens.weight`, [this.V, this.d]), this.V, this.d);
    return this.tableCache;
  }

  private embedName: string | undefined;

  private embedWeight(): string {
    this.embedName ??= this.L.weight(`${this.p}.embed_tokens.weight`, [this.V, this.d], this.read(`${this.p}.embed_tokens.weight`, [this.V, this.d]));
    return this.embedName;
  }

  /** Token + learned position embeddings (per row: offset + 0..S-1). */
  embed(tokens: string, offset: string, steps: string): string {
    const { g, L, d } = this;
    const positions = g.op('Add', [g.op('Unsqueeze', [offset, L.i64([1])]), g.op('Unsqueeze', [steps, L.i64([0])])]); // [B, S]
    const posTable = L.weightStored(`${this.p}.embed_positions.weight`, [this.dims.nTextCtx, d], this.read(`${this.p}.embed_positions.weight`, [this.dims.nTextCtx, d]), this.opts.floatStorage ?? 'fp32');
    const table = this.table();
    const tokenVectors = table ? L.gatherBlockRows(table, tokens) : g.op('Gather', [this.embedWeight(), tokens], { axis: 0 });
    return g.op('Add', [tokenVectors, g.op('Gather', [posTable, positions], { axis: 0 })]);
  }

  /** [B, 1, S, C + S]: cache slot c is visible to row b iff c < offset[b]; new token j is visible
   *  to new token i iff j <= i. */
  selfMask(offset: string, selfK0: string, steps: string): string {
    const { g, L } = this;
    const cacheLen = g.op('Gather', [g.op('Shape', [selfK0]), L.i64([2], [])], { axis: 0 });
    const slots = g.op('Range', [L.i64([0], []), cacheLen, L.i64([1], [])]); // [C]
    const visible = g.op('Less', [g.op('Unsqueeze', [slots, L.i64([0])]), g.op('Unsqueeze', [offset, L.i64([1])])]); // [B, C]
    const cacheMask = g.op('Unsqueeze', [g.op('Where', [visible, L.f32([0], []), L.f32([NEG], [])]), L.i64([1, 2])]); // [B,1,1,C]
    const future = g.op('Greater', [g.op('Unsqueeze', [steps, L.i64([0])]), g.op('Unsqueeze', [steps, L.i64([1])])]); // [S,S]: j > i
    const causalMask = g.op('Where', [future, L.f32([NEG], []), L.f32([0], [])]); // [S, S], broadcasts
    // Cache part per row, causal part shared.
    const zerosS = g.op('Unsqueeze', [g.op('Mul', [g.op('Cast', [steps], { to: 1 }), L.f32([0], [])]), L.i64([0, 1, 3])]); // [1,1,S,1]
    const cachePart = g.op('Add', [cacheMask, zerosS]); // [B,1,S,C]
    const batchZeros = g.op('Unsqueeze', [g.op('Mul', [g.op('Cast', [offset], { to: 1 }), L.f32([0], [])]), L.i64([1, 2, 3])]); // [B,1,1,1]
    const causalPart = g.op('Add', [g.op('Unsqueeze', [causalMask, L.i64([0, 1])]), batchZeros]); // [B,1,S,S]
    return g.op('Concat', [cachePart, causalPart], { axis: 3 });
  }

  norm(stream: ResidualStream, name: string): string {
    return stream.norm(name, this.read(`${name}.weight`, [this.d]), this.read(`${name}.bias`, [this.d]));
  }

  /** Layer l's self-attention with the cache (new keys/values become graph outputs). */
  selfAttention(stream: ResidualStream, l: number, selfK: string, selfV: string, mask: string): void {
    const { g, L, d, H, dh, read } = this;
    const lp = `${this.p}.layers.${l}`;
    const h = this.norm(stream, `${lp}.self_attn_layer_norm`);
    const a = `${lp}.self_attn`;
    const { w: wqkv, b: bqkv } = selfQkvWeights(read, this.dims, l);
    const qkv = L.linear(h, `${a}.qkv`, wqkv, 3 * d, d, bqkv, this.opts.linear);
    const [q, k, v] = g.opN('Split', [qkv, L.i64([d, d, d])], 3, { axis: -1 });
    const k4 = L.splitHeads(k!, H, dh);
    const v4 = L.splitHeads(v!, H, dh);
    g.output(k4, DECODER_IO.newK(l), 'float32', ['batch', H, 'seq', dh]);
    g.output(v4, DECODER_IO.newV(l), 'float32', ['batch', H, 'seq', dh]);
    // Keys/values of the cache followed by the new tokens; the mask hides unused cache slots and
    // future tokens. The concatenation copies C·d floats per layer, far less than the per-node
    // overhead of doing attention in loose ops.
    const kAll = g.op('Concat', [selfK, k4], { axis: 2 });
    const vAll = g.op('Concat', [selfV, v4], { axis: 2 });
    const ctx = g.msOp('MultiHeadAttention', [q!, kAll, vAll, '', '', mask], { num_heads: H, scale: float(1) });
    stream.add(L.linear(ctx, `${a}.out_proj`, read(`${a}.out_proj.weight`, [d, d]), d, d, undefined, this.opts.linear), read(`${a}.out_proj.bias`, [d]));
  }

  /** Layer l's cross-attention query, scaled by 1/sqrt(dh): [B, S, d]. */
  crossQuery(stream: ResidualStream, l: number): string {
    const lp = `${this.p}.layers.${l}`;
    const hc = this.norm(stream, `${lp}.encoder_attn_layer_norm`);
    const { w, b } = crossQueryWeights(this.read, this.dims, l);
    return this.L.linear(hc, `${lp}.encoder_attn.q_proj`, w, this.d, this.d, b, this.opts.linear);
  }

  /** Layer l's cross-attention output projection (of `ctx`, [B, S, d]) and its MLP. */
  crossOutAndMlp(stream: ResidualStream, l: number, ctx: string): void {
    const { L, d, read } = this;
    const lp = `${this.p}.layers.${l}`;
    const c = `${lp}.encoder_attn`;
    stream.add(L.linear(ctx, `${c}.out_proj`, read(`${c}.out_proj.weight`, [d, d]), d, d, undefined, this.opts.linear), read(`${c}.out_proj.bias`, [d]));
    const hm = this.norm(stream, `${lp}.final_layer_norm`);
    const f = this.dims.decoderFfn;
    const up = L.gelu(L.linear(hm, `${lp}.fc1`, read(`${lp}.fc1.weight`, [f, d]), f, d, read(`${lp}.fc1.bias`, [f]), this.opts.linear));
    stream.add(L.linear(up, `${lp}.fc2`, read(`${lp}.fc2.weight`, [d, f]), d, f, undefined, this.opts.linear), read(`${lp}.fc2.bias`, [d]));
  }

  /** Final norm and the tied output projection at positions `gather`: [B, P, V] as `logits`. */
  logits(stream: ResidualStream, gather: string): void {
    const { g, L, d, V } = this;
    const out = this.norm(stream, `${this.p}.layer_norm`); // [B, S, d]
    const picked = g.op('Gather', [out, gather], { axis: 1 }); // [B, P, d]
    const flat = g.op('Reshape', [picked, L.i64([-1, d])]);
    const table = this.table();
    const logits2d = table ? L.blockMatMul(flat, table) : g.op('Gemm', [flat, this.embedWeight()], { transB: 1, alpha: float(1), beta: float(0) });
    const outShape = g.op('Concat', [g.op('Shape', [picked], { end: 2 }), L.i64([V])], { axis: 0 });
    g.output(g.op('Reshape', [logits2d, outShape]), DECODER_IO.logits, 'float32', ['batch', 'npos', V]);
  }

  steps(tokens: string): { seqLen: string; steps: string } {
    const { g, L } = this;
    const seqLen = g.op('Gather', [g.op('Shape', [tokens]), L.i64([1], [])], { axis: 0 }); // scalar S
    return { seqLen, steps: g.op('Range', [L.i64([0], []), seqLen, L.i64([1], [])]) }; // [S]
  }

  selfCacheInput(name: string): string {
    return this.g.input(name, 'float32', ['batch', this.H, 'cache', this.dh]);
  }
}

export function buildDecoderGraph(dims: ModelDims, read: WeightReader, opts: DecoderGraphOptions): Graph {
  const g = new Graph('wx_whisper_decoder');
  const P = new DecoderParts(g, dims, read, opts);
  const { L, d, H, dh } = P;

  const tokens = g.input(DECODER_IO.tokens, 'int64', ['batch', 'seq']);
  const offset = g.input(DECODER_IO.offset, 'int64', ['batch']);
  const gather = g.input(DECODER_IO.gather, 'int64', ['npos']);
  const selfK: string[] = [];
  const selfV: string[] = [];
  const crossK: string[] = [];
  const crossV: string[] = [];
  for (let l = 0; l < dims.decoderLayers; l++) {
    selfK.push(P.selfCacheInput(DECODER_IO.selfK(l)));
    selfV.push(P.selfCacheInput(DECODER_IO.selfV(l)));
    crossK.push(g.input(DECODER_IO.crossK(l), 'float32', ['windows', H, 'ctx', dh]));
    crossV.push(g.input(DECODER_IO.crossV(l), 'float32', ['windows', H, 'ctx', dh]));
  }
  // A window encoded with a shorter audio context (dictation) sits at the start of its row's
  // cross K/V; MultiHeadAttention ignores the positions past its length (right padding).
  const crossLen = g.input(DECODER_IO.crossLen, 'int32', ['windows']);
  // Rows of one window (R of them, consecutive) attend to its keys/values as R queries of one
  // batch entry: the window's keys and values are read once per step instead of once per row.
  const crossGroup = g.input(DECODER_IO.crossGroup, 'int64', [1]);

  const { seqLen, steps } = P.steps(tokens);
  const groupedShape = g.op('Concat', [L.i64([-1]), g.op('Mul', [crossGroup, g.op('Unsqueeze', [seqLen, L.i64([0])])]), L.i64([d])], { axis: 0 }); // [B/R, R·S, d]
  const stream = new ResidualStream(L, P.embed(tokens, offset, steps));
  const attnMask = P.selfMask(offset, selfK[0]!, steps);

  for (let l = 0; l < dims.decoderLayers; l++) {
    P.selfAttention(stream, l, selfK[l]!, selfV[l]!, attnMask);
    // Cross-attention against the window's precomputed keys/values.
    const qc = P.crossQuery(stream, l);
    const qg = g.op('Reshape', [qc, groupedShape]);
    const cg = g.msOp('MultiHeadAttention', [qg, crossK[l]!, crossV[l]!, '', crossLen], { num_heads: H, scale: float(1) });
    P.crossOutAndMlp(stream, l, g.op('Reshape', [cg, g.op('Shape', [qc])]));
  }
  P.logits(stream, gather);
  return g;
}

/**
 * The decoder cut at every cross-attention, for a runtime that does cross-attention itself (the
 * native int8 attention, cross-int8.ts): segment 0 embeds the tokens and runs layer 0 up to its
 * cross-attention query; segment l (1 ≤ l < layers) finishes layer l-1 from its cross-attention
 * output `ctx` and runs layer l up to its query; the last segment finishes the last layer and
 * gives the logits. Self-attention caches are inputs as in the whole graph.
 */
export function buildDecoderSegments(dims: ModelDims, read: WeightReader, opts: DecoderGraphOptions): Graph[] {
  const NL = dims.decoderLayers;
  const graphs: Graph[] = [];
  for (let seg = 0; seg <= NL; seg++) {
    const g = new Graph(`wx_whisper_decoder_${seg}`);
    const P = new DecoderParts(g, dims, read, opts);
    const { L, d } = P;
    let stream: ResidualStream;
    let mask = '';
    if (seg === 0) {
      const tokens = g.input(DECODER_IO.tokens, 'int64', ['batch', 'seq']);
      const offset = g.input(DECODER_IO.offset, 'int64', ['batch']);
      const selfK = P.selfCacheInput(DECODER_IO.selfK(0));
      const selfV = P.selfCacheInput(DECODER_IO.selfV(0));
      const { steps } = P.steps(tokens);
      stream = new ResidualStream(L, P.embed(tokens, offset, steps));
      mask = P.selfMask(offset, selfK, steps);
      g.output(mask, SEGMENT_IO.mask, 'float32', ['batch', 1, 'seq', 'keys']);
      P.selfAttention(stream, 0, selfK, selfV, mask);
    } else {
      const x = g.input(SEGMENT_IO.x, 'float32', ['batch', 'seq', d]);
      const ctx = g.input(SEGMENT_IO.ctx, 'float32', ['batch', 'seq', d]);
      stream = new ResidualStream(L, x);
      P.crossOutAndMlp(stream, seg - 1, ctx);
      if (seg === NL) {
        P.logits(stream, g.input(DECODER_IO.gather, 'int64', ['npos']));
        graphs.push(g);
        continue;
      }
      mask = g.input(SEGMENT_IO.mask, 'float32', ['batch', 1, 'seq', 'keys']);
      P.selfAttention(stream, seg, P.selfCacheInput(DECODER_IO.selfK(seg)), P.selfCacheInput(DECODER_IO.selfV(seg)), mask);
    }
    const q = P.crossQuery(stream, seg);
    g.output(stream.value, SEGMENT_IO.xOut, 'float32', ['batch', 'seq', d]);
    g.output(q, SEGMENT_IO.qOut, 'float32', ['batch', 'seq', d]);
    graphs.push(g);
  }
  return graphs;
}

/** Names of the native decoder's tensors (layouts: NativeTensors in layers.ts); `positions` is
 *  float16 [nTextCtx, d]. */
export const NATIVE_DECODER = {
  selfNorm: (l: number) => `layers.${l}.self_norm`,
  qkv: (l: number) => `layers.${l}.qkv`,
  selfOut: (l: number) => `layers.${l}.self_out`,
  crossNorm: (l: number) => `layers.${l}.cross_norm`,
  crossQuery: (l: number) => `layers.${l}.cross_q`,
  crossOut: (l: number) => `layers.${l}.cross_out`,
  ffnNorm: (l: number) => `layers.${l}.ffn_norm`,
  fc1: (l: number) => `layers.${l}.fc1`,
  fc2: (l: number) => `layers.${l}.fc2`,
  norm: 'norm',
  tokens: 'tokens',
  positions: 'positions',
};

/**
 * The tensors a native INT8 decoder step reads, in the bytes the INT8 decoder segments store
 * (same fused, scaled and quantised weights), so the segments' shared data file holds them once.
 */
export function decoderNativeTensors(dims: ModelDims, read: WeightReader): Map<string, TensorData> {
  const d = dims.dModel;
  const f = dims.decoderFfn;
  const p = 'model.decoder';
  const N = NATIVE_DECODER;
  const t = new NativeTensors();
  const norm = (name: string, src: string) => t.norm(name, read(`${src}.weight`, [d]), read(`${src}.bias`, [d]));
  for (let l = 0; l < dims.decoderLayers; l++) {
    const lp = `${p}.layers.${l}`;
    norm(N.selfNorm(l), `${lp}.self_attn_layer_norm`);
    const qkv = selfQkvWeights(read, dims, l);
    t.linear(N.qkv(l), qkv.w, 3 * d, d, qkv.b);
    t.linear(N.selfOut(l), read(`${lp}.self_attn.out_proj.weight`, [d, d]), d, d, read(`${lp}.self_attn.out_proj.bias`, [d]));
    norm(N.crossNorm(l), `${lp}.encoder_attn_layer_norm`);
    const cq = crossQueryWeights(read, dims, l);
    t.linear(N.crossQuery(l), cq.w, d, d, cq.b);
    t.linear(N.crossOut(l), read(`${lp}.encoder_attn.out_proj.weight`, [d, d]), d, d, read(`${lp}.encoder_attn.out_proj.bias`, [d]));
    norm(N.ffnNorm(l), `${lp}.final_layer_norm`);
    t.linear(N.fc1(l), read(`${lp}.fc1.weight`, [f, d]), f, d, read(`${lp}.fc1.bias`, [f]));
    t.linear(N.fc2(l), read(`${lp}.fc2.weight`, [d, f]), d, f, read(`${lp}.fc2.bias`, [d]));
  }
  norm(N.norm, `${p}.layer_norm`);
  t.linear(N.tokens, read(`${p}.embed_tokens.weight`, [dims.nVocab, d]), dims.nVocab, d);
  t.halfFloats(N.positions, read(`${p}.embed_positions.weight`, [dims.nTextCtx, d]), [dims.nTextCtx, d]);
  return t.map;
}
