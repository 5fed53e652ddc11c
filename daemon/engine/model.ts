// A loaded Whisper model: the encoder and decoder graphs of one precision, the dims they were
// built with, and the buffers that let many decoder rows share one call.
import os from 'node:os';
import path from 'node:path';
import { WxError } from '../errors.js';
import type { Backend, FeedTensor, InferenceGraph } from './backend.js';
import { ortCpuBackend } from './ort-backend.js';
import { ENCODER_IO } from './graphs/encoder.js';
import { DECODER_IO, SEGMENT_IO } from './graphs/decoder.js';
import { Int8CrossCache, type CrossShape, type Int8Windows } from './cross-int8.js';
import { NativeEncoder, type EncoderPartTimes } from './encoder-int8.js';
import { nativeInt8Fast } from './native-weights.js';
import { NativeDecoder } from './decoder-int8.js';
import type { CrossFormat } from './limits.js';
import { readWhisperConfig, type WhisperConfig } from './model/config.js';
import { readManifest, type ModelDims, type ModelManifest, type Precision } from './manifest.js';

export interface LoadOptions {
  precision: Precision;
  threads?: number;
  backend?: Backend;
  /** How an INT8 encoder runs: `auto` (native int8 linears where the CPU has int8 dot products
   *  and the model has the pieces for it, else the whole graph), `whole` (ONNX Runtime only),
   *  `native` (an error if impossible). Benchmarks and tests compare the two. */
  encoder?: 'auto' | 'whole' | 'native';
  /** How an INT8 decoder runs: `auto` (the native step where the CPU has int8 dot products and
   *  the model lists its tensors, else the ORT segments), `graphs`, or `native`. */
  decoder?: 'auto' | 'graphs' | 'native';
  /** The native INT8 encoder's self-attention: `auto` (our int8 kernel where the CPU has int8 dot
   *  products) or `graph` (ONNX Runtime's float32 attention graph). Benchmarks and tests compare. */
  encoderAttention?: 'auto' | 'graph';
  /** The native INT8 encoder's conv stem: `auto` (our int8 kernel when the model has its
   *  tensors) or `graph` (ONNX Runtime's float graph). Benchmarks and tests compare. */
  encoderStem?: 'auto' | 'graph';
}

/**
 * Cross-attention keys/values of B encoded windows, per decoder layer: float32 (`crossK`,
 * `crossV`), or, for a model whose decoder keeps them as int8, only in that form (`int8`; the
 * float arrays are then empty) — a window waiting to be decoded holds a quarter of the memory.
 */
export class EncodedWindows {
  constructor(
    readonly batch: number,
    readonly crossK: Float32Array[],
    readonly crossV: Float32Array[],
    /** Per-window element count of one layer's K (= V) block: heads × positions × head size. */
    readonly perWindow: number,
    /** Encoder positions per window (the model's full audio context unless encoded shorter). */
    readonly positions: number,
    readonly int8?: Int8Windows,
  ) {}

  /** Windows `from`..`from+count` as their own EncodedWindows (views, no copy). */
  slice(from: number, count: number): EncodedWindows {
    const n = this.perWindow;
    const view = (a: Float32Array) => a.subarray(from * n, (from + count) * n);
    const q = this.int8;
    const window = <T extends Int8Array | Float32Array>(a: T): T => {
      const per = a.length / q!.windows;
      return a.subarray(from * per, (from + count) * per) as T;
    };
    const int8 = q && { windows: count, keys: q.keys.map(window), keyScales: q.keyScales.map(window), values: q.values.map(window), valueScales: q.valueScales.map(window) };
    return new EncodedWindows(count, this.crossK.map(view), this.crossV.map(view), n, this.positions, int8);
  }

