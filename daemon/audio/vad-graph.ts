// Our ONNX graph for Silero VAD v5, built at load time from the weights in Silero's own file.
//
// Silero's graph runs one 576-sample frame per row and call: its convolutions see 4 (then 2,
// then 1) time positions per frame, so ONNX Runtime runs one tiny GEMM per frame, and its
// LSTM takes one step per call. Only the LSTM is recurrent. This graph takes a whole block of
// frames [T, B, 576] at once: the STFT and the four encoder convolutions become single large
// MatMuls over all T·B frames (im2col done with Slice/Concat), and the LSTM runs the T steps in
// one op. It computes the same function as the 16-kHz branch of the original (test/vad.test.ts
// compares them on real audio), so a stream carries its state from block to block exactly;
// with T = 1 it also serves live streams.
import fs from 'node:fs';
import { Graph, encodeModel, f32Tensor, i64Tensor } from '../engine/onnx/graph.js';
import { WxError } from '../errors.js';

// ---- reading the weights out of the ONNX file ---------------------------------------------

interface PbField {
  no: number;
  wire: number;
  /** varint value (wire 0) */
  n: number;
  /** payload (wire 2) */
  bytes: Uint8Array;
}

/** Top-level fields of one protobuf message (enough of the format for onnx.proto). */
function* fields(buf: Uint8Array): Generator<PbField> {
  let i = 0;
  const varint = (): number => {
    let result = 0;
    let mul = 1;
    for (;;) {
      if (i >= buf.length) throw new Error('truncated varint');
      const b = buf[i++]!;
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 128;
    }
  };
  while (i < buf.length) {
    const key = varint();
    const no = Math.floor(key / 8);
    const wire = key & 7;
    if (wire === 0) yield { no, wire, n: varint(), bytes: new Uint8Array(0) };
    else if (wire === 2) {
      const len = varint();
      if (i + len > buf.length) throw new Error('truncated field');
      yield { no, wire, n: len, bytes: buf.subarray(i, i + len) };
      i += len;
    } else if (wire === 5) i += 4;
    else if (wire === 1) i += 8;
    else throw new Error(`unsupported protobuf wire type ${wire}`);
  }
}

const utf8 = new TextDecoder();

interface RawTensor {
  name: string;
  dims: number[];
  values: Float32Array;
}

function readTensor(buf: Uint8Array): RawTensor {
  let name = '';
  const dims: number[] = [];
  let dataType = 0;
  let raw: Uint8Array | undefined;
  for (const f of fields(buf)) {
    if (f.no === 1 && f.wire === 0) dims.push(f.n);
    else if (f.no === 1 && f.wire === 2) dims.push(...packedVarints(f.bytes));
    else if (f.no === 2) dataType = f.n;
    else if (f.no === 8) name = utf8.decode(f.bytes);
    else if (f.no === 9) raw = f.bytes;
  }
  if (dataType !== 1 || !raw) return { name, dims, values: new Float32Array(0) };
  const copy = new Uint8Array(raw); // aligned copy
  return { name, dims, values: new Float32Array(copy.buffer, 0, copy.byteLength / 4) };
}

function packedVarints(bytes: Uint8Array): number[] {
  const out: number[] = [];
  let value = 0;
  let mul = 1;
  for (const b of bytes) {
    value += (b & 0x7f) * mul;
    mul *= 128;
    if (b < 0x80) {
      out.push(value);
      value = 0;
      mul = 1;
    }
  }
  return out;
}

function child(buf: Uint8Array, no: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (const f of fields(buf)) if (f.no === no && f.wire === 2) out.push(f.bytes);
  return out;
}

function nodeInfo(node: Uint8Array): { op: string; attrs: Map<string, Uint8Array> } {
  let op = '';
  const attrs = new Map<string, Uint8Array>();
  for (const f of fields(node)) {
    if (f.no === 4) op = utf8.decode(f.bytes);
    if (f.no === 5) {
      let name = '';
      for (const a of fields(f.bytes)) if (a.no === 1) name = utf8.decode(a.bytes);
      attrs.set(name, f.bytes);
    }
  }
  return { op, attrs };
}

