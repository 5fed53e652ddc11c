// Window-level quality signals that decide temperature fallback and the no-speech skip, with
// openai/whisper's thresholds as defaults.

export interface QualityThresholds {
  compressionRatio: number; // 2.4
  logprob: number; // -1.0
  noSpeech: number; // 0.6
}

export const DEFAULT_THRESHOLDS: QualityThresholds = { compressionRatio: 2.4, logprob: -1.0, noSpeech: 0.6 };

export interface WindowQuality {
  avgLogprob: number;
  noSpeechProb: number;
  compressionRatio: number;
}

/** Silence (or music/noise) as the model sees it: likely no speech and not confidently decoded. */
export function isNoSpeech(q: WindowQuality, t: QualityThresholds = DEFAULT_THRESHOLDS): boolean {
  return q.noSpeechProb > t.noSpeech && q.avgLogprob < t.logprob;
}

/** Whether to retry the window at the next temperature. */
export function needsFallback(q: WindowQuality, t: QualityThresholds = DEFAULT_THRESHOLDS): boolean {
  if (isNoSpeech(q, t)) return false;
  return q.compressionRatio > t.compressionRatio || q.avgLogprob < t.logprob;
}
