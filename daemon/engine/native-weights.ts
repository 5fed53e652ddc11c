// Tensors our native kernels read straight from a model's shared data file (the same bytes ORT's
// graphs use), at the offsets the import recorded in the manifest; linears are packed for the int8
// kernel (native/src/int8_linear.cc) as they are read.
import fs from 'node:fs';
import { WxError } from '../errors.js';
import { native } from '../native.js';
import { f16ToF32 } from './model/safetensors.js';

const addon = native();

/** Whether this build's int8 kernel uses int8 dot-product instructions (AVX-512 VNNI): only then
 *  do the native INT8 encoder and decoder run; elsewhere ONNX Runtime's kernels are faster. */
export const nativeInt8Fast: boolean = addon.linear8Fast === true;

/** Opaque packed weights of one linear (owned by the addon). */
export type PackedLinear = object;

export interface NormWeights {
  gamma: Float32Array;
  beta: Float32Array;
  eps: number;
}

export class NativeWeights {
  private constructor(private readonly file: string, private readonly fd: number, private readonly tensors: Record<string, [number, number]>, private readonly what: string) {}

  /** Runs `fn` with the tensors of `file` (closed afterwards); `what` names the reader in errors. */
  static read<T>(file: string, tensors: Record<string, [number, number]>, what: string, fn: (w: NativeWeights) => T): T {
    const fd = fs.openSync(file, 'r');
    try {
      return fn(new NativeWeights(file, fd, tensors, what));
    } finally {
      fs.closeSync(fd);
    }
  }

  bytes(name: string, length: number): Uint8Array {
    const at = this.tensors[name];
    if (!at || at[1] !== length) {
      throw new WxError('model.corrupt', `${this.file}: ${this.what} tensor ${name} is ${at ? `${at[1]} bytes, expected ${length}` : 'missing'}: import the model again`, { file: this.file, tensor: name });
    }
    const out = new Uint8Array(length);
    if (fs.readSync(this.fd, out, 0, length, at[0]) !== length) {
      throw new WxError('model.corrupt', `${this.file}: ${this.what} tensor ${name} is cut short (file truncated?)`, { file: this.file, tensor: name });
    }
    return out;
  }

  floats(name: string, count: number): Float32Array {
    return new Float32Array(this.bytes(name, 4 * count).buffer);
  }

  halfFloats(name: string, count: number): Float32Array {
    return f16ToF32(new Uint16Array(this.bytes(name, 2 * count).buffer));
  }

  norm(name: string, d: number, eps: number): NormWeights {
    return { gamma: this.floats(`${name}.gamma`, d), beta: this.floats(`${name}.beta`, d), eps };
  }

  /** `<name>.values` / `.scales` (and `.bias` when `bias`) of an [n, k] linear, packed. */
  linear(name: string, n: number, k: number, bias = true): PackedLinear {
    const blocks = Math.ceil(k / 32);
    return addon.linear8Pack(this.bytes(`${name}.values`, n * blocks * 32), this.floats(`${name}.scales`, n * blocks), bias ? this.floats(`${name}.bias`, n) : null, n, k) as PackedLinear;
  }
}

/** How a linear's output is written: set, through GELU, added to what is there, or through
 *  GELU and then added. */
export enum Epilogue {
  Set = 0,
  Gelu = 1,
  Add = 2,
  GeluAdd = 3,
}

/** Rows quantised as a linear quantises its input (opaque, native): one linear's output kept in
 *  that form for the next linear (fc1 → fc2), bit for bit what the float rows would give. */
export interface QuantisedRows {
  readonly __quantisedRows: never;
}

/** Room for `rows` rows of width `k` (a multiple of 32). */
export function quantisedRows(rows: number, k: number): QuantisedRows {
  return addon.linear8QuantisedRows(rows, k) as QuantisedRows;
}

/** out (rows × n) ← LN?(x)·Wᵀ + b, through `epilogue`; `heads` writes [rows / positions, heads, positions, n / heads].
 *  `x` may be QuantisedRows (then no norm), `out` too (set or GELU, no heads). */
export function linear8(w: PackedLinear, x: Float32Array | QuantisedRows, rows: number, out: Float32Array | QuantisedRows, epilogue: Epilogue, threads: number, norm?: NormWeights | null, heads?: { heads: number; positions: number }): void {
  addon.linear8Run(w, x, rows, out, epilogue, threads, norm ?? null, heads ?? null);
}