export interface SileroWeights {
  /** STFT basis folded (see foldStftBasis): [128, 129] and [127, 129]. */
  stftCos: Float32Array;
  stftSin: Float32Array;
  enc: { w: Float32Array; b: Float32Array; cin: number; cout: number }[]; // [cout, cin, 3]
  weightIh: Float32Array; // [512, 128], PyTorch gate order i, f, g, o
  weightHh: Float32Array;
  biasIh: Float32Array; // [512]
  biasHh: Float32Array;
  outW: Float32Array; // [1, 128, 1]
  outB: Float32Array; // [1]
}

/** The 16-kHz branch's weights: the constants of the `then` graph of the top-level If(sr == 16000). */
export function readSileroWeights(modelPath: string): SileroWeights {
  const fail = (why: string) => new WxError('vad.model_mismatch', `${modelPath}: not the Silero VAD v5 layout (${why})`, { model: modelPath });
  let model: Uint8Array;
  try {
    model = new Uint8Array(fs.readFileSync(modelPath));
  } catch (err) {
    throw new WxError('vad.model_missing', `cannot read the Silero VAD model ${modelPath}: ${(err as Error).message}`, { model: modelPath }, { cause: err });
  }
  try {
    return weightsFromModel(model, fail);
  } catch (err) {
    if (err instanceof WxError) throw err;
    throw fail(`not an ONNX file: ${(err as Error).message}`);
  }
}

function weightsFromModel(model: Uint8Array, fail: (why: string) => WxError): SileroWeights {
  const graph = child(model, 7)[0];
  if (!graph) throw fail('no graph');
  const tensors = new Map<string, RawTensor>();
  for (const node of child(graph, 1)) {
    const { op, attrs } = nodeInfo(node);
    if (op !== 'If') continue;
    const then = attrs.get('then_branch');
    const sub = then && child(then, 6)[0];
    if (!sub) continue;
    for (const inner of child(sub, 1)) {
      const info = nodeInfo(inner);
      const value = info.op === 'Constant' ? info.attrs.get('value') : undefined;
      const t = value && child(value, 5)[0];
      if (!t) continue;
      const tensor = readTensor(t);
      if (tensor.name && tensor.values.length) tensors.set(tensor.name, tensor);
    }
    break;
  }
  const get = (name: string, dims: number[]): Float32Array => {
    const t = tensors.get(name);
    if (!t) throw fail(`missing ${name}`);
    if (t.dims.join(',') !== dims.join(',')) throw fail(`${name} has shape [${t.dims}], expected [${dims}]`);
    return t.values;
  };
  const enc = [
    [129, 128],
    [128, 64],
    [64, 64],
    [64, 128],
  ].map(([cin, cout], i) => ({ w: get(`encoder.${i}.reparam_conv.weight`, [cout!, cin!, 3]), b: get(`encoder.${i}.reparam_conv.bias`, [cout!]), cin: cin!, cout: cout! }));
  const folded = foldStftBasis(get('stft.forward_basis_buffer', [258, 1, 256]));
  if (!folded) throw fail('the STFT basis is not a windowed DFT');
  return {
    stftCos: folded.cos,
    stftSin: folded.sin,
    enc,
    weightIh: get('decoder.rnn.weight_ih', [512, 128]),
    weightHh: get('decoder.rnn.weight_hh', [512, 128]),
    biasIh: get('decoder.rnn.bias_ih', [512]),
    biasHh: get('decoder.rnn.bias_hh', [512]),
    outW: get('decoder.decoder.2.weight', [1, 128, 1]),
    outB: get('decoder.decoder.2.bias', [1]),
  };
}

// ---- building the graph ----------------------------------------------------------------------

/** Conv weights [cout, cin, k] → MatMul weights [k·cin, cout] for im2col rows laid out tap-major. */
function convAsMatmul(w: Float32Array, cout: number, cin: number, taps: readonly number[]): Float32Array {
  const out = new Float32Array(taps.length * cin * cout);
  taps.forEach((k, ti) => {
    for (let c = 0; c < cin; c++) for (let o = 0; o < cout; o++) out[(ti * cin + c) * cout + o] = w[(o * cin + c) * 3 + k]!;
  });
  return out;
}

