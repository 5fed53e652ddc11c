// Weight quantisation: symmetric 8-bit blocks (MatMulNBits' layout).

export interface BlockQuantized {
  /** [rows, blocks, blockSize] unsigned 8-bit values with zero point 128. */
  values: Uint8Array;
  /** [rows, blocks] */
  scales: Float32Array;
  blocks: number;
}

/**
 * Symmetric 8-bit quantisation of each row of `w` ([rows, cols], e.g. a linear layer's [out, in])
 * in blocks of `blockSize` along the row, stored with zero point 128 (the layout of ORT's
 * MatMulNBits). A short last block is zero-padded.
 */
export function quantizeRowBlocks(w: Float32Array, rows: number, cols: number, blockSize: number): BlockQuantized {
  // An import quantises most matrices twice (for ORT's graphs and for the native kernels' list):
  // the second time is a lookup.
  const key = `${rows}x${cols}/${blockSize}`;
  let memo = quantized.get(w);
  const known = memo?.get(key);
  if (known) return known;
  const q = quantize(w, rows, cols, blockSize);
  if (!memo) quantized.set(w, (memo = new Map()));
  memo.set(key, q);
  return q;
}

const quantized = new WeakMap<Float32Array, Map<string, BlockQuantized>>();

function quantize(w: Float32Array, rows: number, cols: number, blockSize: number): BlockQuantized {
  const blocks = Math.ceil(cols / blockSize);
  const values = new Uint8Array(rows * blocks * blockSize).fill(128);
  const scales = new Float32Array(rows * blocks);
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < blocks; b++) {
      const from = r * cols + b * blockSize;
      const to = r * cols + Math.min(cols, (b + 1) * blockSize);
      let maxAbs = 0;
      for (let i = from; i < to; i++) maxAbs = Math.max(maxAbs, Math.abs(w[i]!));
      const scale = maxAbs > 0 ? maxAbs / 127 : 1;
      scales[r * blocks + b] = scale;
      const inv = 1 / scale;
      const out = (r * blocks + b) * blockSize;
      for (let i = from; i < to; i++) {
        const q = Math.round(w[i]! * inv);
        values[out + (i - from)] = 128 + (q > 127 ? 127 : q < -127 ? -127 : q);
      }
    }
  }
  return { values, scales, blocks };
}
