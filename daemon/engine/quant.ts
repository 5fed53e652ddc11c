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
