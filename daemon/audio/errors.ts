// The one error type of the audio front-end.
import { WxError } from '../errors.js';

export type AudioErrorCode =
  | 'audio.not_found'
  | 'audio.empty'
  | 'audio.truncated'
  | 'audio.unsupported'
  | 'audio.not_audio'
  | 'audio.no_audio_stream'
  | 'audio.no_decoder'
  | 'audio.too_large'
  | 'audio.unreadable';

export const AUDIO_ERROR_CODES: ReadonlySet<string> = new Set<AudioErrorCode>([
  'audio.not_found',
  'audio.empty',
  'audio.truncated',
  'audio.unsupported',
  'audio.not_audio',
  'audio.no_audio_stream',
  'audio.no_decoder',
  'audio.too_large',
  'audio.unreadable',
]);

/** A recording that cannot be turned into samples. The message starts with the file and says why. */
export class AudioError extends WxError {
  override readonly name: string = 'AudioError';
  declare readonly code: AudioErrorCode;
  constructor(code: AudioErrorCode, file: string, reason: string, options?: { cause?: unknown }) {
    super(code, `${file}: ${reason}`, { file, reason, step: 'audio' }, options);
  }
}