  static concat(parts: readonly EncodedWindows[]): EncodedWindows {
    const n = parts[0]!.perWindow;
    if (parts.some((p) => p.positions !== parts[0]!.positions)) throw new WxError('engine.bad_input', 'cannot join windows encoded with different audio contexts');
    if (parts.some((p) => !p.int8 !== !parts[0]!.int8)) throw new WxError('engine.bad_input', 'cannot join int8 and float32 encoded windows');
    const batch = parts.reduce((s, p) => s + p.batch, 0);
    const join = <T extends Int8Array | Float32Array>(arrays: T[], make: (n: number) => T): T => {
      const out = make(arrays.reduce((s, a) => s + a.length, 0));
      let at = 0;
      for (const a of arrays) {
        out.set(a as ArrayLike<number>, at);
        at += a.length;
      }
      return out;
    };
    const floats = (n: number) => new Float32Array(n);
    const bytes = (n: number) => new Int8Array(n);
    const layers = (pick: (p: EncodedWindows) => unknown[]) => pick(parts[0]!).length;
    const byLayer = <T extends Int8Array | Float32Array>(pick: (p: EncodedWindows) => T[], make: (n: number) => T): T[] =>
      Array.from({ length: layers(pick) }, (_, l) => join(parts.map((p) => pick(p)[l]!), make));
    const int8 = parts[0]!.int8 && {
      windows: batch,
      keys: byLayer((p) => p.int8!.keys, bytes),
      keyScales: byLayer((p) => p.int8!.keyScales, floats),
      values: byLayer((p) => p.int8!.values, bytes),
      valueScales: byLayer((p) => p.int8!.valueScales, floats),
    };
    return new EncodedWindows(batch, byLayer((p) => p.crossK, floats), byLayer((p) => p.crossV, floats), n, parts[0]!.positions, int8);
  }
}

export class WhisperModel {
  private constructor(
    readonly dir: string,
    readonly manifest: ModelManifest,
    readonly config: WhisperConfig,
    readonly precision: Precision,
    /** The encoder: one graph, or the native int8 linears around ONNX Runtime's stem and
     *  attention (encoder-int8.ts). */
    readonly encoder: { whole: InferenceGraph } | { native: NativeEncoder },
    /** The decoder: one graph (float32 cross-attention inside), its segments cut at every
     *  cross-attention (which then runs natively over int8 keys/values, see graphs/decoder.ts),
     *  or the native INT8 step (decoder-int8.ts, no ORT call). */
    readonly decoder: { whole: InferenceGraph } | { segments: InferenceGraph[] } | { native: NativeDecoder },
    /** Threads of the native cross-attention. */
    readonly threads: number,
  ) {
    this.groupedCross = !('whole' in decoder) || decoder.whole.inputNames.includes(DECODER_IO.crossGroup);
  }

  /** Whether the decoder lets consecutive rows share a window's cross keys/values (whole graphs
   *  imported before it could cannot run beam search). Read once at load. */
  readonly groupedCross: boolean;

  get dims(): ModelDims {
    return this.manifest.dims;
  }

  /** How decoder batches hold cross-attention keys/values (int8 unless the decoder is one graph). */
  get crossFormat(): CrossFormat {
    return 'whole' in this.decoder ? 'float32' : 'int8';
  }