/**
 * The STFT basis [258, 256] folded around k = 128, when it has the symmetry of a windowed DFT
 * with a window that is 0 at k = 0 (Silero's periodic Hann): `cos` [128, 129] (rows k = 1 … 127,
 * then 128) and `sin` [127, 129]. Undefined if the basis lacks that symmetry.
 */
function foldStftBasis(basis: Float32Array): { cos: Float32Array; sin: Float32Array } | undefined {
  const at = (row: number, k: number) => basis[row * 256 + k]!;
  let scale = 0;
  for (const v of basis) scale = Math.max(scale, Math.abs(v));
  const tol = 1e-6 * scale;
  const cos = new Float32Array(128 * 129);
  const sin = new Float32Array(127 * 129);
  for (let f = 0; f < 129; f++) {
    if (Math.abs(at(f, 0)) > tol || Math.abs(at(129 + f, 0)) > tol || Math.abs(at(129 + f, 128)) > tol) return undefined;
    for (let k = 1; k < 128; k++) {
      if (Math.abs(at(f, k) - at(f, 256 - k)) > tol || Math.abs(at(129 + f, k) + at(129 + f, 256 - k)) > tol) return undefined;
      cos[(k - 1) * 129 + f] = at(f, k);
      sin[(k - 1) * 129 + f] = at(129 + f, k);
    }
    cos[127 * 129 + f] = at(f, 128);
  }
  return { cos, sin };
}

/** PyTorch LSTM gate blocks (i, f, g, o) → ONNX order (i, o, f, c). */
function onnxGateOrder(w: Float32Array, hidden: number, cols: number): Float32Array {
  const out = new Float32Array(w.length);
  const block = hidden * cols;
  [0, 3, 1, 2].forEach((src, dst) => out.set(w.subarray(src * block, (src + 1) * block), dst * block));
  return out;
}

/**
 * ONNX model: `frames` [T, B, 576] (each row a 64-sample context + 512 new samples), `h0`, `c0`
 * [1, B, 128] → `probs` [T, B], `hN`, `cN` [1, B, 128].
 */
