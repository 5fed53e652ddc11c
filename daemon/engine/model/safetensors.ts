// A reader for the safetensors format (8-byte little-endian header length, a JSON header of
// {name: {dtype, shape, data_offsets}}, then the raw little-endian data), single files and
// sharded checkpoints (`model.safetensors.index.json`). Tensors are read on demand with
// positioned reads, so a multi-gigabyte checkpoint is never held in memory at once.
import fs from 'node:fs';
import path from 'node:path';
import { WxError } from '../../errors.js';

export type SafeDType = 'F16' | 'BF16' | 'F32' | 'F64' | 'I8' | 'U8' | 'I16' | 'I32' | 'I64' | 'BOOL';

const DTYPE_BYTES: Record<SafeDType, number> = { F16: 2, BF16: 2, F32: 4, F64: 8, I8: 1, U8: 1, I16: 2, I32: 4, I64: 8, BOOL: 1 };

export interface TensorInfo {
  name: string;
  dtype: SafeDType;
  shape: number[];
  file: string;
  /** Absolute byte offset of the data in `file`. */
  offset: number;
  byteLength: number;
}

/** Largest header we accept: real headers are tens of kilobytes; this only guards allocation. */
const MAX_HEADER_BYTES = 100 * 2 ** 20;

function headerOf(file: string): Map<string, TensorInfo> {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (err) {
    throw new WxError('model.missing_file', `cannot open ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`, { file });
  }
  try {
    const size = fs.fstatSync(fd).size;
    const lenBuf = Buffer.alloc(8);
    if (size < 8 || fs.readSync(fd, lenBuf, 0, 8, 0) !== 8) {
      throw new WxError('model.truncated', `${file} is truncated: no safetensors header`, { file });
    }
    const headerLen = Number(lenBuf.readBigUInt64LE(0));
    if (headerLen <= 1 || headerLen > MAX_HEADER_BYTES || 8 + headerLen > size) {
      throw new WxError('model.truncated', `${file} is truncated or not a safetensors file (header length ${headerLen}, file ${size} bytes)`, { file });
    }
    const headerBuf = Buffer.alloc(headerLen);
    fs.readSync(fd, headerBuf, 0, headerLen, 8);
    let header: Record<string, unknown>;
    try {
      header = JSON.parse(headerBuf.toString('utf8')) as Record<string, unknown>;
    } catch {
      throw new WxError('model.corrupt', `${file}: the safetensors header is not valid JSON`, { file });
    }
    const dataStart = 8 + headerLen;
    const out = new Map<string, TensorInfo>();
    for (const [name, raw] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      const t = raw as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
      const dtype = t.dtype as SafeDType;
      if (!(dtype in DTYPE_BYTES) || !Array.isArray(t.shape) || !Array.isArray(t.data_offsets)) {
        throw new WxError('model.corrupt', `${file}: tensor ${name} has an invalid header entry`, { file, tensor: name });
      }
      const [begin, end] = t.data_offsets;
      const count = t.shape.reduce((a, b) => a * b, 1);
      if (end - begin !== count * DTYPE_BYTES[dtype]) {
        throw new WxError('model.corrupt', `${file}: tensor ${name} declares ${end - begin} bytes for shape [${t.shape}] ${dtype}`, { file, tensor: name });
      }
      if (dataStart + end > size) {
        throw new WxError('model.truncated', `${file} is truncated: tensor ${name} ends at byte ${dataStart + end}, the file has ${size}`, { file, tensor: name });
      }
      out.set(name, { name, dtype, shape: t.shape, file, offset: dataStart + begin, byteLength: end - begin });
    }
    return out;
  } finally {
    fs.closeSync(fd);
  }
}

export class SafetensorsCheckpoint {
  private constructor(readonly files: string[], private readonly tensors: Map<string, TensorInfo>) {}