  static async load(dir: string, opts: LoadOptions): Promise<WhisperModel> {
    const manifest = readManifest(dir);
    const files = manifest.files[opts.precision];
    if (!files) {
      throw new WxError('model.precision_missing', `model ${manifest.name} was installed without ${opts.precision} graphs (has: ${manifest.precisions.join(', ')})`, { model: manifest.name });
    }
    const backend = opts.backend ?? ortCpuBackend;
    const threads = opts.threads ?? 0;
    const decoderFiles = files.decoderSegments ?? (files.decoder ? [files.decoder] : []);
    if (decoderFiles.length === 0) throw new WxError('model.corrupt', `model ${manifest.name} lists no ${opts.precision} decoder`, { model: manifest.name });
    const nativeThreads = threads > 0 ? threads : Math.max(1, os.availableParallelism());
    const d = manifest.dims;
    // The kernel writes cross K/V head by head in panels of 32 outputs (every Whisper has 64-dim heads).
    const nativePossible = !!files.encoderNative && nativeInt8Fast && (d.dModel / d.decoderHeads) % 32 === 0;
    // WX_NATIVE_INT8=0: ONNX Runtime's graphs only (an escape hatch should our kernels misbehave
    // on some CPU); explicit options still win.
    const ortOnly = process.env.WX_NATIVE_INT8 === '0';
    const mode = opts.encoder ?? (ortOnly ? 'whole' : 'auto');
    if (mode === 'native' && !nativePossible) {
      throw new WxError('engine.bad_options', `model ${manifest.name}: the native int8 encoder needs an INT8 import by this wx, a CPU with int8 dot products and 32-multiple head sizes`, { model: manifest.name });
    }
    const encoder = nativePossible && mode !== 'whole'
      ? NativeEncoder.load(dir, files.encoderNative!, d, backend, nativeThreads, { attention: opts.encoderAttention === 'graph' ? 'graph' : 'auto', stem: opts.encoderStem ?? 'auto' }).then((native) => ({ native }))
      : backend.load(path.join(dir, files.encoder), { threads }).then((whole) => ({ whole }));
    const decoderMode = opts.decoder ?? (ortOnly ? 'graphs' : 'auto');
    const nativeDecoder = !!files.decoderNative && !!files.decoderData && nativeInt8Fast;
    if (decoderMode === 'native' && !nativeDecoder) {
      throw new WxError('engine.bad_options', `model ${manifest.name}: the native int8 decoder needs an INT8 import by this wx and a CPU with int8 dot products`, { model: manifest.name });
    }
    const decoderLoad = (async (): Promise<WhisperModel['decoder']> => {
      if (nativeDecoder && decoderMode !== 'graphs') return { native: NativeDecoder.load(dir, files.decoderData!, files.decoderNative!.tensors, d, nativeThreads) };
      const graphs = await Promise.all(decoderFiles.map((f) => backend.load(path.join(dir, f), { threads })));
      return files.decoderSegments ? { segments: graphs } : { whole: graphs[0]! };
    })();
    // Both halves finish before a failure is reported, and whatever did load is closed.
    const [encLoaded, decLoaded] = await Promise.allSettled([encoder, decoderLoad]);
    if (encLoaded.status === 'rejected' || decLoaded.status === 'rejected') {
      if (encLoaded.status === 'fulfilled') await ('whole' in encLoaded.value ? encLoaded.value.whole : encLoaded.value.native).close();
      if (decLoaded.status === 'fulfilled') await WhisperModel.closeDecoder(decLoaded.value);
      throw encLoaded.status === 'rejected' ? encLoaded.reason : (decLoaded as PromiseRejectedResult).reason;
    }
    const enc = encLoaded.value;
    const decoder = decLoaded.value;
    return new WhisperModel(dir, manifest, readWhisperConfig(dir), opts.precision, enc, decoder, nativeThreads);
  }

  async close(): Promise<void> {
    const encoder = 'whole' in this.encoder ? this.encoder.whole : this.encoder.native;
    await Promise.all([encoder.close(), WhisperModel.closeDecoder(this.decoder)]);
  }

  private static async closeDecoder(decoder: WhisperModel['decoder']): Promise<void> {
    const graphs = 'segments' in decoder ? decoder.segments : 'whole' in decoder ? [decoder.whole] : [];
    await Promise.all(graphs.map((g) => g.close()));
  }

  /** Runs the encoder on B windows of log-mel features ([B, n_mels, 2·positions]; positions
   *  defaults to the model's audio context, n_audio_ctx). The windows come back in the form this
   *  model's decoder takes (int8 for all but a whole decoder graph); `crossFloats` keeps float32
   *  anyway, for comparisons. `parts` (native INT8 encoder only) accumulates the time of each
   *  part of the run. */
  async encode(mel: Float32Array, batch: number, opts: { hidden?: boolean; positions?: number; parts?: EncoderPartTimes; crossFloats?: boolean } = {}): Promise<EncodedWindows & { hidden?: Float32Array }> {
    // The decoder keeps cross keys/values as int8: they are quantised now and the floats let go.
    const d = this.dims;
    const shape = opts.crossFloats || !this.int8Cross ? undefined : { layers: d.decoderLayers, heads: d.decoderHeads, headDim: d.dModel / d.decoderHeads, positions: d.nAudioCtx };
    const enc = await this.runEncoder(mel, batch, opts, shape);
    if (!shape || enc.int8) return enc;
    const int8 = Int8CrossCache.quantise(shape, enc.crossK, enc.crossV, batch, enc.positions, this.threads);
    const out = new EncodedWindows(batch, [], [], enc.perWindow, enc.positions, int8) as EncodedWindows & { hidden?: Float32Array };
    if (enc.hidden) out.hidden = enc.hidden;
    return out;
  }

  /** Drops scratch kept between calls (the native encoder's); made again when next needed. */
  releaseScratch(): void {
    if ('native' in this.encoder) this.encoder.native.releaseScratch();
  }

  /** Whether this model's decoder holds cross keys/values as int8 (every decoder but a whole graph). */
  get int8Cross(): boolean {
    return !('whole' in this.decoder);
  }

