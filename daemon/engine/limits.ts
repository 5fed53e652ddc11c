// How much work the engine takes on at once, from the model's size. A decoder row holds its
// window's cross-attention keys and values (2 × decoder layers × d_model × audio positions
// floats: 18 MB for tiny, 61 MB for large-v3-turbo, ~490 MB for large-v3; about a quarter of
// that as int8, the native decoder's form, which encoded windows also wait in); an encoder run holds
// each window's attention probabilities and outputs; a long recording's encoded windows wait for
// the decoder. The budgets keep the defaults measured best for tiny (8 rows, 4 windows per
// encoder run) and scale the large checkpoints down instead of letting them take gigabytes.
import type { ModelDims } from './manifest.js';

export interface BatchLimits {
  /** Greedy decoder rows in flight. */
  maxRows: number;
  /** Decoder rows in flight with beam searches. */
  beamRows: number;
  /** Windows per encoder run. */
  maxEncoderBatch: number;
  /** Windows one transcription keeps encoded and not yet decoded (its memory for a long
   *  recording no longer grows with the recording's length). */
  windowsInFlight: number;
}

const MB = 1024 * 1024;
/** Cross-attention keys/values of the greedy decoder rows. */
const ROWS_BUDGET = 512 * MB;
/** One encoder run: its windows' attention probabilities and outputs. */
const ENCODER_BUDGET = 384 * MB;
/** Encoded windows a transcription holds ahead of its decoding. */
const IN_FLIGHT_BUDGET = 256 * MB;

/** How a decoder batch holds cross-attention keys/values: float32 (a whole decoder graph), or
 *  int8 with scales (the native cross-attention between decoder segments, cross-int8.ts). */
export type CrossFormat = 'float32' | 'int8';

/** Bytes of one window's cross-attention keys and values (as the encoder returns them: float32,
 *  or as an int8 decoder batch holds them: a byte per value plus scales per position and half
 *  head and per channel, positions rounded up to 16). */
export function crossBytesPerWindow(d: ModelDims, format: CrossFormat = 'float32'): number {
  if (format === 'float32') return 2 * d.decoderLayers * d.dModel * d.nAudioCtx * 4;
  const stride = Math.ceil(d.nAudioCtx / 16) * 16;
  return 2 * d.decoderLayers * (d.dModel * stride + 4 * d.decoderHeads * (2 * stride + d.dModel / d.decoderHeads));
}

export function batchLimits(d: ModelDims, format: CrossFormat = 'float32'): BatchLimits {
  const cross = crossBytesPerWindow(d);
  const clamp = (v: number, lo: number, hi: number) => Math.max(lo, Math.min(hi, Math.floor(v)));
  const maxRows = clamp(ROWS_BUDGET / crossBytesPerWindow(d, format), 1, 8);
  // An attention layer's probabilities (heads × positions²) are the encoder's largest scratch.
  const encoderWindow = cross + d.encoderHeads * d.nAudioCtx * d.nAudioCtx * 4;
  const maxEncoderBatch = clamp(ENCODER_BUDGET / encoderWindow, 1, 4);
  return {
    maxRows,
    beamRows: 2 * maxRows,
    maxEncoderBatch,
    // Windows waiting for the decoder are held in its format (int8: quantised as encoded).
    windowsInFlight: clamp(IN_FLIGHT_BUDGET / crossBytesPerWindow(d, format), maxEncoderBatch, 12),
  };
}
