// Streams a dictation's audio to a 16-bit mono WAV file as it arrives. The header's sizes are
// rewritten after every append, so whatever happens next (client gone, daemon killed), the file
// on disk is a valid WAV holding every sample received so far.
import fs from 'node:fs';
import { WxError, describeError } from '../errors.js';

const HEADER_BYTES = 44;

function header(sampleRate: number, dataBytes: number): Buffer {
  const h = Buffer.alloc(HEADER_BYTES);
  h.write('RIFF', 0, 'ascii');
  h.writeUInt32LE(36 + dataBytes, 4);
  h.write('WAVE', 8, 'ascii');
  h.write('fmt ', 12, 'ascii');
  h.writeUInt32LE(16, 16);
  h.writeUInt16LE(1, 20); // PCM
  h.writeUInt16LE(1, 22); // mono
  h.writeUInt32LE(sampleRate, 24);
  h.writeUInt32LE(sampleRate * 2, 28);
  h.writeUInt16LE(2, 32);
  h.writeUInt16LE(16, 34);
  h.write('data', 36, 'ascii');
  h.writeUInt32LE(dataBytes, 40);
  return h;
}

/** Float samples in [-1, 1] → s16le bytes (clipped). */
export function floatToS16(samples: Float32Array): Buffer {
  const out = Buffer.alloc(samples.length * 2);
  for (let i = 0; i < samples.length; i++) {
    const v = Math.max(-1, Math.min(1, samples[i]!));
    out.writeInt16LE(Math.round(v < 0 ? v * 32768 : v * 32767), i * 2);
  }
  return out;
}

/** s16le bytes → float samples in [-1, 1). */
export function s16ToFloat(bytes: Uint8Array): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(bytes.byteLength >> 1);
  for (let i = 0; i < out.length; i++) out[i] = view.getInt16(i * 2, true) / 32768;
  return out;
}

export class WavWriter {
  private fd: number | null;
  private dataBytes = 0;

  private constructor(
    readonly file: string,
    readonly sampleRate: number,
    fd: number,
  ) {
    this.fd = fd;
  }

  /** Creates the file (owner-only; never overwrites an existing one). */
  static create(file: string, sampleRate: number): WavWriter {
    let fd: number;
    try {
      fd = fs.openSync(file, 'wx', 0o600);
      fs.writeSync(fd, header(sampleRate, 0), 0, HEADER_BYTES, 0);
    } catch (err) {
      throw new WxError('dictation.recording_failed', `cannot create the dictation recording ${file}: ${describeError(err)}`, { file }, { cause: err });
    }
    return new WavWriter(file, sampleRate, fd);
  }

  get samples(): number {
    return this.dataBytes / 2;
  }

  get bytes(): number {
    return HEADER_BYTES + this.dataBytes;
  }

  append(samples: Float32Array): void {
    if (this.fd === null) throw new WxError('dictation.recording_closed', `the recording ${this.file} is already closed`, { file: this.file });
    if (samples.length === 0) return;
    const pcm = floatToS16(samples);
    try {
      fs.writeSync(this.fd, pcm, 0, pcm.length, HEADER_BYTES + this.dataBytes);
      this.dataBytes += pcm.length;
      const sizes = Buffer.alloc(4);
      sizes.writeUInt32LE(36 + this.dataBytes, 0);
      fs.writeSync(this.fd, sizes, 0, 4, 4);
      sizes.writeUInt32LE(this.dataBytes, 0);
      fs.writeSync(this.fd, sizes, 0, 4, 40);
    } catch (err) {
      throw new WxError('dictation.recording_failed', `cannot write to the dictation recording ${this.file}: ${describeError(err)}`, { file: this.file }, { cause: err });
    }
  }

  /** Flushes to disk and closes. Idempotent. */
  close(): void {
    if (this.fd === null) return;
    const fd = this.fd;
    this.fd = null;
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }
}