  /** The encoder's own output: float32 cross keys/values, or int8 where the native encoder
   *  quantises them itself (`int8`). */
  private async runEncoder(mel: Float32Array, batch: number, opts: { hidden?: boolean; positions?: number; parts?: EncoderPartTimes }, int8?: CrossShape): Promise<EncodedWindows & { hidden?: Float32Array }> {
    const d = this.dims;
    const positions = opts.positions ?? d.nAudioCtx;
    if (!Number.isInteger(positions) || positions < 1 || positions > d.nAudioCtx) {
      throw new WxError('engine.bad_input', `audio context of ${positions} positions: must be 1..${d.nAudioCtx}`);
    }
    const frames = 2 * positions;
    if (mel.length !== batch * d.nMels * frames) {
      throw new WxError('engine.bad_input', `encoder input has ${mel.length} values, expected ${batch}×${d.nMels}×${frames}`);
    }
    if ('native' in this.encoder) {
      const out = await this.encoder.native.run(mel, batch, frames, opts.parts, int8, opts.hidden);
      const enc = new EncodedWindows(batch, out.crossK, out.crossV, d.dModel * positions, positions, out.int8) as EncodedWindows & { hidden?: Float32Array };
      if (opts.hidden) enc.hidden = out.hidden;
      return enc;
    }
    const fetch: string[] = [];
    for (let l = 0; l < d.decoderLayers; l++) fetch.push(ENCODER_IO.crossK(l), ENCODER_IO.crossV(l));
    if (opts.hidden) fetch.push(ENCODER_IO.hidden);
    const out = await this.encoder.whole.run({ [ENCODER_IO.mel]: { type: 'float32', data: mel, dims: [batch, d.nMels, frames] } }, fetch);
    const ks: Float32Array[] = [];
    const vs: Float32Array[] = [];
    for (let l = 0; l < d.decoderLayers; l++) {
      ks.push(out[ENCODER_IO.crossK(l)]!.data);
      vs.push(out[ENCODER_IO.crossV(l)]!.data);
    }
    const enc = new EncodedWindows(batch, ks, vs, d.dModel * positions, positions) as EncodedWindows & { hidden?: Float32Array };
    if (opts.hidden) enc.hidden = out[ENCODER_IO.hidden]!.data;
    return enc;
  }

  /** A batch whose self-attention cache starts at `initialCapacity` positions per row and grows
   *  (doubling, up to the text context) when a row needs more. */
  newBatch(maxRows: number, initialCapacity = 64, groupRows = 1): DecoderBatch {
    return new DecoderBatch(this, maxRows, Math.min(initialCapacity, this.dims.nTextCtx), groupRows);
  }

}

/** Row ids are unique across batches (a runner keys its rows by id over several batches). */
let nextRowId = 0;

/** One sequence being decoded: its slot in the batch buffers and how many positions it has cached. */
export class DecoderRow {
  /** Number of positions in the self-attention cache. */
  length = 0;
  constructor(public slot: number, readonly id: number, /** Encoder positions of its window. */ readonly crossLength: number) {}
}

/**
 * Rows that are decoded together. Row-major buffers hold every row's self-attention cache and
 * cross-attention keys/values; rows occupy slots 0..n-1 so the first n slots form contiguous
 * [n, …] tensors. A row that leaves is replaced by the last one (swap-remove), so rows join and
 * leave at any step without disturbing the others.
 *
 * With `groupRows` R > 1 (beam search) rows come in blocks of R consecutive slots that decode one
 * window: the block holds that window's cross keys/values once, the graph reads them once for the
 * R rows, and blocks join and leave whole.
 */
export class DecoderBatch {
  readonly rows: DecoderRow[] = [];
  private selfK: Float32Array[] = [];
  private selfV: Float32Array[] = [];
  // Cross keys/values: float32 blocks for a whole decoder graph, or int8 for the native attention
  // between decoder segments.
  private readonly crossK: Float32Array[] = [];
  private readonly crossV: Float32Array[] = [];
  private readonly crossInt8: Int8CrossCache | undefined;
  private selfSlot: number; // elements per slot per layer (K or V)
  private readonly crossSlot: number;
  /** Where the native step writes logits: reused, so they hold until this batch's next step. */
  private logitsOut = new Float32Array(0);

