// Weight quantisation: symmetric int8 with one scale per output column. Symmetric keeps the
// weight zero point at 0, which lets ORT use its fastest u8×s8 kernels (VNNI here).

export interface QuantizedMatrix {
  values: Int8Array;
  /** One per column: w ≈ values * scale. */
  scales: Float32Array;
}

/** `w` is row-major [rows, cols]; quantises each column independently. */
export function quantizePerColumn(w: Float32Array, rows: number, cols: number): QuantizedMatrix {
  const maxAbs = new Float32Array(cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) {
      const a = Math.abs(w[base + c]!);
      if (a > maxAbs[c]!) maxAbs[c] = a;
    }
  }
  const scales = new Float32Array(cols);
  const inv = new Float32Array(cols);
  for (let c = 0; c < cols; c++) {
    scales[c] = maxAbs[c]! > 0 ? maxAbs[c]! / 127 : 1;
    inv[c] = 1 / scales[c]!;
  }
  const values = new Int8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) {
      const q = Math.round(w[base + c]! * inv[c]!);
      values[base + c] = q > 127 ? 127 : q < -127 ? -127 : q;
    }
  }
  return { values, scales };
}

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
