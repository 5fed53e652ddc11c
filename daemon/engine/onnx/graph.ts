// A small ONNX graph builder: named values, nodes, initializers, and serialisation to a
// ModelProto (field numbers from onnx.proto). Deterministic: the same calls give the same bytes.
import { Message } from './proto.js';

export type DType = 'float32' | 'float16' | 'bfloat16' | 'int8' | 'uint8' | 'int32' | 'int64' | 'bool';

const DTYPE_CODE: Record<DType, number> = {
  float32: 1, uint8: 2, int8: 3, int32: 6, int64: 7, bool: 9, float16: 10, bfloat16: 16,
};

export interface TensorData {
  dtype: DType;
  dims: readonly number[];
  /** Little-endian raw bytes. */
  data: Uint8Array;
}

/** A float attribute that happens to hold an integral value (e.g. `alpha: float(1)`). */
export class FloatAttr {
  constructor(readonly value: number) {}
}
export const float = (v: number): FloatAttr => new FloatAttr(v);

export type AttrValue = number | FloatAttr | string | readonly number[] | TensorData | Graph | { floats: readonly number[] };

export type Dim = number | string;

interface NodeSpec {
  op: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  name: string;
  attrs: Record<string, AttrValue>;
}

interface ValueSpec {
  name: string;
  dtype: DType;
  shape: readonly Dim[] | null;
}

export const MS_DOMAIN = 'com.microsoft';

export interface ExternalDataSink {
  /** Appends bytes to the external data file and returns their offset. */
  append(bytes: Uint8Array): number;
  /** File name relative to the model file. */
  readonly location: string;
}

export class Graph {
  readonly nodes: NodeSpec[] = [];
  readonly initializers: { name: string; tensor: TensorData }[] = [];
  readonly inputs: ValueSpec[] = [];
  readonly outputs: ValueSpec[] = [];
  private counter = 0;
  private readonly names = new Set<string>();

  constructor(readonly name: string) {}

  private fresh(hint: string): string {
    let n: string;
    do n = `${hint}_${this.counter++}`;
    while (this.names.has(n));
    this.names.add(n);
    return n;
  }

  private claim(name: string): string {
    if (this.names.has(name)) throw new Error(`onnx graph ${this.name}: duplicate value name ${name}`);
    this.names.add(name);
    return name;
  }

  input(name: string, dtype: DType, shape: readonly Dim[] | null): string {
    this.inputs.push({ name: this.claim(name), dtype, shape });
    return name;
  }

  /** Marks `value` as a graph output named `name` (an Identity node renames it if needed). */
  output(value: string, name: string, dtype: DType, shape: readonly Dim[] | null): string {
    if (value !== name) {
      this.claim(name);
      this.nodes.push({ op: 'Identity', domain: '', inputs: [value], outputs: [name], name: `${name}_out`, attrs: {} });
    }
    this.outputs.push({ name, dtype, shape });
    return name;
  }

  initializer(hint: string, tensor: TensorData): string {
    const name = this.names.has(hint) ? this.fresh(hint) : this.claim(hint);
    this.initializers.push({ name, tensor });
    return name;
  }

  /** One-output node. */
  op(op: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}, domain = ''): string {
    return this.opN(op, inputs, 1, attrs, domain)[0]!;
  }

  /** Node with `nOutputs` outputs. An empty-string input means "omitted optional input". */
  opN(op: string, inputs: readonly string[], nOutputs: number, attrs: Record<string, AttrValue> = {}, domain = ''): string[] {
    const outputs = Array.from({ length: nOutputs }, () => this.fresh(op));
    this.nodes.push({ op, domain, inputs: [...inputs], outputs, name: this.fresh(`n_${op}`), attrs });
    return outputs;
  }

  msOp(op: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}): string {
    return this.op(op, inputs, attrs, MS_DOMAIN);
  }

  toMessage(external?: { sink: ExternalDataSink; minBytes: number }): Message {
    const g = new Message();
    for (const n of this.nodes) g.message(1, nodeMessage(n));
    g.string(2, this.name);
    for (const init of this.initializers) g.message(5, tensorMessage(init.name, init.tensor, external));
    for (const v of this.inputs) g.message(11, valueInfo(v));
    for (const v of this.outputs) g.message(12, valueInfo(v));
    return g;
  }
}