  /** Cached positions each row can hold now; grows on demand. Attention and the cache inputs
   *  scale with it, so it starts small: most windows need well under 100 positions. */
  capacity: number;

  constructor(private readonly model: WhisperModel, readonly maxRows: number, initialCapacity: number, readonly groupRows = 1) {
    if (!Number.isInteger(groupRows) || groupRows < 1 || groupRows > maxRows) throw new WxError('engine.bad_options', `rows per window must be 1..${maxRows}, got ${groupRows}`);
    if (groupRows > 1 && !model.groupedCross) throw new WxError('model.outdated', `model ${model.manifest.name} was imported by an older wx: import it again to use beam search ('wx models pull NAME --force', or 'wx models import DIR --force')`);
    const capacity = initialCapacity;
    this.capacity = capacity;
    const d = model.dims;
    this.selfSlot = d.dModel * capacity;
    this.crossSlot = d.dModel * d.nAudioCtx;
    const blocks = Math.floor(maxRows / groupRows);
    const segmented = !('whole' in model.decoder);
    if (segmented) this.crossInt8 = new Int8CrossCache({ layers: d.decoderLayers, heads: d.decoderHeads, headDim: d.dModel / d.decoderHeads, positions: d.nAudioCtx }, blocks);
    for (let l = 0; l < d.decoderLayers; l++) {
      this.selfK.push(new Float32Array(maxRows * this.selfSlot));
      this.selfV.push(new Float32Array(maxRows * this.selfSlot));
      if (segmented) continue;
      this.crossK.push(new Float32Array(blocks * this.crossSlot));
      this.crossV.push(new Float32Array(blocks * this.crossSlot));
    }
  }

  get size(): number {
    return this.rows.length;
  }

  /** Adds window `index` of `enc` as a new row (empty cache). */
  add(enc: EncodedWindows, index: number): DecoderRow {
    return this.addGroup(enc, index)[0]!;
  }

  /** Adds window `index` of `enc` as `groupRows` new rows (empty caches) sharing its keys/values. */
  addGroup(enc: EncodedWindows, index: number): DecoderRow[] {
    const R = this.groupRows;
    if (this.rows.length + R > this.maxRows) throw new WxError('engine.batch_full', `decoder batch is full (${this.maxRows} rows)`);
    const rows = Array.from({ length: R }, () => new DecoderRow(this.rows.length, nextRowId++, enc.positions));
    rows.forEach((r, i) => (r.slot += i));
    if (this.crossInt8) {
      if (enc.int8) {
        this.crossInt8.storeQuantised(rows[0]!.slot / R, enc.int8, index);
      } else {
        const w = enc.perWindow;
        for (let l = 0; l < this.model.dims.decoderLayers; l++) {
          this.crossInt8.store(rows[0]!.slot / R, l, enc.crossK[l]!.subarray(index * w, (index + 1) * w), enc.crossV[l]!.subarray(index * w, (index + 1) * w), enc.positions, this.model.threads);
        }
      }
      this.rows.push(...rows);
      return rows;
    }
    if (enc.crossK.length === 0) throw new WxError('engine.bad_input', `model ${this.model.manifest.name} decodes from float32 cross keys/values; these windows hold only int8 (encode them with this model)`);
    // Each head's positions go first in its part of the block; the decoder masks the rest (a
    // window encoded with a shorter audio context).
    const n = this.crossSlot;
    const at = (rows[0]!.slot / R) * n;
    const d = this.model.dims;
    const H = d.decoderHeads;
    const part = enc.positions * (d.dModel / H);
    const full = d.nAudioCtx * (d.dModel / H);
    for (let l = 0; l < this.crossK.length; l++) {
      for (let h = 0; h < H; h++) {
        const from = index * enc.perWindow + h * part;
        this.crossK[l]!.set(enc.crossK[l]!.subarray(from, from + part), at + h * full);
        this.crossV[l]!.set(enc.crossV[l]!.subarray(from, from + part), at + h * full);
      }
    }
    this.rows.push(...rows);
    return rows;
  }