export function buildFastSileroModel(w: SileroWeights): Uint8Array {
  const g = new Graph('silero_vad_v5_blocks');
  const c64 = (vals: number[]) => g.initializer('c', i64Tensor([vals.length], vals));
  const frames = g.input('frames', 'float32', ['T', 'B', 576]);
  const h0 = g.input('h0', 'float32', [1, 'B', 128]);
  const c0 = g.input('c0', 'float32', [1, 'B', 128]);
  const slice = (x: string, starts: number[], ends: number[], axes: number[], steps?: number[]) =>
    g.op('Slice', steps ? [x, c64(starts), c64(ends), c64(axes), c64(steps)] : [x, c64(starts), c64(ends), c64(axes)]);
  const linear = (x: string, wt: Float32Array, rows: number, cols: number, b: Float32Array) =>
    g.op('Add', [g.op('MatMul', [x, g.initializer('w', f32Tensor([rows, cols], wt))]), g.initializer('b', f32Tensor([cols], b))]);

  // STFT: reflect-pad 64 on the right, 4 windows of 256 at hop 128 = halves (j, j+1) of 5×128.
  const flat = g.op('Reshape', [frames, c64([-1, 576])]);
  const padded = g.op('Pad', [flat, c64([0, 0, 0, 64])], { mode: 'reflect' });
  const halves = g.op('Reshape', [padded, c64([-1, 5, 128])]);
  // The basis is a periodic-Hann-windowed DFT (checked when the weights are read). Its cos rows
  // are even and its sin rows odd around k = 128 and the window is 0 at k = 0, so with
  // x_k + x_(256-k) and x_k - x_(256-k) for k = 1 … 127 half the multiplies do. (ONNX Runtime's
  // DFT op was tried instead: 1.6× slower than the MatMul.) Window j is halves j and j+1, so its
  // samples are read from the halves directly.
  const lo = slice(halves, [0, 1], [4, 128], [1, 2]); // k = 1 … 127
  const hi = slice(halves, [1, 127], [5, 0], [1, 2], [1, -1]); // k = 255 … 129
  const mid = slice(halves, [1, 0], [5, 1], [1, 2]); // k = 128
  const sum = g.op('Concat', [g.op('Add', [lo, hi]), mid], { axis: 2 }); // [M,4,128]
  const diff = g.op('Sub', [lo, hi]); // [M,4,127]
  const re = g.op('MatMul', [sum, g.initializer('stft_cos', f32Tensor([128, 129], w.stftCos))]);
  const im = g.op('MatMul', [diff, g.initializer('stft_sin', f32Tensor([127, 129], w.stftSin))]);
  let x = g.op('Sqrt', [g.op('Add', [g.op('Mul', [re, re]), g.op('Mul', [im, im])])]); // [M,4,129]

  // Encoder: conv k3 pad 1 with strides 1, 2, 2, 1 over 4 → 4 → 2 → 1 → 1 time positions.
  const padTime = (v: string) => g.op('Pad', [v, c64([0, 1, 0, 0, 1, 0])]);
  const [e0, e1, e2, e3] = w.enc as [SileroWeights['enc'][0], SileroWeights['enc'][0], SileroWeights['enc'][0], SileroWeights['enc'][0]];
  let p = padTime(x); // [M,6,129]
  x = g.op('Concat', [0, 1, 2].map((k) => slice(p, [k], [k + 4], [1])), { axis: 2 });
  x = g.op('Relu', [linear(x, convAsMatmul(e0.w, e0.cout, e0.cin, [0, 1, 2]), 3 * e0.cin, e0.cout, e0.b)]); // [M,4,128]
  p = padTime(x); // [M,6,128]
  x = g.op('Concat', [0, 1, 2].map((k) => slice(p, [k], [k + 3], [1], [2])), { axis: 2 }); // positions k, k+2
  x = g.op('Relu', [linear(x, convAsMatmul(e1.w, e1.cout, e1.cin, [0, 1, 2]), 3 * e1.cin, e1.cout, e1.b)]); // [M,2,64]
  p = padTime(x); // [M,4,64]; the one output position reads padded 0, 1, 2
  x = g.op('Reshape', [slice(p, [0], [3], [1]), c64([-1, 3 * e2.cin])]);
  x = g.op('Relu', [linear(x, convAsMatmul(e2.w, e2.cout, e2.cin, [0, 1, 2]), 3 * e2.cin, e2.cout, e2.b)]); // [M,64]
  // One position with zero padding on both sides: only the centre tap sees data.
  x = g.op('Relu', [linear(x, convAsMatmul(e3.w, e3.cout, e3.cin, [1]), e3.cin, e3.cout, e3.b)]); // [M,128]

  // LSTM over the T steps of each of the B rows, then ReLU → 1×1 conv → sigmoid.
  const shapeTB = g.op('Slice', [g.op('Shape', [frames]), c64([0]), c64([2])]);
  const xs = g.op('Reshape', [x, g.op('Concat', [shapeTB, c64([128])], { axis: 0 })]);
  const W = g.initializer('lstm_w', f32Tensor([1, 512, 128], onnxGateOrder(w.weightIh, 128, 128)));
  const R = g.initializer('lstm_r', f32Tensor([1, 512, 128], onnxGateOrder(w.weightHh, 128, 128)));
  const bias = new Float32Array(1024);
  bias.set(onnxGateOrder(w.biasIh, 128, 1), 0);
  bias.set(onnxGateOrder(w.biasHh, 128, 1), 512);
  const B = g.initializer('lstm_b', f32Tensor([1, 1024], bias));
  const [y, hN, cN] = g.opN('LSTM', [xs, W, R, B, '', h0, c0], 3, { hidden_size: 128 }) as [string, string, string];
  const hidden = g.op('Relu', [g.op('Squeeze', [y, c64([1])])]); // [T,B,128]
  const logit = linear(hidden, Float32Array.from(w.outW), 128, 1, w.outB); // [T,B,1]
  const probs = g.op('Squeeze', [g.op('Sigmoid', [logit]), c64([2])]);
  g.output(probs, 'probs', 'float32', ['T', 'B']);
  g.output(hN, 'hN', 'float32', [1, 'B', 128]);
  g.output(cN, 'cN', 'float32', [1, 'B', 128]);
  return encodeModel(g, { opset: 17, producer: 'wx-vad' });
}
