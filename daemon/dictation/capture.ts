// Microphone capture by the daemon itself (`dictation.start {source: 'mic'}`): macOS only, built
// in the macOS client issue behind this interface. Elsewhere clients stream audio themselves.
import { WxError } from '../errors.js';

export interface AudioCapture {
  readonly sampleRate: number;
  /** Starts delivering mono float frames at `sampleRate`. */
  start(onFrames: (samples: Float32Array) => void): Promise<void>;
  stop(): Promise<void>;
}

export const MIC_LINUX_HINT = 'microphone capture is macOS-only; pipe audio: arecord -f S16_LE -r 16000 | wx dictate --input -';

/** The platform microphone. Throws a clear error where there is none (yet). */
export function openMicCapture(platform: NodeJS.Platform = process.platform): AudioCapture {
  if (platform !== 'darwin') throw new WxError('dictation.no_mic', MIC_LINUX_HINT, { platform });
  throw new WxError('dictation.no_mic', 'microphone capture in the daemon is not built yet (macOS client issue); stream audio from the client: wx dictate --input -', { platform });
}