  /** Removes a row (or, grouped, the block that holds it); the last row (block) takes its place. */
  remove(row: DecoderRow): void {
    const i = this.rows.indexOf(row);
    if (i < 0) return;
    const R = this.groupRows;
    const first = i - (i % R);
    const lastFirst = this.rows.length - R;
    if (first !== lastFirst) {
      const move = (bufs: Float32Array[], n: number, to: number, from: number, count: number) => {
        for (const b of bufs) b.copyWithin(to * n, from * n, (from + count) * n);
      };
      move(this.selfK, this.selfSlot, first, lastFirst, R);
      move(this.selfV, this.selfSlot, first, lastFirst, R);
      move(this.crossK, this.crossSlot, first / R, lastFirst / R, 1);
      move(this.crossV, this.crossSlot, first / R, lastFirst / R, 1);
      this.crossInt8?.move(first / R, lastFirst / R);
      for (let k = 0; k < R; k++) {
        const moved = this.rows[lastFirst + k]!;
        moved.slot = first + k;
        this.rows[first + k] = moved;
      }
    }
    this.rows.length = lastFirst;
  }

  /** Gives `targets[i]` the self-attention cache `sources[i]` has now (rows of one window; a
   *  source may feed several targets and be a target itself). */
  copyCaches(sources: readonly DecoderRow[], targets: readonly DecoderRow[]): void {
    const moves = targets.flatMap((t, i) => (t === sources[i] ? [] : [{ from: sources[i]!, to: t }]));
    if (moves.length === 0) return;
    const n = this.selfSlot;
    const H = this.model.dims.decoderHeads;
    const dh = this.model.dims.dModel / H;
    const C = this.capacity;
    for (const bufs of [this.selfK, this.selfV]) {
      for (const b of bufs) {
        // Only the cached positions of each head's block: [H, C, dh] per slot.
        const saved = moves.map((m) => Array.from({ length: H }, (_, h) => b.slice(m.from.slot * n + h * C * dh, m.from.slot * n + (h * C + m.from.length) * dh)));
        moves.forEach((m, i) => saved[i]!.forEach((part, h) => b.set(part, m.to.slot * n + h * C * dh)));
      }
    }
    targets.forEach((t, i) => (t.length = sources[i]!.length));
  }

  /** Re-lays the cache buffers out with room for at least `need` positions per row. */
  private grow(need: number): void {
    const d = this.model.dims;
    let capacity = this.capacity;
    while (capacity < need) capacity *= 2;
    capacity = Math.min(capacity, d.nTextCtx);
    const H = d.decoderHeads;
    const dh = d.dModel / H;
    const oldC = this.capacity;
    const relayout = (old: Float32Array): Float32Array => {
      const next = new Float32Array(this.maxRows * d.dModel * capacity);
      for (const row of this.rows) {
        for (let h = 0; h < H; h++) {
          const from = (row.slot * H + h) * oldC * dh;
          next.set(old.subarray(from, from + row.length * dh), (row.slot * H + h) * capacity * dh);
        }
      }
      return next;
    };
    this.selfK = this.selfK.map(relayout);
    this.selfV = this.selfV.map(relayout);
    this.capacity = capacity;
    this.selfSlot = d.dModel * capacity;
  }

  /** Drops every row. */
  clear(): void {
    this.rows.length = 0;
  }

  /** Forgets a row's cached positions (reuse the row for a new prompt on the same window). */
  reset(row: DecoderRow): void {
    row.length = 0;
  }

