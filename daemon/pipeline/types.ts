// What a transcription produces: the shape shared by the pipeline, the writers (txt/srt/vtt/
// json), the store and the protocol. Field names follow OpenAI whisper's JSON output.

export interface Segment {
  id: number;
  /** Start of the 30-s window (in 10-ms frames, as OpenAI's `seek`) this segment was decoded in. */
  seek: number;
  /** Seconds from the start of the recording. */
  start: number;
  end: number;
  text: string;
  tokens: number[];
  temperature: number;
  avg_logprob: number;
  compression_ratio: number;
  no_speech_prob: number;
  /** Per-word timing (OpenAI's `word_timestamps` output), when it was computed. */
  words?: WordTiming[];
}

export interface WordTiming {
  /** The word as decoded, with its leading space. */
  word: string;
  start: number;
  end: number;
  probability: number;
}

export interface Transcript {
  text: string;
  segments: Segment[];
  language: string;
  /** Seconds of audio. */
  duration: number;
}

export type OutputFormat = 'txt' | 'srt' | 'vtt' | 'json';
export const OUTPUT_FORMATS: readonly OutputFormat[] = ['txt', 'srt', 'vtt', 'json'];
