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

/**
 * Encoded windows' cross keys/values already in the cache's int8 form, per decoder layer: each
 * array holds `windows` slot images back to back (what `Int8CrossCache.store` would write). A
 * window waiting to be decoded then takes 4.6 MB for tiny instead of 18.4 MB of float32.
 */
export interface Int8Windows {
  windows: number;
  keys: Int8Array[];
  keyScales: Float32Array[];
  values: Int8Array[];
  valueScales: Float32Array[];
}

/** A slot's layout: positions padded to the vector width, int8 values and float scales per layer. */
function slotSizes(shape: CrossShape): { stride: number; slotElems: number; slotScales: number } {
  const stride = Math.ceil(shape.positions / WIDTH) * WIDTH;
  // Scales per position and half-head, then per channel.
  return { stride, slotElems: shape.heads * stride * shape.headDim, slotScales: shape.heads * (2 * stride + shape.headDim) };
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
    ({ stride: this.stride, slotElems: this.slotElems, slotScales: this.slotScales } = slotSizes(shape));
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

  /** Window `index` of `src` (quantised by `quantise`) into `slot`, all layers: a copy. */
  storeQuantised(slot: number, src: Int8Windows, index: number): void {
    if (slot < 0 || slot >= this.slots) throw new WxError('engine.bad_input', `cross-attention slot ${slot} out of range (0..${this.slots - 1})`);
    if (index < 0 || index >= src.windows || src.keys.length !== this.shape.layers || src.keys[0]!.length !== src.windows * this.slotElems) {
      throw new WxError('engine.bad_input', `quantised window ${index} does not fit this cache (${this.shape.layers} layers of ${this.slotElems} values per window)`);
    }
    const e = index * this.slotElems;
    const s = index * this.slotScales;
    for (let l = 0; l < this.shape.layers; l++) {
      this.keys[l]!.set(src.keys[l]!.subarray(e, e + this.slotElems), slot * this.slotElems);
      this.values[l]!.set(src.values[l]!.subarray(e, e + this.slotElems), slot * this.slotElems);
      this.keyScales[l]!.set(src.keyScales[l]!.subarray(s, s + this.slotScales), slot * this.slotScales);
      this.valueScales[l]!.set(src.valueScales[l]!.subarray(s, s + this.slotScales), slot * this.slotScales);
    }
  }

  /**
   * `windows` encoded windows' keys/values (per layer [windows, heads, positions, headDim]
   * float32) into the int8 form a slot holds, window by window.
   */
  static quantise(shape: CrossShape, crossK: readonly Float32Array[], crossV: readonly Float32Array[], windows: number, positions: number, threads: number): Int8Windows {
    const out = Int8CrossCache.emptyWindows(shape, windows);
    for (let l = 0; l < shape.layers; l++) {
      Int8CrossCache.quantiseLayer(shape, out, l, 'keys', crossK[l]!, positions, threads);
      Int8CrossCache.quantiseLayer(shape, out, l, 'values', crossV[l]!, positions, threads);
    }
    return out;
  }

  /** Room for `windows` windows in int8 form, to fill layer by layer with `quantiseLayer`. */
  static emptyWindows(shape: CrossShape, windows: number): Int8Windows {
    const { slotElems, slotScales } = slotSizes(shape);
    const out: Int8Windows = { windows, keys: [], keyScales: [], values: [], valueScales: [] };
    for (let l = 0; l < shape.layers; l++) {
      out.keys.push(new Int8Array(windows * slotElems));
      out.values.push(new Int8Array(windows * slotElems));
      out.keyScales.push(new Float32Array(windows * slotScales));
      out.valueScales.push(new Float32Array(windows * slotScales));
    }
    return out;
  }

  /** Layer `l`'s keys or values of every window of `out` from float32 [windows, heads, positions, headDim]. */
  static quantiseLayer(shape: CrossShape, out: Int8Windows, l: number, which: 'keys' | 'values', src: Float32Array, positions: number, threads: number): void {
    const { stride, slotElems, slotScales } = slotSizes(shape);
    const perWindow = shape.heads * positions * shape.headDim;
    if (src.length < out.windows * perWindow) throw new WxError('engine.bad_input', `cross-attention ${which} of layer ${l}: ${src.length} values for ${out.windows} windows of ${perWindow}`);
    const q = which === 'keys' ? out.keys[l]! : out.values[l]!;
    const sc = which === 'keys' ? out.keyScales[l]! : out.valueScales[l]!;
    for (let w = 0; w < out.windows; w++) {
      addon.crossQuantize(src.subarray(w * perWindow, (w + 1) * perWindow), shape.heads, positions, shape.headDim, stride, which === 'keys',
        q.subarray(w * slotElems, (w + 1) * slotElems), sc.subarray(w * slotScales, (w + 1) * slotScales), threads);
    }
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