  /**
   * Feeds `tokens[r]` (all the same length S) to `rows` and returns, per row, the logits at the
   * positions `gather` (indices into the S new tokens): [rows.length, gather.length, V].
   * `rows` must be either all rows of the batch (in slot order) or a single row. The logits may
   * live in a buffer the batch reuses: they hold until its next step (copy what must outlive it).
   */
  async step(rows: readonly DecoderRow[], tokens: readonly (readonly number[])[], gather: readonly number[]): Promise<Float32Array> {
    const d = this.model.dims;
    const B = rows.length;
    const S = tokens[0]!.length;
    const first = rows[0]!.slot;
    if (B > 1 && (B !== this.rows.length || rows.some((r, i) => r.slot !== i))) {
      throw new WxError('engine.bad_input', 'a multi-row decoder step must cover every row of the batch in slot order');
    }
    const need = Math.max(...rows.map((r) => r.length + S));
    if (need > d.nTextCtx) throw new WxError('engine.context_full', `decoder context is full (${d.nTextCtx} positions)`);
    if (need > this.capacity) this.grow(need);
    if (tokens.some((t) => t.length !== S)) throw new WxError('engine.bad_input', 'all rows of a decoder step must feed the same number of tokens');
    const decoder = this.model.decoder;
    if ('native' in decoder) {
      const size = B * gather.length * d.nVocab;
      if (this.logitsOut.length < size) this.logitsOut = new Float32Array(Math.max(size, this.maxRows * d.nVocab));
      const logits = decoder.native.step(tokens, {
        slots: Int32Array.from(rows, (r) => r.slot),
        lengths: Int32Array.from(rows, (r) => r.length),
        ...this.crossRows(rows),
      }, gather, this.selfK, this.selfV, this.capacity, this.crossInt8!, this.logitsOut);
      for (const r of rows) r.length += S;
      return logits;
    }
    const tok = new BigInt64Array(B * S);
    const off = new BigInt64Array(B);
    for (let b = 0; b < B; b++) {
      for (let s = 0; s < S; s++) tok[b * S + s] = BigInt(tokens[b]![s]!);
      off[b] = BigInt(rows[b]!.length);
    }
    const io: StepIO = {
      B,
      S,
      first,
      tokens: { type: 'int64', data: tok, dims: [B, S] },
      offset: { type: 'int64', data: off, dims: [B] },
      gather: { type: 'int64', data: BigInt64Array.from(gather.map((g) => BigInt(g))), dims: [gather.length] },
    };
    const { logits, newKV } = 'segments' in decoder ? await this.runSegments(decoder.segments, rows, io) : await this.runWhole(decoder.whole, rows, io);
    // Append the new keys and values ([H, C, dh] per row) to each row's cache.
    const H = d.decoderHeads;
    const dh = d.dModel / H;
    const C = this.capacity;
    for (let l = 0; l < d.decoderLayers; l++) {
      const nk = newKV[l]!.k;
      const nv = newKV[l]!.v;
      const K = this.selfK[l]!;
      const Vb = this.selfV[l]!;
      for (let b = 0; b < B; b++) {
        const row = rows[b]!;
        const base = row.slot * this.selfSlot;
        for (let h = 0; h < H; h++) {
          for (let s = 0; s < S; s++) {
            const src = ((b * H + h) * S + s) * dh;
            const pos = row.length + s;
            K.set(nk.subarray(src, src + dh), base + (h * C + pos) * dh);
            Vb.set(nv.subarray(src, src + dh), base + (h * C + pos) * dh);
          }
        }
      }
    }
    for (const r of rows) r.length += S;
    return logits;
  }

  /** Each row's int8 cross-attention slot (its window's block) and the window's positions. */
  private crossRows(rows: readonly DecoderRow[]): { crossSlots: Int32Array; crossLengths: Int32Array } {
    return { crossSlots: Int32Array.from(rows, (r) => Math.floor(r.slot / this.groupRows)), crossLengths: Int32Array.from(rows, (r) => r.crossLength) };
  }

  /** Feeds of layer l's self-attention cache for the step's rows. */
  private selfFeeds(l: number, io: StepIO): Record<string, FeedTensor> {
    const d = this.model.dims;
    const H = d.decoderHeads;
    const n = this.selfSlot;
    const dims = [io.B, H, this.capacity, d.dModel / H];
    return {
      [DECODER_IO.selfK(l)]: { type: 'float32', data: this.selfK[l]!.subarray(io.first * n, (io.first + io.B) * n), dims },
      [DECODER_IO.selfV(l)]: { type: 'float32', data: this.selfV[l]!.subarray(io.first * n, (io.first + io.B) * n), dims },
    };
  }

