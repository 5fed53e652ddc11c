// Cross-attention keys/values of a decoder batch held as int8 (channels normalised over the
// window, then a scale per position and half head), attended by the native addon
// (native/src/cross_attention.cc). A slot holds one window; rows that decode the same window
// (beam search) share its slot. The encoder's self-attention runs on the same kernel
// (`windowAttention`).
import { native } from '../native.js';
import { WxError } from '../errors.js';

const addon = native();
const WIDTH: number = addon.crossVectorWidth;

export interface CrossShape {
  layers: number;
  heads: number;
  headDim: number;
  /** Encoder positions of a full window (n_audio_ctx). */
  positions: number;
}

export class Int8CrossCache {
  readonly stride: number;
  private readonly keys: Int8Array[] = [];
  private readonly values: Int8Array[] = [];
  private readonly keyScales: Float32Array[] = [];
  private readonly valueScales: Float32Array[] = [];
  private readonly slotElems: number;
  private readonly slotScales: number;

  constructor(readonly shape: CrossShape, readonly slots: number) {
    this.stride = Math.ceil(shape.positions / WIDTH) * WIDTH;
    this.slotElems = shape.heads * this.stride * shape.headDim;
    this.slotScales = shape.heads * (2 * this.stride + shape.headDim); // per position and half-head, then per channel
    for (let l = 0; l < shape.layers; l++) {
      // Every decoder step streams these: in 2 MB pages (see hugePageBuffer).
      this.keys.push(new Int8Array(addon.hugePageBuffer(slots * this.slotElems)));
      this.values.push(new Int8Array(addon.hugePageBuffer(slots * this.slotElems)));
      this.keyScales.push(new Float32Array(slots * this.slotScales));
      this.valueScales.push(new Float32Array(slots * this.slotScales));
    }
  }

  /** Bytes held per slot (all layers). */
  get bytesPerSlot(): number {
    return this.shape.layers * 2 * (this.slotElems + 4 * this.slotScales);
  }

  /** Stores one window's keys and values of `layer` ([heads, positions, headDim] float32 each). */
  store(slot: number, layer: number, k: Float32Array, v: Float32Array, positions: number, threads = 1): void {
    const { heads, headDim } = this.shape;
    if (slot < 0 || slot >= this.slots) throw new WxError('engine.bad_input', `cross-attention slot ${slot} out of range (0..${this.slots - 1})`);
    const e = slot * this.slotElems;
    const s = slot * this.slotScales;
    addon.crossQuantize(k, heads, positions, headDim, this.stride, true, this.keys[layer]!.subarray(e, e + this.slotElems), this.keyScales[layer]!.subarray(s, s + this.slotScales), threads);
    addon.crossQuantize(v, heads, positions, headDim, this.stride, false, this.values[layer]!.subarray(e, e + this.slotElems), this.valueScales[layer]!.subarray(s, s + this.slotScales), threads);
  }

  /** Copies slot `from` onto slot `to`. */
  move(to: number, from: number): void {
    for (let l = 0; l < this.shape.layers; l++) {
      this.keys[l]!.copyWithin(to * this.slotElems, from * this.slotElems, (from + 1) * this.slotElems);
      this.values[l]!.copyWithin(to * this.slotElems, from * this.slotElems, (from + 1) * this.slotElems);
      this.keyScales[l]!.copyWithin(to * this.slotScales, from * this.slotScales, (from + 1) * this.slotScales);
      this.valueScales[l]!.copyWithin(to * this.slotScales, from * this.slotScales, (from + 1) * this.slotScales);
    }
  }

  /** Attention of `q` ([rows, steps, heads·headDim], pre-scaled) for `layer`: row r reads slot
   *  `slotOf[r]`'s first `lengths[r]` positions. Returns [rows, steps, heads·headDim]. */
  attend(layer: number, q: Float32Array, rows: number, steps: number, slotOf: Int32Array, lengths: Int32Array, threads: number): Float32Array {
    const { heads, headDim } = this.shape;
    const out = new Float32Array(rows * steps * heads * headDim);
    addon.crossAttend(q, rows, steps, heads, headDim, this.stride, slotOf, lengths, this.keys[layer], this.keyScales[layer], this.values[layer], this.valueScales[layer], out, Math.max(1, threads));
    return out;
  }
}

/** Whether `windowAttention` runs for heads of `headDim` dims (int8 dot products, VNNI). */
export function windowAttentionFast(headDim: number): boolean {
  return addon.windowAttendFast(headDim) === true;
}

/**
 * The encoder's self-attention over whole windows: `qkv` [windows, 3·heads, positions, headDim]
 * (queries, keys, values split into heads, queries unscaled) → `out` [windows·positions,
 * heads·headDim]. Keys and values are quantised as `Int8CrossCache` stores them.
 */
export function windowAttention(qkv: Float32Array, windows: number, positions: number, heads: number, headDim: number, out: Float32Array, threads: number): void {
  addon.windowAttend(qkv, windows, positions, heads, headDim, 1 / Math.sqrt(headDim), out, Math.max(1, threads));
}
