// The decoder graph: one call advances every row of a batch by S tokens. The self-attention
// cache is an INPUT (the caller owns the buffers and writes the new keys/values the graph
// returns into them), so nothing proportional to the cache crosses the binding as an output.
// Rows carry their own positions (`offset`), so rows at different steps share a batch.
//
import { Graph, float } from '../onnx/graph.js';
import type { ModelDims } from '../manifest.js';
import { LayerBuilder, ResidualStream, type LinearPrecision } from './layers.js';
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

export function buildDecoderGraph(dims: ModelDims, read: WeightReader, opts: DecoderGraphOptions): Graph {
  const g = new Graph('wx_whisper_decoder');
  const L = new LayerBuilder(g);
  const d = dims.dModel;
  const H = dims.decoderHeads;
  const dh = d / H;
  const V = dims.nVocab;
  const p = 'model.decoder';
  const qScale = 1 / Math.sqrt(dh);

  const tokens = g.input(DECODER_IO.tokens, 'int64', ['batch', 'seq']);
  const offset = g.input(DECODER_IO.offset, 'int64', ['batch']);
  const gather = g.input(DECODER_IO.gather, 'int64', ['npos']);
  const selfK: string[] = [];
  const selfV: string[] = [];
  const crossK: string[] = [];
  const crossV: string[] = [];
  for (let l = 0; l < dims.decoderLayers; l++) {
    selfK.push(g.input(DECODER_IO.selfK(l), 'float32', ['batch', H, 'cache', dh]));
    selfV.push(g.input(DECODER_IO.selfV(l), 'float32', ['batch', H, 'cache', dh]));
    crossK.push(g.input(DECODER_IO.crossK(l), 'float32', ['windows', H, 'ctx', dh]));
    crossV.push(g.input(DECODER_IO.crossV(l), 'float32', ['windows', H, 'ctx', dh]));
  }
  // A window encoded with a shorter audio context (dictation) sits at the start of its row's
  // cross K/V; MultiHeadAttention ignores the positions past its length (right padding).
  const crossLen = g.input(DECODER_IO.crossLen, 'int32', ['windows']);
  // Rows of one window (R of them, consecutive) attend to its keys/values as R queries of one
  // batch entry: the window's keys and values are read once per step instead of once per row.
  const crossGroup = g.input(DECODER_IO.crossGroup, 'int64', [1]);

  // Embeddings: token + learned position (per row: offset + 0..S-1).
  const embed = read(`${p}.embed_tokens.weight`, [V, d]);
  const table = opts.logits !== 'fp32' ? L.blockTable(`${p}.embed_tokens`, embed, V, d) : undefined;
  const embedName = table ? '' : L.weight(`${p}.embed_tokens.weight`, [V, d], embed);
  const seqLen = g.op('Gather', [g.op('Shape', [tokens]), L.i64([1], [])], { axis: 0 }); // scalar S
  const groupedShape = g.op('Concat', [L.i64([-1]), g.op('Mul', [crossGroup, g.op('Unsqueeze', [seqLen, L.i64([0])])]), L.i64([d])], { axis: 0 }); // [B/R, R·S, d]
  const steps = g.op('Range', [L.i64([0], []), seqLen, L.i64([1], [])]); // [S]
  const positions = g.op('Add', [g.op('Unsqueeze', [offset, L.i64([1])]), g.op('Unsqueeze', [steps, L.i64([0])])]); // [B, S]
  const posTable = L.weightStored(`${p}.embed_positions.weight`, [dims.nTextCtx, d], read(`${p}.embed_positions.weight`, [dims.nTextCtx, d]), opts.floatStorage ?? 'fp32');
  const tokenVectors = table ? L.gatherBlockRows(table, tokens) : g.op('Gather', [embedName, tokens], { axis: 0 });
  const x = g.op('Add', [tokenVectors, g.op('Gather', [posTable, positions], { axis: 0 })]);

  // Masks: cache slot c is visible to row b iff c < offset[b]; new token j is visible to new
  // token i iff j <= i.
  const cacheLen = g.op('Gather', [g.op('Shape', [selfK[0]!]), L.i64([2], [])], { axis: 0 });
  const slots = g.op('Range', [L.i64([0], []), cacheLen, L.i64([1], [])]); // [C]
  const visible = g.op('Less', [g.op('Unsqueeze', [slots, L.i64([0])]), g.op('Unsqueeze', [offset, L.i64([1])])]); // [B, C]
  const cacheMask = g.op('Unsqueeze', [g.op('Where', [visible, L.f32([0], []), L.f32([NEG], [])]), L.i64([1, 2])]); // [B,1,1,C]
  const future = g.op('Greater', [g.op('Unsqueeze', [steps, L.i64([0])]), g.op('Unsqueeze', [steps, L.i64([1])])]); // [S,S]: j > i
  const causalMask = g.op('Where', [future, L.f32([NEG], []), L.f32([0], [])]); // [S, S], broadcasts
  // [B, 1, S, C + S]: cache part per row, causal part shared.
  const zerosS = g.op('Unsqueeze', [g.op('Mul', [g.op('Cast', [steps], { to: 1 }), L.f32([0], [])]), L.i64([0, 1, 3])]); // [1,1,S,1]
  const cachePart = g.op('Add', [cacheMask, zerosS]); // [B,1,S,C]
  const batchZeros = g.op('Unsqueeze', [g.op('Mul', [g.op('Cast', [offset], { to: 1 }), L.f32([0], [])]), L.i64([1, 2, 3])]); // [B,1,1,1]
  const causalPart = g.op('Add', [g.op('Unsqueeze', [causalMask, L.i64([0, 1])]), batchZeros]); // [B,1,S,S]
  const attnMask = g.op('Concat', [cachePart, causalPart], { axis: 3 });

  const stream = new ResidualStream(L, x);
  const ln = (name: string): string => stream.norm(name, read(`${name}.weight`, [d]), read(`${name}.bias`, [d]));

  const scaled = (w: Float32Array, s: number) => w.map((v) => v * s);

  for (let l = 0; l < dims.decoderLayers; l++) {
    const lp = `${p}.layers.${l}`;
    // Self-attention with the cache.
    const h = ln(`${lp}.self_attn_layer_norm`);
    const a = `${lp}.self_attn`;
    const wqkv = new Float32Array(3 * d * d);
    wqkv.set(scaled(read(`${a}.q_proj.weight`, [d, d]), qScale), 0);
    wqkv.set(read(`${a}.k_proj.weight`, [d, d]), d * d);
    wqkv.set(read(`${a}.v_proj.weight`, [d, d]), 2 * d * d);
    const bqkv = new Float32Array(3 * d);
    bqkv.set(scaled(read(`${a}.q_proj.bias`, [d]), qScale), 0);
    bqkv.set(read(`${a}.v_proj.bias`, [d]), 2 * d);
    const qkv = L.linear(h, `${a}.qkv`, wqkv, 3 * d, d, bqkv, opts.linear);
    const [q, k, v] = g.opN('Split', [qkv, L.i64([d, d, d])], 3, { axis: -1 });
    const k4 = L.splitHeads(k!, H, dh);
    const v4 = L.splitHeads(v!, H, dh);
    g.output(k4, DECODER_IO.newK(l), 'float32', ['batch', H, 'seq', dh]);
    g.output(v4, DECODER_IO.newV(l), 'float32', ['batch', H, 'seq', dh]);
    // Keys/values of the cache followed by the new tokens; the mask hides unused cache slots and
    // future tokens. The concatenation copies C·d floats per layer, far less than the per-node
    // overhead of doing attention in loose ops.
    const kAll = g.op('Concat', [selfK[l]!, k4], { axis: 2 });
    const vAll = g.op('Concat', [selfV[l]!, v4], { axis: 2 });
    const ctx = g.msOp('MultiHeadAttention', [q!, kAll, vAll, '', '', attnMask], { num_heads: H, scale: float(1) });
    stream.add(L.linear(ctx, `${a}.out_proj`, read(`${a}.out_proj.weight`, [d, d]), d, d, undefined, opts.linear), read(`${a}.out_proj.bias`, [d]));

    // Cross-attention against the window's precomputed keys/values.
    const hc = ln(`${lp}.encoder_attn_layer_norm`);
    const c = `${lp}.encoder_attn`;
    const qc = L.linear(hc, `${c}.q_proj`, scaled(read(`${c}.q_proj.weight`, [d, d]), qScale), d, d, scaled(read(`${c}.q_proj.bias`, [d]), qScale), opts.linear);
    const qg = g.op('Reshape', [qc, groupedShape]);
    const cg = g.msOp('MultiHeadAttention', [qg, crossK[l]!, crossV[l]!, '', crossLen], { num_heads: H, scale: float(1) });
    const cctx = g.op('Reshape', [cg, g.op('Shape', [qc])]);
    stream.add(L.linear(cctx, `${c}.out_proj`, read(`${c}.out_proj.weight`, [d, d]), d, d, undefined, opts.linear), read(`${c}.out_proj.bias`, [d]));

    const hm = ln(`${lp}.final_layer_norm`);
    const f = dims.decoderFfn;
    const up = L.gelu(L.linear(hm, `${lp}.fc1`, read(`${lp}.fc1.weight`, [f, d]), f, d, read(`${lp}.fc1.bias`, [f]), opts.linear));
    stream.add(L.linear(up, `${lp}.fc2`, read(`${lp}.fc2.weight`, [d, f]), d, f, undefined, opts.linear), read(`${lp}.fc2.bias`, [d]));
  }
  const out = ln(`${p}.layer_norm`); // [B, S, d]
  const picked = g.op('Gather', [out, gather], { axis: 1 }); // [B, P, d]
  const flat = g.op('Reshape', [picked, L.i64([-1, d])]);
  const logits2d = table ? L.blockMatMul(flat, table) : g.op('Gemm', [flat, embedName], { transB: 1, alpha: float(1), beta: float(0) });
  const outShape = g.op('Concat', [g.op('Shape', [picked], { end: 2 }), L.i64([V])], { axis: 0 });
  g.output(g.op('Reshape', [logits2d, outShape]), DECODER_IO.logits, 'float32', ['batch', 'npos', V]);
  return g;
}
