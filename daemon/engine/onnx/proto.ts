// A minimal protocol-buffers writer for the parts of onnx.proto that wx emits. Messages are
// built as trees of fields and serialised in one pass with sizes computed first, so large
// tensor payloads are written once and never re-concatenated.

type Field =
  | { kind: 'varint'; no: number; value: bigint | number }
  | { kind: 'fixed32f'; no: number; value: number }
  | { kind: 'bytes'; no: number; value: Uint8Array }
  | { kind: 'msg'; no: number; value: Message }
  | { kind: 'packedVarint'; no: number; value: readonly (number | bigint)[] }
  | { kind: 'packedFloat'; no: number; value: readonly number[] };

const textEncoder = new TextEncoder();

function varintSize(v: bigint): number {
  if (v < 0n) v = BigInt.asUintN(64, v);
  let n = 1;
  while (v >= 0x80n) {
    v >>= 7n;
    n++;
  }
  return n;
}

function smallVarintSize(v: number): number {
  if (v < 0) return 10;
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

const tagSize = (no: number): number => smallVarintSize(no << 3);

export class Message {
  private readonly fields: Field[] = [];
  private cachedSize = -1;

  varint(no: number, value: bigint | number): this {
    this.fields.push({ kind: 'varint', no, value });
    return this;
  }
  float(no: number, value: number): this {
    this.fields.push({ kind: 'fixed32f', no, value });
    return this;
  }
  bytes(no: number, value: Uint8Array): this {
    this.fields.push({ kind: 'bytes', no, value });
    return this;
  }
  string(no: number, value: string): this {
    return this.bytes(no, textEncoder.encode(value));
  }
  message(no: number, value: Message): this {
    this.fields.push({ kind: 'msg', no, value });
    return this;
  }
  packedVarints(no: number, value: readonly (number | bigint)[]): this {
    if (value.length > 0) this.fields.push({ kind: 'packedVarint', no, value });
    return this;
  }
  packedFloats(no: number, value: readonly number[]): this {
    if (value.length > 0) this.fields.push({ kind: 'packedFloat', no, value });
    return this;
  }

  size(): number {
    if (this.cachedSize >= 0) return this.cachedSize;
    let n = 0;
    for (const f of this.fields) {
      n += tagSize(f.no);
      switch (f.kind) {
        case 'varint':
          n += varintSize(BigInt(f.value));
          break;
        case 'fixed32f':
          n += 4;
          break;
        case 'bytes':
          n += smallVarintSize(f.value.length) + f.value.length;
          break;
        case 'msg': {
          const s = f.value.size();
          n += smallVarintSize(s) + s;
          break;
        }
        case 'packedVarint': {
          const s = packedVarintSize(f.value);
          n += smallVarintSize(s) + s;
          break;
        }
        case 'packedFloat':
          n += smallVarintSize(f.value.length * 4) + f.value.length * 4;
          break;
      }
    }
    this.cachedSize = n;
    return n;
  }

  encode(): Uint8Array {
    const out = new Uint8Array(this.size());
    const end = this.writeTo(out, 0);
    if (end !== out.length) throw new Error(`protobuf writer: size mismatch (${end} != ${out.length})`);
    return out;
  }

  private writeTo(buf: Uint8Array, pos: number): number {
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    for (const f of this.fields) {
      const wireType = f.kind === 'varint' ? 0 : f.kind === 'fixed32f' ? 5 : 2;
      pos = writeVarint(buf, pos, BigInt((f.no << 3) | wireType));
      switch (f.kind) {
        case 'varint':
          pos = writeVarint(buf, pos, BigInt(f.value));
          break;
        case 'fixed32f':
          view.setFloat32(pos, f.value, true);
          pos += 4;
          break;
        case 'bytes':
          pos = writeVarint(buf, pos, BigInt(f.value.length));
          buf.set(f.value, pos);
          pos += f.value.length;
          break;
        case 'msg':
          pos = writeVarint(buf, pos, BigInt(f.value.size()));
          pos = f.value.writeTo(buf, pos);
          break;
        case 'packedVarint':
          pos = writeVarint(buf, pos, BigInt(packedVarintSize(f.value)));
          for (const v of f.value) pos = writeVarint(buf, pos, BigInt(v));
          break;
        case 'packedFloat':
          pos = writeVarint(buf, pos, BigInt(f.value.length * 4));
          for (const v of f.value) {
            view.setFloat32(pos, v, true);
            pos += 4;
          }
          break;
      }
    }
    return pos;
  }
}

function packedVarintSize(values: readonly (number | bigint)[]): number {
  let n = 0;
  for (const v of values) n += varintSize(BigInt(v));
  return n;
}

function writeVarint(buf: Uint8Array, pos: number, v: bigint): number {
  if (v < 0n) v = BigInt.asUintN(64, v);
  while (v >= 0x80n) {
    buf[pos++] = Number(v & 0x7fn) | 0x80;
    v >>= 7n;
  }
  buf[pos++] = Number(v);
  return pos;
}