function nodeMessage(n: NodeSpec): Message {
  const m = new Message();
  for (const i of n.inputs) m.string(1, i);
  for (const o of n.outputs) m.string(2, o);
  m.string(3, n.name);
  m.string(4, n.op);
  for (const [k, v] of Object.entries(n.attrs)) m.message(5, attribute(k, v));
  if (n.domain) m.string(7, n.domain);
  return m;
}

function isTensorData(v: unknown): v is TensorData {
  return typeof v === 'object' && v !== null && 'dtype' in v && 'dims' in v && 'data' in v;
}

function attribute(name: string, v: AttrValue): Message {
  const a = new Message().string(1, name);
  if (v instanceof FloatAttr) return a.float(2, v.value).varint(20, 1);
  if (typeof v === 'number') return Number.isInteger(v) ? a.varint(3, v).varint(20, 2) : a.float(2, v).varint(20, 1);
  if (typeof v === 'string') return a.string(4, v).varint(20, 3);
  if (v instanceof Graph) return a.message(6, v.toMessage()).varint(20, 5);
  if (isTensorData(v)) return a.message(5, tensorMessage('', v)).varint(20, 4);
  if ('floats' in v) return a.packedFloats(7, v.floats).varint(20, 6);
  return a.packedVarints(8, v as readonly number[]).varint(20, 7);
}

function tensorMessage(name: string, t: TensorData, external?: { sink: ExternalDataSink; minBytes: number }): Message {
  const m = new Message();
  m.packedVarints(1, t.dims);
  m.varint(2, DTYPE_CODE[t.dtype]);
  if (name) m.string(8, name);
  if (external && t.data.length >= external.minBytes) {
    const offset = external.sink.append(t.data);
    const entry = (k: string, v: string) => new Message().string(1, k).string(2, v);
    m.message(13, entry('location', external.sink.location));
    m.message(13, entry('offset', String(offset)));
    m.message(13, entry('length', String(t.data.length)));
    m.varint(14, 1);
  } else {
    m.bytes(9, t.data);
  }
  return m;
}

function valueInfo(v: ValueSpec): Message {
  const tensorType = new Message().varint(1, DTYPE_CODE[v.dtype]);
  if (v.shape) {
    const shape = new Message();
    for (const d of v.shape) shape.message(1, typeof d === 'number' ? new Message().varint(1, d) : new Message().string(2, d));
    tensorType.message(2, shape);
  }
  return new Message().string(1, v.name).message(2, new Message().message(1, tensorType));
}

export interface ModelOptions {
  opset?: number;
  msOpset?: number;
  producer?: string;
  external?: { sink: ExternalDataSink; minBytes: number };
}

/** Serialises `graph` as an ONNX ModelProto (IR version 8, opset 17 by default). */
export function encodeModel(graph: Graph, options: ModelOptions = {}): Uint8Array {
  const model = new Message();
  model.varint(1, 8);
  model.string(2, options.producer ?? 'wx');
  model.message(7, graph.toMessage(options.external));
  model.message(8, new Message().string(1, '').varint(2, options.opset ?? 17));
  model.message(8, new Message().string(1, MS_DOMAIN).varint(2, options.msOpset ?? 1));
  return model.encode();
}

// ---- tensor helpers -------------------------------------------------------------------------

export function f32Tensor(dims: readonly number[], values: Float32Array | readonly number[]): TensorData {
  const arr = values instanceof Float32Array ? values : Float32Array.from(values);
  return { dtype: 'float32', dims, data: new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength) };
}

export function i64Tensor(dims: readonly number[], values: readonly number[]): TensorData {
  const arr = BigInt64Array.from(values.map((v) => BigInt(v)));
  return { dtype: 'int64', dims, data: new Uint8Array(arr.buffer) };
}

export function i32Tensor(dims: readonly number[], values: readonly number[]): TensorData {
  const arr = Int32Array.from(values);
  return { dtype: 'int32', dims, data: new Uint8Array(arr.buffer) };
}