  /** Opens `model.safetensors` or the sharded index in a Hugging Face model directory. */
  static open(dir: string): SafetensorsCheckpoint {
    const single = path.join(dir, 'model.safetensors');
    const index = path.join(dir, 'model.safetensors.index.json');
    if (fs.existsSync(single)) return new SafetensorsCheckpoint([single], headerOf(single));
    if (fs.existsSync(index)) {
      let map: Record<string, string>;
      try {
        map = (JSON.parse(fs.readFileSync(index, 'utf8')) as { weight_map: Record<string, string> }).weight_map;
      } catch (err) {
        throw new WxError('model.corrupt', `${index} is not a valid safetensors index: ${(err as Error).message}`, { file: index });
      }
      const files = [...new Set(Object.values(map))].sort().map((f) => path.join(dir, f));
      const all = new Map<string, TensorInfo>();
      for (const f of files) for (const [k, v] of headerOf(f)) all.set(k, v);
      for (const name of Object.keys(map)) {
        if (!all.has(name)) throw new WxError('model.missing_tensor', `${index} lists ${name} in ${map[name]}, which does not contain it`, { file: index, tensor: name });
      }
      return new SafetensorsCheckpoint(files, all);
    }
    if (fs.existsSync(path.join(dir, 'pytorch_model.bin'))) {
      throw new WxError('model.unsupported', `${dir} only has PyTorch .bin weights; wx reads safetensors (model.safetensors)`, { file: dir });
    }
    throw new WxError('model.missing_file', `${dir} has no model.safetensors or model.safetensors.index.json`, { file: dir });
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new WxError('model.missing_tensor', `checkpoint ${this.files[0]} has no tensor ${name}`, { file: this.files[0], tensor: name });
    return t;
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  /** Raw bytes of a tensor. */
  raw(name: string): Uint8Array {
    const t = this.info(name);
    const buf = new Uint8Array(t.byteLength);
    const fd = fs.openSync(t.file, 'r');
    try {
      let done = 0;
      while (done < t.byteLength) {
        const n = fs.readSync(fd, buf, done, t.byteLength - done, t.offset + done);
        if (n === 0) throw new WxError('model.truncated', `${t.file} ended while reading ${name}`, { file: t.file, tensor: name });
        done += n;
      }
    } finally {
      fs.closeSync(fd);
    }
    return buf;
  }

  /** A tensor as float32, converted from F16/BF16/F32/F64; `shape` is checked when given. */
  float32(name: string, shape?: readonly number[]): Float32Array {
    const t = this.info(name);
    if (shape && (shape.length !== t.shape.length || shape.some((d, i) => d !== t.shape[i]))) {
      throw new WxError('model.shape_mismatch', `${t.file}: tensor ${name} has shape [${t.shape}], expected [${shape}]`, { file: t.file, tensor: name });
    }
    const raw = this.raw(name);
    switch (t.dtype) {
      case 'F32':
        return new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
      case 'F16':
        return f16ToF32(new Uint16Array(raw.buffer, raw.byteOffset, raw.byteLength / 2));
      case 'BF16': {
        const src = new Uint16Array(raw.buffer, raw.byteOffset, raw.byteLength / 2);
        const out = new Uint32Array(src.length);
        for (let i = 0; i < src.length; i++) out[i] = src[i]! << 16;
        return new Float32Array(out.buffer);
      }
      case 'F64':
        return Float32Array.from(new Float64Array(raw.buffer, raw.byteOffset, raw.byteLength / 8));
      default:
        throw new WxError('model.unsupported', `${t.file}: tensor ${name} has dtype ${t.dtype}, expected a float type`, { file: t.file, tensor: name });
    }
  }
}

let f16Table: Float32Array | null = null;

function buildF16Table(): Float32Array {
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    if (exp === 0) table[h] = sign * frac * 2 ** -24;
    else if (exp === 31) table[h] = frac ? NaN : sign * Infinity;
    else table[h] = sign * (1 + frac / 1024) * 2 ** (exp - 15);
  }
  return table;
}

export function f16ToF32(src: Uint16Array): Float32Array {
  f16Table ??= buildF16Table();
  const table = f16Table;
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = table[src[i]!]!;
  return out;
}

/** Rounds float32 values to IEEE half precision (round to nearest even). */
export function f32ToF16(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < src.length; i++) {
    f[0] = src[i]!;
    const x = u[0]!;
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    let mant = x & 0x7fffff;
    if (exp === 0xff) {
      out[i] = sign | 0x7c00 | (mant ? 0x200 : 0);
      continue;
    }
    let e = exp - 127 + 15;
    if (e >= 31) {
      out[i] = sign | 0x7c00;
      continue;
    }
    if (e <= 0) {
      if (e < -10) {
        out[i] = sign;
        continue;
      }
      mant |= 0x800000;
      const shift = 14 - e;
      let half = mant >> shift;
      const rem = mant & ((1 << shift) - 1);
      const mid = 1 << (shift - 1);
      if (rem > mid || (rem === mid && half & 1)) half++;
      out[i] = sign | half;
      continue;
    }
    let half = (e << 10) | (mant >> 13);
    const rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
    e = half >> 10;
    out[i] = sign | half;
  }
  return out;
}