  /** One step through the decoder segments, with the cross-attention of each layer done natively
   *  over int8 keys/values between them. */
  private async runSegments(segs: InferenceGraph[], rows: readonly DecoderRow[], io: StepIO): Promise<StepOutput> {
    const d = this.model.dims;
    const { B, S } = io;
    const { crossSlots, crossLengths } = this.crossRows(rows);
    const newKV: StepOutput['newKV'] = [];
    let out = await segs[0]!.run(
      { [DECODER_IO.tokens]: io.tokens, [DECODER_IO.offset]: io.offset, ...this.selfFeeds(0, io) },
      [SEGMENT_IO.xOut, SEGMENT_IO.qOut, SEGMENT_IO.mask, DECODER_IO.newK(0), DECODER_IO.newV(0)],
    );
    const mask = out[SEGMENT_IO.mask]!;
    newKV.push({ k: out[DECODER_IO.newK(0)]!.data, v: out[DECODER_IO.newV(0)]!.data });
    for (let l = 0; l < d.decoderLayers; l++) {
      const ctx = this.crossInt8!.attend(l, out[SEGMENT_IO.qOut]!.data, B, S, crossSlots, crossLengths, this.model.threads);
      const feeds: Record<string, FeedTensor> = {
        [SEGMENT_IO.x]: { type: 'float32', data: out[SEGMENT_IO.xOut]!.data, dims: [B, S, d.dModel] },
        [SEGMENT_IO.ctx]: { type: 'float32', data: ctx, dims: [B, S, d.dModel] },
      };
      if (l + 1 === d.decoderLayers) {
        out = await segs[l + 1]!.run({ ...feeds, [DECODER_IO.gather]: io.gather }, [DECODER_IO.logits]);
      } else {
        Object.assign(feeds, this.selfFeeds(l + 1, io), { [SEGMENT_IO.mask]: { type: 'float32', data: mask.data, dims: mask.dims } });
        out = await segs[l + 1]!.run(feeds, [SEGMENT_IO.xOut, SEGMENT_IO.qOut, DECODER_IO.newK(l + 1), DECODER_IO.newV(l + 1)]);
        newKV.push({ k: out[DECODER_IO.newK(l + 1)]!.data, v: out[DECODER_IO.newV(l + 1)]!.data });
      }
    }
    return { logits: out[DECODER_IO.logits]!.data, newKV };
  }

  /** One step through a whole decoder graph (float32 cross keys/values as inputs). */
  private async runWhole(graph: InferenceGraph, rows: readonly DecoderRow[], io: StepIO): Promise<StepOutput> {
    const d = this.model.dims;
    const H = d.decoderHeads;
    const dh = d.dModel / H;
    // Grouped: a whole-batch step reads each block's keys/values once for its R rows; a single
    // row (a prompt) reads its block's as a group of one.
    const R = io.B > 1 ? this.groupRows : 1;
    if (io.B % R !== 0) throw new WxError('engine.bad_input', `a grouped decoder step needs whole blocks of ${R} rows`);
    const windows = rows.filter((_, b) => b % R === 0);
    const firstBlock = Math.floor(io.first / this.groupRows);
    const feeds: Record<string, FeedTensor> = {
      [DECODER_IO.tokens]: io.tokens,
      [DECODER_IO.offset]: io.offset,
      [DECODER_IO.gather]: io.gather,
      [DECODER_IO.crossLen]: { type: 'int32', data: Int32Array.from(windows, (r) => r.crossLength), dims: [windows.length] },
    };
    if (this.model.groupedCross) feeds[DECODER_IO.crossGroup] = { type: 'int64', data: BigInt64Array.from([BigInt(R)]), dims: [1] };
    const crossView = (buf: Float32Array) => buf.subarray(firstBlock * this.crossSlot, (firstBlock + windows.length) * this.crossSlot);
    const fetch: string[] = [DECODER_IO.logits];
    for (let l = 0; l < d.decoderLayers; l++) {
      Object.assign(feeds, this.selfFeeds(l, io));
      feeds[DECODER_IO.crossK(l)] = { type: 'float32', data: crossView(this.crossK[l]!), dims: [windows.length, H, d.nAudioCtx, dh] };
      feeds[DECODER_IO.crossV(l)] = { type: 'float32', data: crossView(this.crossV[l]!), dims: [windows.length, H, d.nAudioCtx, dh] };
      fetch.push(DECODER_IO.newK(l), DECODER_IO.newV(l));
    }
    const out = await graph.run(feeds, fetch);
    const newKV = Array.from({ length: d.decoderLayers }, (_, l) => ({ k: out[DECODER_IO.newK(l)]!.data, v: out[DECODER_IO.newV(l)]!.data }));
    return { logits: out[DECODER_IO.logits]!.data, newKV };
  }
}

/** What one decoder step feeds every graph it runs. */
interface StepIO {
  B: number;
  S: number;
  /** Slot of the first row. */
  first: number;
  tokens: FeedTensor;
  offset: FeedTensor;
  gather: FeedTensor;
}

interface StepOutput {
  logits: Float32Array;
  /** Per layer, the new self-attention keys/values ([B, H, S, dh]). */
  newKV: { k: Float32Array; v: Float32Array }[];
}
